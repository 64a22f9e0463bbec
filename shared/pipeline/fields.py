"""Adding and removing synced fields while the sync runs.

Adding a field checks, in order, before anything is saved: the entity is mapped; the request does not ask for a
Dynamics column to be created (the sync never creates one); the pair is not mapped yet; the column exists; the
sync user can read it (valid for read, and a field-security Read privilege if it is secured); its Dataverse type
is one the sync converts (with options and lengths from metadata); the Marketo field exists, or is created
through the Marketo API when asked to (only Marketo fields can be created). Then the field is saved in the mapping
as ``awaiting_quick_sync`` and a Quick Sync job is queued.

Removing a field is refused while its Quick Sync is queued or running; afterwards the links keep the old baseline
key, which nothing reads any more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.entities import MarketoObject
from shared.core.mapping import (
    SYNC_FILTER_COLUMN,
    EntityMapping,
    FieldMapping,
    FieldState,
    FieldType,
    LookupPart,
)
from shared.dataverse.client import AttributeInfo
from shared.errors import SkipRecord
from shared.pipeline import quicksync
from shared.pipeline.marketo_side import MARKETO_DATA_TYPES
from shared.pipeline.reconcile import DELETED_FLAG_FIELD
from shared.pipeline.webhooks import Reply, problem
from shared.services import Services

# --- value type from Dataverse metadata ------------------------------------------------------------------------

TYPES: dict[str, FieldType] = {
    "String": FieldType.TEXT,
    "Memo": FieldType.MEMO,
    "Integer": FieldType.INTEGER,
    "BigInt": FieldType.BIGINT,
    "Decimal": FieldType.DECIMAL,
    "Double": FieldType.DOUBLE,
    "Money": FieldType.MONEY,
    "Boolean": FieldType.BOOLEAN,
    "DateTime": FieldType.DATETIME,
    "Picklist": FieldType.CHOICE,
    "State": FieldType.CHOICE,
    "Status": FieldType.CHOICE,
    "MultiSelectPicklist": FieldType.MULTI_CHOICE,
    "Virtual": FieldType.MULTI_CHOICE,  # the Web API reports multi-select choices as Virtual
    "Lookup": FieldType.LOOKUP,
    "Customer": FieldType.LOOKUP,
    "Owner": FieldType.LOOKUP,
}
"""Dataverse AttributeType -> the value type the sync converts it as."""

OPTION_METADATA: dict[str, str] = {
    "Picklist": "Picklist",
    "State": "State",
    "Status": "Status",
    "MultiSelectPicklist": "MultiSelectPicklist",
    "Virtual": "MultiSelectPicklist",
}
"""AttributeType -> the metadata cast its options are read from."""


@dataclass(frozen=True, slots=True)
class ColumnFacts:
    """What Dataverse metadata says about one column, as far as mapping it is concerned."""

    attribute_type: str
    max_length: int | None = None
    options: dict[int, str] | None = None  # None: not read (or not a choice)
    date_only: bool = False


def derive_type(facts: ColumnFacts) -> FieldType | str:
    """The value type of a column, or why it cannot be synced."""
    kind = TYPES.get(facts.attribute_type)
    if kind is None:
        return f"columns of type {facts.attribute_type} cannot be synced"
    if facts.attribute_type == "Virtual" and not facts.options:
        return "columns of type Virtual cannot be synced unless they are multi-select choices"
    if kind is FieldType.DATETIME and facts.date_only:
        return FieldType.DATE
    return kind


def build_field(
    facts: ColumnFacts,
    *,
    dynamics: str,
    marketo: str,
    one_way: bool = False,
    lookup_part: LookupPart | None = None,
    marketo_length: int | None = None,
    state: FieldState = FieldState.AWAITING_QUICK_SYNC,
) -> FieldMapping | str:
    """The mapped field for a column, or why it cannot be mapped (type, options or lengths that do not fit)."""
    kind = derive_type(facts)
    if not isinstance(kind, FieldType):  # FieldType is a str too: test for it, not for the reason
        return kind
    values: dict[str, Any] = {"dynamics": dynamics, "marketo": marketo, "type": kind, "state": state}
    if one_way:
        values["one_way"] = True
    if kind in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
        values["options"] = [{"value": v, "label": label} for v, label in sorted((facts.options or {}).items())]
    if kind in (FieldType.TEXT, FieldType.MEMO):
        values["dynamics_max_length"] = facts.max_length
        values["max_length"] = marketo_length
    if lookup_part is not None:
        if kind is not FieldType.LOOKUP:
            return f"lookup_part is only for lookup columns, not {facts.attribute_type}"
        values["lookup_part"] = lookup_part
    try:
        return FieldMapping.model_validate(values)
    except ValidationError as exc:
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())


# --- the request ---------------------------------------------------------------------------------------------------

DYNAMICS_CREATION_KEYS = ("create_dynamics_column", "create_dynamics_field", "create_in_dynamics")
COLUMN_MISSING = (
    "the column does not exist in Dynamics: create it in Dynamics first — the sync never creates Dynamics columns"
)


COLUMN_PATTERN = r"^[a-z_][a-z0-9_]*$"  # as the mapping validates them
MARKETO_FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class QuickSyncOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modified_from: str | None = Field(default=None, description="ISO date or date-time; records modified on or after")
    modified_to: str | None = Field(default=None, description="ISO date (the whole day) or date-time, inclusive")
    page_size: int | None = Field(default=None, ge=1, le=quicksync.MAX_PAGE_SIZE)


class AddFieldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dynamics: str = Field(pattern=COLUMN_PATTERN)
    marketo: str = Field(pattern=MARKETO_FIELD_PATTERN)
    one_way: bool = False
    create_marketo_field: bool = False
    marketo_display_name: str | None = Field(default=None, min_length=1, max_length=255)
    lookup_part: LookupPart | None = None
    quick_sync: QuickSyncOptions = Field(default_factory=QuickSyncOptions)


def parse_instant(text: str, *, end_of_day: bool = False) -> str:
    """An ISO date or date-time as the ``modifiedon`` filter's UTC instant; a bare date spans the whole day."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        bare_date = "T" not in text and " " not in text.strip()
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO date or date-time") from None
    if bare_date:
        day = date.fromisoformat(text[:10])
        moment = datetime.combine(day, time.max if end_of_day else time.min)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_request(body: bytes) -> AddFieldRequest | Reply:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return problem(400, "bad-request", "the body is not JSON")
    if not isinstance(data, dict):
        return problem(400, "bad-request", "the body must be a JSON object")
    if any(data.get(key) for key in DYNAMICS_CREATION_KEYS):
        return problem(
            422,
            "dynamics-column-creation-refused",
            "the sync never creates Dynamics columns: create the column in Dynamics first, then add the field",
        )
    try:
        return AddFieldRequest.model_validate({k: v for k, v in data.items() if k not in DYNAMICS_CREATION_KEYS})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
        return problem(400, "bad-request", "; ".join(problems))


