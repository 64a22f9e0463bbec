"""Force resync: the records of one entity (some by id, those modified in a date range, or all of them) reconciled
again, as a backfill job behind live traffic.

``POST /api/resync {entity, ids? | modified_from?/modified_to?, mode, page_size?}`` queues a job in the Quick Sync
job store (:mod:`.jobs`, kind ``resync``); the job runner (:mod:`.timer`, started at once by a nudge, resumed by
its timer) works it page by page, saving the job after each page:

* ``both_ways``: each page's record ids are sent on the changes queue (marked pending first, as every intake
  does), and the reconcile decides each record afresh, both ways, by the sync's rules. A page waits while more
  than half of the previous page is still pending, so the resync never floods the queue ahead of live changes;
  the run then ends and is nudged again after :data:`PACE`.
* ``refresh_marketo``: each page's mapped values are read from Dynamics and written to the linked Marketo records
  (each field as Quick Sync writes one, baselines saved on the links' ETags), paced by the Marketo rate limiter.

The same request while its job is queued or running answers that job (200) instead of starting a second one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldFlow, FieldMapping, FieldState, SyncMapping
from shared.core.pending import MarkKey
from shared.dataverse.client import DataverseClient
from shared.dataverse.records import Record
from shared.errors import InvalidRequest
from shared.marketo.client import MarketoClient
from shared.pipeline.fields import parse_instant
from shared.pipeline.notification import Notification, Source
from shared.pipeline.ports import ChangesQueue
from shared.pipeline.quicksync.backfill import Backfill, range_filter
from shared.pipeline.quicksync.jobs import (
    MAX_PAGE_SIZE,
    JobKind,
    JobState,
    QuickSyncJob,
    iso,
    list_jobs,
    new_job_id,
    save_job,
)
from shared.pipeline.request_body import json_object
from shared.store.base import StateStore

MAX_IDS = 1000
PAGE_SIZE = 300  # records per page: one reconcile batch's worth, one Marketo call per field
PACE = timedelta(seconds=0.5)  # a paced run is nudged again after this long


class Mode(StrEnum):
    BOTH_WAYS = "both_ways"
    REFRESH_MARKETO = "refresh_marketo"


class Scope(StrEnum):
    RECORD = "record"
    ENTITY = "entity"
    MODIFIED = "modified"


class ResyncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str = Field(min_length=1, max_length=128)
    mode: str = Mode.BOTH_WAYS.value
    ids: list[str] | None = None
    modified_from: str | None = None
    modified_to: str | None = None
    page_size: int | None = Field(default=None, ge=1, le=MAX_PAGE_SIZE)


@dataclass(frozen=True, slots=True)
class ResyncRequest:
    entity: str
    mode: Mode
    scope: Scope
    ids: tuple[str, ...] = ()
    modified_from: str | None = None
    modified_to: str | None = None
    page_size: int | None = None


def _refuse(message: str, where: str) -> InvalidRequest:
    return InvalidRequest(message, code="bad-request", field=where)


def problem(exc: ValidationError, keys: list[str]) -> tuple[str, str]:
    """The message and the field of a body's first problem; an unknown key is not repeated back."""
    first = exc.errors()[0]
    if first["type"] == "extra_forbidden":
        return f"unknown key (the keys are {', '.join(keys)})", "body"
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}", where


def parse_resync(body: bytes, mapping: SyncMapping) -> ResyncRequest:
    """The request, checked: 400 naming the field for anything the job could not run."""
    data = json_object(body)
    try:
        parsed = ResyncBody.model_validate(data)
    except ValidationError as exc:
        raise _refuse(*problem(exc, list(ResyncBody.model_fields))) from None
    entity = parsed.entity.lower()
    if entity not in mapping.by_entity:
        raise _refuse("the entity is not in the sync mapping", "entity")
    try:
        mode = Mode(parsed.mode)
    except ValueError:
        raise _refuse(f"mode must be one of {', '.join(m.value for m in Mode)}", "mode") from None
    bounds: dict[str, str | None] = {}
    for name, text, end_of_day in (
        ("modified_from", parsed.modified_from, False),
        ("modified_to", parsed.modified_to, True),
    ):
        try:
            bounds[name] = parse_instant(text, end_of_day=end_of_day) if text else None
        except ValueError as exc:
            raise _refuse(f"{name}: {exc}", name) from None
    start, end = bounds["modified_from"], bounds["modified_to"]
    if start and end and start > end:
        raise _refuse("modified_from is after modified_to", "modified_from")
    if parsed.ids is not None:
        if start or end:
            raise _refuse("send either ids or a modified_from/modified_to range, not both", "ids")
        return ResyncRequest(entity, mode, Scope.RECORD, _ids(parsed.ids), page_size=parsed.page_size)
    scope = Scope.MODIFIED if start or end else Scope.ENTITY
    return ResyncRequest(entity, mode, scope, (), start, end, parsed.page_size)


def _ids(given: list[str]) -> tuple[str, ...]:
    if not given:
        raise _refuse("ids is empty: name at least one record (or leave ids out for the whole entity)", "ids")
    if len(given) > MAX_IDS:
        raise _refuse(f"at most {MAX_IDS} ids per resync (got {len(given)}): use a modified range", "ids")
    out: dict[str, None] = {}
    for n, text in enumerate(given):
        try:
            out[str(uuid.UUID(text.strip()))] = None
        except (ValueError, AttributeError):
            raise _refuse(f"ids[{n}] is not a Dynamics record id (a GUID)", f"ids.{n}") from None
    return tuple(out)


