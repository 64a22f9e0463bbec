"""Adding and removing synced entities while the sync runs (Marketo's "enable a custom entity later").

Adding one (``POST /api/mapping/entities``) checks, in order, before anything is saved: the request is usable;
the entity is one that can be added (a custom entity, or ``team``: the one-way entities that sync to a Marketo
custom object, :mod:`shared.core.entities`); it is not mapped yet; the table exists in Dynamics (the sync never
creates one) and the sync user can read it; the Marketo custom object exists, has the link field, and dedupes on
it (the sync upserts on it; it never creates Marketo objects either); then every requested field as
``POST /api/mapping/{entity}/fields`` checks one (:mod:`shared.pipeline.fields`): the column exists, converts, is
readable by the sync user, and the custom object has a writable field for it. The table's ``new_synctomkto``
column, if it has one, becomes the entity's sync filter. The entity is saved in the mapping document on its ETag
in state ``initial_sync`` (two adds of one entity at once: one is saved, the other is refused as already mapped),
so every instance picks it up at its next mapping refresh; then its initial sync job is queued
(:mod:`shared.pipeline.quicksync.initial`), to start once every instance has had the time to see it.

Removing one (``DELETE /api/mapping/entities/{entity}``) takes it out of the mapping document and cancels its
queued and running jobs (initial sync, Quick Sync of its fields, resyncs). Its links and baselines stay in the
state store: re-adding the entity later links the same Marketo records again, and its initial sync writes every
field of every record again. A second removal answers 404: the entity is not in the mapping.

Every refusal is a :class:`Refused` error naming the problem (and the request field) without repeating values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.entities import BUILT_IN, MarketoObject, rule_for
from shared.core.fields import ColumnFacts, build_field, derive_type
from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, EntityState, FieldMapping, FieldState, FieldType
from shared.dataverse.client import AttributeInfo, DataverseClient
from shared.errors import AlreadyExists, Conflict, InvalidRequest, NotFound, NotPossible, SkipRecord, StopSync
from shared.marketo.client import MarketoClient
from shared.marketo.models import ObjectDescription
from shared.pipeline.fields import (
    COLUMN_MISSING,
    COLUMN_PATTERN,
    DYNAMICS_CREATION_KEYS,
    MARKETO_FIELD_PATTERN,
    MAX_NAME_LENGTH,
    AddFieldRequest,
    check_access,
    check_free,
    column_facts,
    field_view,
)
from shared.pipeline.ports import LiveMapping
from shared.pipeline.quicksync.initial import active_initial_sync, new_initial_sync_job
from shared.pipeline.quicksync.jobs import MAX_PAGE_SIZE, JobState, QuickSyncJob, iso, list_jobs, save_job
from shared.pipeline.request_body import json_object
from shared.store.base import StateStore
from shared.store.mapping import CHANGED, entity_document

log = logging.getLogger(__name__)

PRIVILEGE_DENIED = "0x80040220"  # Dataverse's PrivilegeDenied: the user's security role lacks a privilege
MARKETO_NOT_FOUND = frozenset({"610", "1013"})  # "Requested resource not found", "Object not found"
MAX_FIELDS = 200
ADDABLE_BUILT_IN = frozenset({"team"})


def addable(entity: str) -> bool:
    """Entities added and removed at runtime: custom entities and teams (one way, to a Marketo custom object)."""
    return entity not in BUILT_IN or entity in ADDABLE_BUILT_IN


class AddEntityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str = Field(pattern=COLUMN_PATTERN, max_length=MAX_NAME_LENGTH, description="Dataverse table")
    marketo_object: MarketoObject = Field(
        default=MarketoObject.CUSTOM_OBJECT, description="what it becomes in Marketo (custom_object)"
    )
    custom_object: str = Field(pattern=MARKETO_FIELD_PATTERN, max_length=MAX_NAME_LENGTH)
    link_field: str | None = Field(default=None, pattern=MARKETO_FIELD_PATTERN, max_length=MAX_NAME_LENGTH)
    fields: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_FIELDS)
    page_size: int | None = Field(default=None, ge=1, le=MAX_PAGE_SIZE, description="the initial sync's pages")


def _bad(message: str, where: str) -> InvalidRequest:
    return InvalidRequest(message, code="bad-request", field=where)


def _validation_problem(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> InvalidRequest:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if first["type"] == "extra_forbidden":
        where = prefix + (".".join(loc[:-1]) or "body")
        return _bad(f"{where}: unknown key (the keys are {', '.join(model.model_fields)})", where)
    where = prefix + (".".join(loc) or "body")
    return _bad(f"{where}: {first['msg']}", where)


def parse_add(body: bytes) -> tuple[AddEntityRequest, list[AddFieldRequest]]:
    data = json_object(body)
    try:
        request = AddEntityRequest.model_validate(data)
    except ValidationError as exc:
        raise _validation_problem(exc, AddEntityRequest) from None
    fields = []
    for n, item in enumerate(request.fields):
        if any(item.get(key) for key in DYNAMICS_CREATION_KEYS):
            raise NotPossible(
                "the sync never creates Dynamics columns: create the column in Dynamics first",
                code="dynamics-column-creation-refused",
            )
        if "quick_sync" in item:
            raise _bad(f"fields.{n}.quick_sync: the initial sync copies every field of every record", f"fields.{n}")
        try:
            fields.append(AddFieldRequest.model_validate(item))
        except ValidationError as exc:
            raise _validation_problem(exc, AddFieldRequest, f"fields.{n}.") from None
    return request, fields


# --- the checks ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableFacts:
    entity_set: str
    attributes: dict[str, AttributeInfo]
    change_tracking: bool


def _table(dataverse: DataverseClient, entity: str) -> TableFacts:
    """The table as Dataverse defines it; refused when it does not exist or the sync user cannot read it."""
    try:
        info = dataverse.entity(entity)
    except SkipRecord:
        raise NotPossible(
            f"Dynamics has no table {entity}: create it in Dynamics first — the sync never creates tables",
            code="table-not-found",
        ) from None
    if info.primary_id_attribute != f"{entity}id":
        raise NotPossible(f"{entity}'s primary key is not {entity}id: the sync cannot key it", code="unsupported-table")
    try:
        list(dataverse.query(entity, select=[info.primary_id_attribute], top=1))
    except StopSync as exc:
        if exc.code != PRIVILEGE_DENIED:
            raise
        raise NotPossible(
            f"the sync user cannot read {entity}: give the sync's security role Read on the table (Organization "
            "level), then add it again",
            code="table-not-readable",
        ) from None
    attributes = {a.logical_name: a for a in dataverse.attributes(entity)}
    definition = dataverse.request(
        "GET", f"EntityDefinitions(LogicalName='{entity}')", params={"$select": "ChangeTrackingEnabled"}
    ).json()
    return TableFacts(info.entity_set_name, attributes, bool(definition.get("ChangeTrackingEnabled")))


def _custom_object(marketo: MarketoClient, api_name: str, link_field: str) -> tuple[ObjectDescription, str]:
    """The custom object's description and the link field as Marketo spells it; refused when either is missing,
    or when the object does not dedupe on the link field (the sync upserts on it)."""
    try:
        description = marketo.describe_custom_object(api_name)
    except (StopSync, SkipRecord) as exc:
        if exc.code not in MARKETO_NOT_FOUND:
            raise
        description = None
    if description is None or not description.name:
        raise NotPossible(
            f"Marketo has no custom object {api_name}: create it in Marketo Admin (Custom Objects) and approve it, "
            "then add the entity again — the sync never creates Marketo objects",
            code="marketo-object-not-found",
        )
    link = next((f.name for f in description.fields if f.name.casefold() == link_field.casefold()), None)
    if link is None:
        raise NotPossible(
            f"Marketo custom object {api_name} has no field {link_field} to hold the Dynamics id: add it (a string "
            "field, the object's dedupe field) in Marketo Admin, or name the field that holds it in link_field",
            code="marketo-link-field-not-found",
        )
    if link.casefold() not in {d.casefold() for d in description.dedupe_fields}:
        raise NotPossible(
            f"Marketo custom object {api_name} does not dedupe on {link}: the sync upserts on the field holding the "
            "Dynamics id, so it must be the object's dedupe field",
            code="marketo-link-field-not-dedupe",
        )
    return description, link


def _field(
    dataverse: DataverseClient,
    sync_user_id: Callable[[], str],
    draft: EntityMapping,
    table: TableFacts,
    description: ObjectDescription,
    request: AddFieldRequest,
) -> FieldMapping:
    """One requested field, checked as the fields API checks one; active at once (the initial sync copies it)."""
    name = draft.entity
    check_free(draft, request.dynamics, request.marketo)
    attribute = table.attributes.get(request.dynamics)
    if attribute is None:
        raise NotPossible(f"{name}.{request.dynamics}: {COLUMN_MISSING}", code="column-not-found")
    facts: ColumnFacts = column_facts(dataverse, draft, attribute)
    kind = derive_type(facts)
    if not isinstance(kind, FieldType):
        raise NotPossible(f"{name}.{request.dynamics}: {kind}", code="unsupported-type")
    wanted = request.marketo.casefold()
    target = next((f for f in description.fields if f.name.casefold() == wanted), None)
    if target is None:
        raise NotPossible(
            f"Marketo custom object {description.name} has no field {request.marketo}: add it in Marketo Admin "
            "(Marketo's API cannot add fields to custom objects for the sync), then add the entity again",
            code="marketo-field-not-found",
        )
    if not target.updateable:
        raise NotPossible(f"Marketo field {target.name} is read-only through the API", code="marketo-field-read-only")
    built = build_field(
        facts,
        dynamics=request.dynamics,
        marketo=target.name,
        one_way=request.one_way,
        lookup_part=request.lookup_part,
        marketo_length=target.length if kind in (FieldType.TEXT, FieldType.MEMO) else None,
        state=FieldState.ACTIVE,
    )
    if isinstance(built, str):
        raise NotPossible(f"{name}.{request.dynamics}: {built}", code="unsupported-column")
    check_access(dataverse, sync_user_id, draft, attribute, built)
    return built


# --- the endpoints -------------------------------------------------------------------------------------------------


def entity_view(entity: EntityMapping) -> dict[str, Any]:
    return {
        "entity": entity.entity,
        "state": entity.state.value,
        "direction": entity.direction.value,
        "marketo_object": entity.rule.marketo_object.value,
        "custom_object": entity.custom_object,
        "link_field": entity.marketo_link_field,
        "sync_filter": entity.sync_filter,
        "fields": [field_view(f) for f in entity.fields],
    }


@dataclass(frozen=True, slots=True)
class EntityAdded:
    entity: EntityMapping
    job: QuickSyncJob
    change_tracking: bool

    def notices(self) -> list[str]:
        notes = [
            "live changes of the table reach the sync through its plug-in steps only once `python -m shared.setup "
            "register` has run again (it registers the steps of every mapped table)"
        ]
        if self.change_tracking:
            notes.append("meanwhile the catch-up timer reads its changes through change tracking")
        else:
            notes.append(
                "change tracking is off for the table: changes whose webhook is lost are never caught up — turn on "
                "'Track changes' in the table's properties (Power Apps > Tables > Properties > Advanced options)"
            )
        return notes

    def view(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "status": "accepted",
            "entity": entity_view(self.entity),
            "change_tracking": self.change_tracking,
            "job": self.job.public(now),
            "notices": self.notices(),
        }


def add_entity(
    body: bytes,
    *,
    store: StateStore,
    dataverse: DataverseClient,
    marketo: MarketoClient,
    mapping: LiveMapping,
    sync_user_id: Callable[[], str],
    now: datetime,
    settle: timedelta = timedelta(0),
) -> EntityAdded:
    """Check, save the entity (state ``initial_sync``) on the document's ETag, queue its initial sync job, which
    starts after ``settle`` (the instances' mapping refresh interval). ``sync_user_id`` is asked only for a secured
    column."""
    request, field_requests = parse_add(body)
    name = request.entity
    if not addable(name):
        raise NotPossible(
            f"{name} is part of the sync's core mapping: only custom entities and team are added at runtime",
            code="entity-not-addable",
        )
    rule = rule_for(name)
    if request.marketo_object is not rule.marketo_object:
        raise _bad(f"marketo_object: {name} syncs to a Marketo {rule.marketo_object.value}", "marketo_object")
    if name in mapping.current().by_entity:
        raise AlreadyExists(f"{name} is already in the sync mapping", code="already-mapped")
    table = _table(dataverse, name)
    description, link = _custom_object(marketo, request.custom_object, request.link_field or rule.marketo_key)
    filter_column = table.attributes.get(SYNC_FILTER_COLUMN)
    entry: dict[str, Any] = {"entity": name, "custom_object": description.name or request.custom_object}
    if name not in BUILT_IN:
        entry["entity_set"] = table.entity_set
    if link != rule.marketo_key:
        entry["link_field"] = link
    if filter_column is not None and filter_column.attribute_type == "Boolean":
        entry["sync_filter"] = True
    draft = _validated(entry)
    fields: list[FieldMapping] = []
    for n, field_request in enumerate(field_requests):
        try:
            fields.append(_field(dataverse, sync_user_id, draft, table, description, field_request))
        except NotPossible as exc:
            raise NotPossible(f"fields.{n}: {exc.message}", code=exc.code) from None
        draft = _validated({**entry, "fields": [f.model_dump(mode="json", exclude_defaults=True) for f in fields]})
    document_entry = {**draft.model_dump(mode="json", exclude_defaults=True), "state": EntityState.INITIAL_SYNC.value}

    def change(document: dict[str, Any]) -> bool:
        if entity_document(document, name) is not None:
            raise AlreadyExists(f"{name} is already in the sync mapping", code="already-mapped")
        document.setdefault("entities", []).append(document_entry)
        return CHANGED

    saved = mapping.update(change).get(name)
    job = active_initial_sync(store, name) or new_initial_sync_job(
        store, name, now=now, change_tracking=table.change_tracking, settle=settle, page_size=request.page_size
    )
    log.info("entity %s added to the mapping (%d fields); initial sync job %s", name, len(fields), job.id)
    return EntityAdded(saved, job, table.change_tracking)


def _validated(entry: dict[str, Any]) -> EntityMapping:
    try:
        return EntityMapping.model_validate(entry)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise NotPossible(f"the entity would not be a valid mapping: {problem}", code="invalid-mapping") from None


@dataclass(frozen=True, slots=True)
class EntityRemoved:
    entity: str
    removed: dict[str, Any]  # its part of the mapping document, as it was
    cancelled: list[str]

    def view(self) -> dict[str, Any]:
        return {
            "status": "removed",
            "entity": self.entity,
            "mapping": self.removed,
            "jobs_cancelled": self.cancelled,
            "links": "kept: re-adding the entity links the same Marketo records again",
        }


def remove_entity(entity_name: str, *, store: StateStore, mapping: LiveMapping, now: datetime) -> EntityRemoved:
    """``DELETE /api/mapping/entities/{entity}``: out of the mapping, its jobs cancelled, its links kept."""
    name = entity_name.strip().lower()
    if name not in mapping.current().by_entity:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    if not addable(name):
        raise NotPossible(
            f"{name} is part of the sync's core mapping: only custom entities and team are removed at runtime",
            code="entity-not-removable",
        )
    removed: dict[str, Any] = {}

    def change(document: dict[str, Any]) -> bool:
        entry = entity_document(document, name)
        if entry is None:
            raise NotFound("the entity is not in the sync mapping", code="not-found")
        removed.clear()
        removed.update(entry)
        document["entities"] = [e for e in document.get("entities", []) if e is not entry]
        return CHANGED

    mapping.update(change)
    cancelled = _cancel_jobs(store, name, now)
    log.info("entity %s removed from the mapping; %d job(s) cancelled", name, len(cancelled))
    return EntityRemoved(name, removed, cancelled)


def _cancel_jobs(store: StateStore, entity: str, now: datetime) -> list[str]:
    """Every queued or running job of the entity, cancelled on its ETag (a runner working one stops at its next
    save: it finds the job moved on)."""
    cancelled = []
    for job in list_jobs(store):
        if job.entity != entity or not job.state.active:
            continue
        job.state, job.finished_at, job.next_link = JobState.CANCELLED, iso(now), None
        job.notice = f"{job.kind.value} of {entity} cancelled: the entity was removed from the sync mapping"
        with suppress(Conflict):  # moved on meanwhile: the runner cancels it itself (the entity is unmapped)
            save_job(store, job, now)
            cancelled.append(job.id)
    return cancelled


def list_entities(store: StateStore, mapping: LiveMapping, now: datetime) -> dict[str, Any]:
    """``GET /api/mapping/entities``: each mapped entity, its state, and the initial sync job of one being added."""
    entities = []
    for entity in mapping.current().entities:
        view = entity_view(entity) | {"fields": len(entity.fields), "addable": addable(entity.entity)}
        job = active_initial_sync(store, entity.entity)
        if job is not None:
            view["initial_sync"] = job.public(now)
        entities.append(view)
    return {"entities": entities}
