"""Adding and removing synced fields while the sync runs.

Adding a field checks, in order, before anything is saved: the request is usable and does not ask for a Dynamics
column to be created (the sync never creates one); the entity is mapped; the pair is not mapped yet and neither
name is one the sync uses itself; the column exists; its Dataverse type is one the sync converts (with options
and lengths from metadata); the sync user may read it, and update it too when the field writes back to Dynamics
(:func:`shared.core.access.column_access`); the Marketo field exists and is writable, or is created through the
Marketo API when asked to (only Marketo fields can be created). Then the field is saved in the mapping document
as ``awaiting_quick_sync`` and a Quick Sync job is queued.

Removing a field is refused while its Quick Sync is queued or running; afterwards the links keep the old baseline
key, which nothing reads any more.

Every refusal is a :class:`Refused` error that names the problem (and the request field) without repeating
what the caller sent; the mapping document is changed only through :class:`LiveMapping`, on its ETag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.access import column_access, writes_back
from shared.core.entities import MarketoObject
from shared.core.fields import OPTION_METADATA, ColumnFacts, build_field, derive_type
from shared.core.mapping import (
    DELETED_FLAG_FIELD,
    SYNC_FILTER_COLUMN,
    EntityMapping,
    FieldMapping,
    FieldState,
    FieldType,
    FieldWinner,
    LookupPart,
)
from shared.dataverse.client import AttributeInfo, DataverseClient
from shared.errors import AlreadyExists, Busy, InvalidRequest, NotFound, NotPossible, SkipRecord
from shared.marketo.client import MarketoClient
from shared.pipeline.marketo_side import MARKETO_DATA_TYPES
from shared.pipeline.ports import LiveMapping
from shared.pipeline.quicksync.jobs import MAX_PAGE_SIZE, QuickSyncJob, active_job, create_job, list_jobs
from shared.pipeline.request_body import json_object
from shared.store.base import StateStore
from shared.store.mapping import CHANGED, entity_document

# --- the request ---------------------------------------------------------------------------------------------------

DYNAMICS_CREATION_KEYS = ("create_dynamics_column", "create_dynamics_field", "create_in_dynamics")
COLUMN_MISSING = (
    "the column does not exist in Dynamics: create it in Dynamics first — the sync never creates Dynamics columns"
)
COLUMN_PATTERN = r"^[a-z_][a-z0-9_]*$"  # as the mapping validates them
MARKETO_FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_NAME_LENGTH = 128  # Dataverse logical names have at most 50 characters; Marketo API names fewer than 100


class QuickSyncOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modified_from: str | None = Field(default=None, description="ISO date or date-time; records modified on or after")
    modified_to: str | None = Field(default=None, description="ISO date (the whole day) or date-time, inclusive")
    page_size: int | None = Field(default=None, ge=1, le=MAX_PAGE_SIZE)


class AddFieldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dynamics: str = Field(pattern=COLUMN_PATTERN, max_length=MAX_NAME_LENGTH)
    marketo: str = Field(pattern=MARKETO_FIELD_PATTERN, max_length=MAX_NAME_LENGTH)
    one_way: bool = False
    winner: FieldWinner | None = Field(
        default=None,
        description="who wins this field's collisions: dynamics, marketo or latest (default: the entity's)",
    )
    create_marketo_field: bool = False
    marketo_display_name: str | None = Field(default=None, min_length=1, max_length=255)
    lookup_part: LookupPart | None = None
    quick_sync: QuickSyncOptions = Field(default_factory=QuickSyncOptions)


def parse_instant(text: str, *, end_of_day: bool = False) -> str:
    """An ISO date or date-time as the ``modifiedon`` filter's UTC instant; a bare date spans the whole day."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        bare_date = "T" not in text and " " not in text.strip()
        if bare_date:
            moment = datetime.combine(date.fromisoformat(text[:10]), time.max if end_of_day else time.min)
    except ValueError:
        raise ValueError("not an ISO date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _problem(error: Any) -> tuple[str, str]:
    """Where (dotted) and what, from one pydantic error; an unknown key is not repeated back."""
    loc = [str(p) for p in error["loc"]]
    if error["type"] == "extra_forbidden":
        where = ".".join(loc[:-1]) or "body"
        return where, "unknown key (the keys are " + ", ".join(_keys(loc[:-1])) + ")"
    return ".".join(loc) or "body", str(error["msg"])


def _keys(parent: list[str]) -> list[str]:
    model: type[BaseModel] = QuickSyncOptions if parent == ["quick_sync"] else AddFieldRequest
    return list(model.model_fields)


def parse_request(body: bytes) -> AddFieldRequest:
    data = json_object(body)
    if any(data.get(key) for key in DYNAMICS_CREATION_KEYS):
        raise NotPossible(
            "the sync never creates Dynamics columns: create the column in Dynamics first, then add the field",
            code="dynamics-column-creation-refused",
        )
    try:
        return AddFieldRequest.model_validate({k: v for k, v in data.items() if k not in DYNAMICS_CREATION_KEYS})
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        message = "; ".join(f"{where}: {what}" for where, what in problems)
        raise InvalidRequest(message, code="bad-request", field=problems[0][0]) from None


def quick_sync_window(options: QuickSyncOptions) -> tuple[str | None, str | None]:
    bounds: dict[str, str | None] = {}
    for name, text, end_of_day in (
        ("modified_from", options.modified_from, False),
        ("modified_to", options.modified_to, True),
    ):
        try:
            bounds[name] = parse_instant(text, end_of_day=end_of_day) if text else None
        except ValueError as exc:
            raise InvalidRequest(f"quick_sync.{name}: {exc}", code="bad-request", field=f"quick_sync.{name}") from None
    start, end = bounds["modified_from"], bounds["modified_to"]
    if start and end and start > end:
        raise InvalidRequest(
            "quick_sync: modified_from is after modified_to", code="bad-request", field="quick_sync.modified_from"
        )
    return start, end


# --- the checks ----------------------------------------------------------------------------------------------------


def check_free(entity: EntityMapping, column: str, marketo: str) -> None:
    """Refuses a column or Marketo field already mapped, or one the sync itself uses (adding a field or an entity)."""
    if column in entity.by_column:
        mapped = entity.by_column[column].marketo
        raise AlreadyExists(f"{entity.entity}.{column} is already mapped (to {mapped})", code="already-mapped")
    if marketo.casefold() in entity.by_marketo:
        other = entity.by_marketo[marketo.casefold()].dynamics
        raise AlreadyExists(
            f"Marketo field {marketo} is already mapped (from {entity.entity}.{other})", code="already-mapped"
        )
    reserved = {entity.marketo_link_field.casefold(), DELETED_FLAG_FIELD.casefold(), "id"}
    if marketo.casefold() in reserved:
        raise AlreadyExists(
            f"Marketo field {marketo} is used by the sync itself (link, id or deletion flag)", code="reserved"
        )
    if column in (SYNC_FILTER_COLUMN, entity.id_column):
        raise AlreadyExists(f"{column} is used by the sync itself (record id or sync filter)", code="reserved")


def _column(dataverse: DataverseClient, entity: EntityMapping, column: str) -> AttributeInfo:
    attribute = next((a for a in dataverse.attributes(entity.entity) if a.logical_name == column), None)
    if attribute is None:
        raise NotPossible(f"{entity.entity}.{column}: {COLUMN_MISSING}", code="column-not-found")
    return attribute


def check_access(
    dataverse: DataverseClient,
    sync_user_id: Callable[[], str],
    entity: EntityMapping,
    attribute: AttributeInfo,
    f: FieldMapping,
) -> None:
    """Refuses a column the sync user cannot read (or write, when the field flows back to Dynamics)."""
    privileges = None
    if attribute.is_secured:
        privileges = dataverse.column_privileges(sync_user_id()).get(attribute.metadata_id or "")
    verdict = column_access(attribute, privileges, writes_back=writes_back(entity, f))
    if not verdict.granted:
        code = "column-not-readable" if not verdict.access.readable else "column-not-writable"
        raise NotPossible(str(verdict), code=code)


def column_facts(dataverse: DataverseClient, entity: EntityMapping, attribute: AttributeInfo) -> ColumnFacts:
    """What the mapping needs to know of a Dataverse column: its sync type, length, options, date behaviour."""
    kind = attribute.attribute_type
    options = None
    cast = OPTION_METADATA.get(kind)
    if cast is not None:
        try:
            options = dataverse.option_labels(entity.entity, attribute.logical_name, cast)
        except SkipRecord:  # a Virtual column that is not a multi-select choice has no such metadata
            options = None
    date_only = kind == "DateTime" and _date_only(dataverse, entity, attribute.logical_name)
    return ColumnFacts(kind, attribute.max_length, options, date_only)


def _date_only(dataverse: DataverseClient, entity: EntityMapping, column: str) -> bool:
    """Date-only columns (``Format`` / ``DateTimeBehavior`` DateOnly) sync as dates, without a time of day."""
    path = (
        f"EntityDefinitions(LogicalName='{entity.entity}')/Attributes(LogicalName='{column}')"
        "/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata"
    )
    body = dataverse.request("GET", path, params={"$select": "LogicalName,Format,DateTimeBehavior"}).json()
    behavior = body.get("DateTimeBehavior")
    behavior_value = behavior.get("Value") if isinstance(behavior, dict) else behavior
    return body.get("Format") == "DateOnly" or behavior_value == "DateOnly"


@dataclass(frozen=True, slots=True)
class MarketoField:
    name: str  # as Marketo spells it
    length: int | None


def _read_only(name: str) -> NotPossible:
    return NotPossible(f"Marketo field {name} is read-only through the API", code="marketo-field-read-only")


def _marketo_field(marketo: MarketoClient, entity: EntityMapping, name: str) -> MarketoField | None:
    """The Marketo field by (case-insensitive) API name; None when missing; refused when it cannot be written."""
    kind = entity.rule.marketo_object
    wanted = name.casefold()
    if kind is MarketoObject.PERSON:
        for lead_field in marketo.describe_leads():
            if (lead_field.rest_name or "").casefold() == wanted:
                if lead_field.read_only:
                    raise _read_only(name)
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
                raise _read_only(name)
            return MarketoField(object_field.name, object_field.length)
    return None


def _create_marketo_field(
    marketo: MarketoClient, entity: EntityMapping, request: AddFieldRequest, kind: FieldType
) -> MarketoField:
    target = entity.rule.marketo_object.value
    if entity.rule.marketo_object is not MarketoObject.PERSON:
        raise NotPossible(
            f"Marketo's API cannot add fields to the {target} object: create {request.marketo} in Marketo Admin, "
            "then add the field again",
            code="marketo-field-not-creatable",
        )
    data_type = MARKETO_DATA_TYPES[kind]
    spec = {
        "name": request.marketo,
        "displayName": request.marketo_display_name or request.marketo,
        "dataType": data_type,
    }
    outcome = marketo.create_lead_fields([spec])[0]
    if not outcome.ok:
        reasons = "; ".join(f"{r.code} {r.message}" for r in outcome.reasons) or str(outcome.status)
        raise NotPossible(f"Marketo did not create {request.marketo}: {reasons}", code="marketo-field-not-created")
    return MarketoField(request.marketo, 255 if data_type == "string" else None)


def _built(facts: ColumnFacts, entity: EntityMapping, request: AddFieldRequest, marketo: MarketoField) -> FieldMapping:
    built = build_field(
        facts,
        dynamics=request.dynamics,
        marketo=marketo.name,
        one_way=request.one_way,
        lookup_part=request.lookup_part,
        marketo_length=marketo.length,
    )
    if isinstance(built, str):
        raise NotPossible(f"{entity.entity}.{request.dynamics}: {built}", code="unsupported-column")
    if request.winner is None:
        return built
    if not entity.rule.two_way or request.one_way:
        what = f"{entity.entity} syncs Dynamics -> Marketo only" if not entity.rule.two_way else "a one_way field"
        raise InvalidRequest(
            f"{what}: Dynamics always wins, so a field of it names no collision winner",
            code="bad-request",
            field="winner",
        )
    return built.model_copy(update={"winner": request.winner})


# --- the endpoints -------------------------------------------------------------------------------------------------


def field_view(f: FieldMapping) -> dict[str, Any]:
    return f.model_dump(mode="json", exclude_defaults=True) | {"state": f.state.value, "type": f.type.value}


@dataclass(frozen=True, slots=True)
class FieldAdded:
    entity: str
    field: FieldMapping
    marketo_field_created: bool
    job: QuickSyncJob

    def view(self) -> dict[str, Any]:
        return {
            "status": "accepted",
            "entity": self.entity,
            "field": field_view(self.field),
            "marketo_field_created": self.marketo_field_created,
            "job": self.job.public(),
        }


def _entity(mapping: LiveMapping, name: str) -> EntityMapping:
    entity = mapping.current().by_entity.get(name.lower())
    if entity is None:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    return entity


def add_field(
    entity_name: str,
    body: bytes,
    *,
    store: StateStore,
    dataverse: DataverseClient,
    marketo: MarketoClient,
    mapping: LiveMapping,
    sync_user_id: Callable[[], str],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FieldAdded:
    """``POST /api/mapping/{entity}/fields``: check, save as ``awaiting_quick_sync``, queue the Quick Sync.

    ``sync_user_id`` is asked only for a secured column (its field security privileges are the user's).
    """
    request = parse_request(body)
    start, end = quick_sync_window(request.quick_sync)
    entity = _entity(mapping, entity_name)
    check_free(entity, request.dynamics, request.marketo)
    attribute = _column(dataverse, entity, request.dynamics)
    facts = column_facts(dataverse, entity, attribute)
    kind = derive_type(facts)
    if not isinstance(kind, FieldType):
        raise NotPossible(f"{entity.entity}.{request.dynamics}: {kind}", code="unsupported-type")
    # Everything Dynamics decides comes before anything is created in Marketo.
    draft = _built(facts, entity, request, MarketoField(request.marketo, None))
    check_access(dataverse, sync_user_id, entity, attribute, draft)
    found = _marketo_field(marketo, entity, request.marketo)
    created = False
    if found is None:
        if not request.create_marketo_field:
            raise NotPossible(
                f"Marketo has no field {request.marketo} on {entity.rule.marketo_object.value}: create it in Marketo "
                'Admin (Field Management), or send "create_marketo_field": true to have it created through the API',
                code="marketo-field-not-found",
            )
        found, created = _create_marketo_field(marketo, entity, request, kind), True
    if kind not in (FieldType.TEXT, FieldType.MEMO):
        found = MarketoField(found.name, None)
    new_field = _built(facts, entity, request, found)

    def change(document: dict[str, Any]) -> bool:
        entry = entity_document(document, entity.entity)
        if entry is None:
            raise NotFound("the entity left the sync mapping", code="not-found")
        check_free(EntityMapping.model_validate(entry), new_field.dynamics, new_field.marketo)
        entry.setdefault("fields", []).append(new_field.model_dump(mode="json", exclude_defaults=True))
        return CHANGED

    mapping.update(change)
    job = create_job(
        store,
        entity.entity,
        new_field,
        now=now(),
        modified_from=start,
        modified_to=end,
        page_size=request.quick_sync.page_size,
    )
    return FieldAdded(entity.entity, new_field, created, job)


@dataclass(frozen=True, slots=True)
class FieldRemoved:
    entity: str
    field: dict[str, Any]  # as it was in the mapping document

    def view(self) -> dict[str, Any]:
        return {"status": "removed", "entity": self.entity, "field": self.field}


def remove_field(entity_name: str, column: str, *, store: StateStore, mapping: LiveMapping) -> FieldRemoved:
    """``DELETE /api/mapping/{entity}/fields/{column}``: refused while its Quick Sync is queued or running."""
    entity = _entity(mapping, entity_name)
    if column not in entity.by_column:
        raise NotFound("the field is not mapped", code="not-found")
    busy = Busy("a field cannot be removed while its Quick Sync is queued or running", code="quick-sync-active")
    if entity.by_column[column].state.in_quick_sync or active_job(store, entity.entity, column):
        raise busy
    removed: dict[str, Any] = {}

    def change(document: dict[str, Any]) -> bool:
        entry = entity_document(document, entity.entity)
        fields = (entry or {}).get("fields", [])
        match = next((f for f in fields if f.get("dynamics") == column), None)
        if entry is None or match is None:
            raise NotFound("the field is not mapped", code="not-found")
        if FieldState(match.get("state", FieldState.ACTIVE.value)).in_quick_sync:
            raise busy
        removed.clear()
        removed.update(match)
        entry["fields"] = [f for f in fields if f is not match]
        return CHANGED

    mapping.update(change)
    return FieldRemoved(entity.entity, removed)


def show_mapping(store: StateStore, mapping: LiveMapping) -> dict[str, Any]:
    """``GET /api/mapping``: every entity and field with its state (and the Quick Sync job of a new field)."""
    active = {(j.entity, j.column): j for j in list_jobs(store) if j.state.active}
    entities = []
    for entity in mapping.current().entities:
        fields = []
        for f in entity.fields:
            view = field_view(f)
            job = active.get((entity.entity, f.dynamics))
            if job is not None:
                view["quick_sync"] = {"job": job.id, "state": job.state.value, "records_done": job.records_done}
            fields.append(view)
        entities.append(
            {
                "entity": entity.entity,
                "state": entity.state.value,
                "direction": entity.direction.value,
                "marketo_object": entity.rule.marketo_object.value,
                "link_field": entity.marketo_link_field,
                "fields": fields,
            }
        )
    return {"entities": entities}