def _same(job: QuickSyncJob, request: ResyncRequest) -> bool:
    return (
        job.kind is JobKind.RESYNC
        and job.state.active
        and (job.entity, job.mode, job.scope) == (request.entity, request.mode.value, request.scope.value)
        and tuple(job.ids) == request.ids
        and (job.modified_from, job.modified_to) == (request.modified_from, request.modified_to)
    )


def start_resync(store: StateStore, mapping: SyncMapping, body: bytes, *, now: datetime) -> tuple[QuickSyncJob, bool]:
    """The queued job, and whether it is new (False: the same resync was queued or running already)."""
    request = parse_resync(body, mapping)
    running = next((j for j in list_jobs(store) if _same(j, request)), None)
    if running is not None:
        return running, False
    job = QuickSyncJob(
        id=new_job_id(now, request.entity, "resync"),
        entity=request.entity,
        column="",
        marketo_field="",
        state=JobState.QUEUED,
        created_at=iso(now),
        modified_from=request.modified_from,
        modified_to=request.modified_to,
        page_size=request.page_size,
        kind=JobKind.RESYNC,
        mode=request.mode.value,
        scope=request.scope.value,
        ids=list(request.ids),
        records_total=len(request.ids) or None,
    )
    return save_job(store, job, now), True


@dataclass(slots=True)
class ResyncPage:
    read: int = 0
    done: int = 0
    unlinked: int = 0
    failed: int = 0
    next_link: str | None = None
    last: bool = False
    paced: bool = False  # the previous page is still mostly pending: nothing read, the run ends here
    queued: list[str] = field(default_factory=list)


def refreshed_fields(entity: EntityMapping) -> list[FieldMapping]:
    """The fields a refresh writes to Marketo: active, and not owned by Marketo."""
    return [f for f in entity.fields if f.state is FieldState.ACTIVE and f.direction is not FieldFlow.TO_DYNAMICS]


@dataclass(frozen=True, slots=True)
class Resync:
    store: StateStore
    dataverse: DataverseClient
    marketo: MarketoClient
    entity: EntityMapping
    changes: ChangesQueue | None

    def page(self, job: QuickSyncJob, page_size: int, moment: datetime) -> ResyncPage:
        if job.mode == Mode.BOTH_WAYS and self._busy(job):
            return ResyncPage(paced=True)
        records, outcome = self._read(job, page_size)
        outcome.read = len(records) if records is not None else len(outcome.queued)
        if job.mode == Mode.BOTH_WAYS:
            ids = outcome.queued or [r.id for r in records or []]
            self._queue(job, ids)
            outcome.queued, outcome.done = ids, len(ids)
        else:
            self._refresh(records or [], outcome, moment)
        return outcome

    def _read(self, job: QuickSyncJob, page_size: int) -> tuple[list[Record] | None, ResyncPage]:
        """The page's records (refresh) or ids (both ways, by id: nothing to read)."""
        outcome = ResyncPage()
        refresh = job.mode == Mode.REFRESH_MARKETO
        columns = [f.selected_as for f in refreshed_fields(self.entity)] if refresh else []
        if self.entity.sync_filter and refresh:
            columns.append(SYNC_FILTER_COLUMN)
        if job.scope == Scope.RECORD:
            chunk = job.ids[job.records_read : job.records_read + page_size]
            outcome.last = job.records_read + len(chunk) >= len(job.ids)
            if not refresh:
                outcome.queued = list(chunk)
                return None, outcome
            found = self.dataverse.read_by_ids(self.entity.entity, chunk, columns)
            outcome.unlinked += len(chunk) - len(found)  # deleted in Dynamics: nothing to refresh
            return list(found.values()), outcome
        records, next_link = self.dataverse.query_page(
            self.entity.entity,
            select=columns,
            filter=range_filter(job.modified_from, job.modified_to),
            page_size=page_size,
            next_link=job.next_link,
        )
        outcome.next_link, outcome.last = next_link, next_link is None
        return records, outcome

    def _busy(self, job: QuickSyncJob) -> bool:
        """More than half of the previous page still pending (not reconciled yet)?"""
        previous = job.in_flight
        if not previous:
            return False
        marks = self.store.pending.get_many([MarkKey(self.entity.entity, i.lower()) for i in previous])
        return 2 * len(marks) > len(previous)

    def _queue(self, job: QuickSyncJob, ids: list[str]) -> None:
        if self.changes is None:
            raise RuntimeError("a both-ways resync needs the changes queue")
        notes = [
            Notification(
                source=Source.ADMIN_RESYNC,
                entity=self.entity.entity,
                dynamics_id=i,
                dedupe_key=f"resync:{job.id}:{job.records_read}",
                correlation_id=job.id,
            )
            for i in ids
        ]
        self.changes.send(notes)  # marked pending first: the marks, not the messages, hold the work

    def _refresh(self, records: list[Record], outcome: ResyncPage, moment: datetime) -> None:
        """Every refreshed field's Dynamics value to the linked Marketo records, as Quick Sync writes one field."""
        per_field = []
        for f in refreshed_fields(self.entity):
            backfill = Backfill(self.store, self.dataverse, self.marketo, self.entity, f)
            per_field.append(backfill.push(records, moment))
        if not per_field:
            return
        outcome.done = min(o.done for o in per_field)
        outcome.failed = max(o.failed for o in per_field)
        outcome.unlinked += max(o.unlinked + o.filtered for o in per_field)