def quick_sync_window(options: QuickSyncOptions) -> tuple[str | None, str | None] | Reply:
    try:
        start = parse_instant(options.modified_from) if options.modified_from else None
        end = parse_instant(options.modified_to, end_of_day=True) if options.modified_to else None
    except ValueError as exc:
        return problem(400, "bad-request", f"quick_sync: {exc}")
    if start and end and start > end:
        return problem(400, "bad-request", "quick_sync: modified_from is after modified_to")
    return start, end


# --- the checks ----------------------------------------------------------------------------------------------------


def _taken(entity: EntityMapping, column: str, marketo: str) -> Reply | None:
    if column in entity.by_column:
        return problem(
            409, "already-mapped", f"{entity.entity}.{column} is already mapped (to {entity.by_column[column].marketo})"
        )
    if marketo.casefold() in entity.by_marketo:
        other = entity.by_marketo[marketo.casefold()].dynamics
        return problem(
            409, "already-mapped", f"Marketo field {marketo} is already mapped (from {entity.entity}.{other})"
        )
    reserved = {entity.marketo_link_field.casefold(), DELETED_FLAG_FIELD.casefold(), "id"}
    if marketo.casefold() in reserved:
        return problem(
            409, "reserved", f"Marketo field {marketo} is used by the sync itself (link, id or deletion flag)"
        )
    if column in (SYNC_FILTER_COLUMN, entity.id_column):
        return problem(409, "reserved", f"{column} is used by the sync itself (record id or sync filter)")
    return None


def _column(services: Services, entity: EntityMapping, column: str) -> AttributeInfo | Reply:
    attributes = {a.logical_name: a for a in services.dataverse.attributes(entity.entity)}
    attribute = attributes.get(column)
    if attribute is None:
        return problem(422, "column-not-found", f"{entity.entity}.{column}: {COLUMN_MISSING}")
    unreadable = problem(
        422, "column-not-readable", f"the sync user cannot read {column}: add it to a field security profile with Read"
    )
    if not attribute.valid_for_read:
        return unreadable
    if attribute.is_secured:
        access = services.dataverse.secured_column_access(entity.entity, services.sync_user_id).get(column)
        if access is None or not access.can_read:
            return unreadable
    return attribute


def _facts(services: Services, entity: EntityMapping, attribute: AttributeInfo) -> ColumnFacts:
    kind = attribute.attribute_type
    options = None
    cast = OPTION_METADATA.get(kind)
    if cast is not None:
        try:
            options = services.dataverse.option_labels(entity.entity, attribute.logical_name, cast)
        except SkipRecord:  # a Virtual column that is not a multi-select choice has no such metadata
            options = None
    date_only = kind == "DateTime" and _date_only(services, entity, attribute.logical_name)
    return ColumnFacts(kind, attribute.max_length, options, date_only)


def _date_only(services: Services, entity: EntityMapping, column: str) -> bool:
    """Date-only columns (``Format`` / ``DateTimeBehavior`` DateOnly) sync as dates, without a time of day."""
    path = (
        f"EntityDefinitions(LogicalName='{entity.entity}')/Attributes(LogicalName='{column}')"
        "/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata"
    )
    body = services.dataverse.request("GET", path, params={"$select": "LogicalName,Format,DateTimeBehavior"}).json()
    behavior = body.get("DateTimeBehavior")
    behavior_value = behavior.get("Value") if isinstance(behavior, dict) else behavior
    return body.get("Format") == "DateOnly" or behavior_value == "DateOnly"


@dataclass(frozen=True, slots=True)
class MarketoField:
    name: str  # as Marketo spells it
    length: int | None


def _marketo_field(services: Services, entity: EntityMapping, name: str) -> MarketoField | Reply | None:
    """The Marketo field by (case-insensitive) API name; None when missing; a Reply when it cannot be written."""
    marketo = services.marketo
    kind = entity.rule.marketo_object
    wanted = name.casefold()
    if kind is MarketoObject.PERSON:
        for lead_field in marketo.describe_leads():
            if (lead_field.rest_name or "").casefold() == wanted:
                if lead_field.read_only:
                    return problem(422, "marketo-field-read-only", f"Marketo field {name} is read-only through the API")
                return MarketoField(lead_field.rest_name or name, lead_field.length)
        return None
    if kind is MarketoObject.COMPANY:
        description = marketo.describe_companies()
    elif kind is MarketoObject.OPPORTUNITY:
        description = marketo.describe_opportunities()
    elif kind is MarketoObject.SALES_PERSON:
        description = marketo.describe_sales_persons()
    else:
        assert entity.custom_object is not None  # the mapping validator guarantees it
        description = marketo.describe_custom_object(entity.custom_object)
    for object_field in description.fields:
        if object_field.name.casefold() == wanted:
            if not object_field.updateable:
                return problem(422, "marketo-field-read-only", f"Marketo field {name} is read-only through the API")
            return MarketoField(object_field.name, object_field.length)
    return None


def _create_marketo_field(
    services: Services, entity: EntityMapping, request: AddFieldRequest, kind: FieldType
) -> MarketoField | Reply:
    target = entity.rule.marketo_object.value
    if entity.rule.marketo_object is not MarketoObject.PERSON:
        return problem(
            422,
            "marketo-field-not-creatable",
            f"Marketo's API cannot add fields to the {target} object: create {request.marketo} in Marketo Admin, "
            "then add the field again",
        )
    data_type = MARKETO_DATA_TYPES[kind]
    spec = {
        "name": request.marketo,
        "displayName": request.marketo_display_name or request.marketo,
        "dataType": data_type,
    }
    outcome = services.marketo.create_lead_fields([spec])[0]
    if not outcome.ok:
        reasons = "; ".join(f"{r.code} {r.message}" for r in outcome.reasons) or str(outcome.status)
        return problem(422, "marketo-field-not-created", f"Marketo did not create {request.marketo}: {reasons}")
    return MarketoField(request.marketo, 255 if data_type == "string" else None)


# --- the endpoints -------------------------------------------------------------------------------------------------


def add_field(services: Services, entity_name: str, body: bytes) -> Reply:
    """``POST /api/mapping/{entity}/fields``: check, save as ``awaiting_quick_sync``, queue the Quick Sync."""
    parsed = parse_request(body)
    if isinstance(parsed, Reply):
        return parsed
    request = parsed
    window = quick_sync_window(request.quick_sync)
    if isinstance(window, Reply):
        return window
    mapping = services.reload_mapping()
    entity = mapping.by_entity.get(entity_name.lower())
    if entity is None:
        return problem(404, "not-found", f"entity '{entity_name}' is not in the sync mapping")
    taken = _taken(entity, request.dynamics, request.marketo)
    if taken is not None:
        return taken
    attribute = _column(services, entity, request.dynamics)
    if isinstance(attribute, Reply):
        return attribute
    facts = _facts(services, entity, attribute)
    kind = derive_type(facts)
    if not isinstance(kind, FieldType):
        return problem(422, "unsupported-type", f"{entity.entity}.{request.dynamics}: {kind}")
    found = _marketo_field(services, entity, request.marketo)
    if isinstance(found, Reply):
        return found
    created = False
    if found is None:
        if not request.create_marketo_field:
            return problem(
                422,
                "marketo-field-not-found",
                f"Marketo has no field {request.marketo} on {entity.rule.marketo_object.value}: create it in Marketo "
                'Admin (Field Management), or send "create_marketo_field": true to have it created through the API',
            )
        made = _create_marketo_field(services, entity, request, kind)
        if isinstance(made, Reply):
            return made
        found, created = made, True
    built = build_field(
        facts,
        dynamics=request.dynamics,
        marketo=found.name,
        one_way=request.one_way,
        lookup_part=request.lookup_part,
        marketo_length=found.length if kind in (FieldType.TEXT, FieldType.MEMO) else None,
    )
    if isinstance(built, str):
        return problem(422, "unsupported-column", f"{entity.entity}.{request.dynamics}: {built}")
    new_field = built

    def change(document: dict[str, Any]) -> Reply | None:
        entry = quicksync.entity_document(document, entity.entity)
        if entry is None:
            return problem(404, "not-found", f"entity '{entity.entity}' left the sync mapping")
        current = EntityMapping.model_validate(entry)
        taken = _taken(current, new_field.dynamics, new_field.marketo)
        if taken is not None:
            return taken
        entry.setdefault("fields", []).append(new_field.model_dump(mode="json", exclude_defaults=True))
        return None

    saved = quicksync.edit_mapping(services, change)
    if isinstance(saved, Reply):
        return saved
    start, end = window
    job = quicksync.create_job(
        services.store,
        entity.entity,
        new_field,
        modified_from=start,
        modified_to=end,
        page_size=request.quick_sync.page_size,
    )
    return Reply(
        202,
        {
            "status": "accepted",
            "entity": entity.entity,
            "field": _field_view(new_field),
            "marketo_field_created": created,
            "job": job.public(),
        },
    )


def remove_field(services: Services, entity_name: str, column: str) -> Reply:
    """``DELETE /api/mapping/{entity}/fields/{column}``: refused while its Quick Sync is queued or running."""
    mapping = services.reload_mapping()
    entity = mapping.by_entity.get(entity_name.lower())
    if entity is None:
        return problem(404, "not-found", f"entity '{entity_name}' is not in the sync mapping")
    if column not in entity.by_column:
        return problem(404, "not-found", f"{entity.entity}.{column} is not mapped")
    busy = problem(409, "quick-sync-active", "a field cannot be removed while its Quick Sync is queued or running")
    if entity.by_column[column].state.in_quick_sync or quicksync.active_job(services.store, entity.entity, column):
        return busy
    removed: dict[str, Any] = {}

    def change(document: dict[str, Any]) -> Reply | None:
        entry = quicksync.entity_document(document, entity.entity)
        fields = (entry or {}).get("fields", [])
        match = next((f for f in fields if f.get("dynamics") == column), None)
        if entry is None or match is None:
            return problem(404, "not-found", f"{entity.entity}.{column} is not mapped")
        if FieldState(match.get("state", FieldState.ACTIVE.value)).in_quick_sync:
            return busy
        removed.clear()
        removed.update(match)
        entry["fields"] = [f for f in fields if f is not match]
        return None

    saved = quicksync.edit_mapping(services, change)
    if isinstance(saved, Reply):
        return saved
    return Reply(200, {"status": "removed", "entity": entity.entity, "field": removed})


def _field_view(f: FieldMapping) -> dict[str, Any]:
    return f.model_dump(mode="json", exclude_defaults=True) | {"state": f.state.value, "type": f.type.value}


def show_mapping(services: Services) -> Reply:
    """``GET /api/mapping``: every entity and field with its state (and the Quick Sync job of a new field)."""
    mapping = services.reload_mapping()
    active = {(j.entity, j.column): j for j in quicksync.list_jobs(services.store) if j.state.active}
    entities = []
    for entity in mapping.entities:
        fields = []
        for f in entity.fields:
            view = _field_view(f)
            job = active.get((entity.entity, f.dynamics))
            if job is not None:
                view["quick_sync"] = {"job": job.id, "state": job.state.value, "records_done": job.records_done}
            fields.append(view)
        entities.append(
            {
                "entity": entity.entity,
                "direction": entity.direction.value,
                "marketo_object": entity.rule.marketo_object.value,
                "link_field": entity.marketo_link_field,
                "fields": fields,
            }
        )
    return Reply(200, {"entities": entities})


__all__ = [
    "TYPES",
    "AddFieldRequest",
    "ColumnFacts",
    "add_field",
    "build_field",
    "derive_type",
    "parse_instant",
    "remove_field",
    "show_mapping",
]
