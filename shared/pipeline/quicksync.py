"""Quick Sync: a field added while the sync runs is refreshed from Dynamics to Marketo for every linked record.

One job per added field lives in the state store as a checkpoint named ``quicksync:<job id>``: its state, the
optional ``modifiedon`` range, progress counters and the Dataverse ``@odata.nextLink`` to resume from. The timer
works the queued and running jobs page by page within a time budget and saves the job after every page, on the
checkpoint's ETag: two instances never both advance one job, and a run cut short resumes at the next page.

Per page: only records linked to Marketo are written (persons updated by Marketo id, one-way objects upserted on
their link field), nulls included; then the column's baseline is saved on each link's ETag. A link saved by the
live sync in between is re-read with its Dynamics record and pushed once more, so the value the live sync settled
cannot be overwritten by the older one read here; if it keeps moving, the record is left to the live sync.

The field's state in the mapping document moves ``awaiting_quick_sync`` -> ``quick_sync_running`` -> ``active``;
the live sync meanwhile refreshes records it touches from Dynamics (``Reason.QUICK_SYNC`` in the policy).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.core.mapping import EntityMapping, FieldMapping, FieldState, FieldType, MappingError, SyncMapping
from shared.core.mapping import load_mapping as parse_mapping
from shared.core.values import ConversionError, from_dynamics, to_marketo
from shared.dataverse.paging import NextLinkPaginator
from shared.dataverse.records import Record, record_from_row
from shared.errors import Conflict, SkipRecord, StopSync, SyncError
from shared.marketo.models import RecordOutcome
from shared.pipeline import marketo_side
from shared.pipeline.feeds import timer_checkpoint
from shared.pipeline.reconcile import TO_MARKETO
from shared.pipeline.webhooks import Reply, problem
from shared.services import Services
from shared.settings import Settings
from shared.store.base import MAPPING_DOCUMENT, StateStore
from shared.store.model import Checkpoint, SyncErrorRecord

log = logging.getLogger(__name__)

JOB_PREFIX = "quicksync:"
TIMER = "quick_sync"
MAX_PAGE_SIZE = 5000
MAPPING_SAVE_ATTEMPTS = 8
SETTLE_ROUNDS = 2  # re-pushes of records whose link the live sync saved while this page was in flight


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How much one timer run may do. The function timeout is 10 minutes: stop well before it."""

    budget_seconds: float = 480.0
    page_size: int = MAX_PAGE_SIZE


DEFAULT_LIMITS = RunLimits()


def run_limits(settings: Settings) -> RunLimits:
    """``QUICK_SYNC_BUDGET_SECONDS`` / ``QUICK_SYNC_PAGE_SIZE``."""
    return RunLimits(
        budget_seconds=settings.quick_sync_budget_seconds,
        page_size=settings.quick_sync_page_size,
    )


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"  # the field left the mapping before its Quick Sync finished

    @property
    def active(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class QuickSyncJob:
    """One field's Quick Sync; serialised as the checkpoint's JSON value (``etag`` is the checkpoint's)."""

    id: str
    entity: str
    column: str
    marketo_field: str
    state: JobState
    created_at: str
    modified_from: str | None = None  # inclusive instants, ``YYYY-MM-DDTHH:MM:SSZ``
    modified_to: str | None = None
    page_size: int | None = None  # None: the run's page size
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    next_link: str | None = None
    paged_all: bool = False
    runs: int = 0
    pages: int = 0
    records_read: int = 0
    records_done: int = 0
    records_unlinked: int = 0
    records_failed: int = 0
    records_left_to_live_sync: int = 0
    restarts: int = 0
    last_error: str | None = None
    notice: str | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def checkpoint_name(self) -> str:
        return JOB_PREFIX + self.id

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("etag")
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> QuickSyncJob:
        doc = json.loads(checkpoint.value)
        known = {f.name for f in fields(cls)} - {"etag"}
        values = {k: v for k, v in doc.items() if k in known}
        values["state"] = JobState(values["state"])
        return cls(**values, etag=checkpoint.etag)

    def public(self) -> dict[str, Any]:
        """What the admin endpoints and the status view show (the resume link is internal)."""
        doc = self.to_doc()
        doc.pop("next_link")
        doc["resumable"] = self.next_link is not None
        return doc


# --- the job store -------------------------------------------------------------------------------------------------


def list_jobs(store: StateStore) -> list[QuickSyncJob]:
    """Every job, oldest first."""
    jobs = [QuickSyncJob.from_checkpoint(c) for c in store.list_checkpoints() if c.name.startswith(JOB_PREFIX)]
    return sorted(jobs, key=lambda j: (j.created_at, j.id))


def active_job(store: StateStore, entity: str, column: str) -> QuickSyncJob | None:
    return next((j for j in list_jobs(store) if j.entity == entity and j.column == column and j.state.active), None)


def save_job(store: StateStore, job: QuickSyncJob, now: datetime) -> QuickSyncJob:
    """Conditional on the job's ETag; raises :class:`Conflict` when another instance saved it first."""
    job.updated_at = _iso(now)
    saved = store.save_checkpoint(Checkpoint(job.checkpoint_name, json.dumps(job.to_doc()), now, job.etag))
    job.etag = saved.etag
    return job


def create_job(
    store: StateStore,
    entity: str,
    f: FieldMapping,
    *,
    modified_from: str | None = None,
    modified_to: str | None = None,
    page_size: int | None = None,
    now: datetime | None = None,
) -> QuickSyncJob:
    moment = now or datetime.now(UTC)
    job_id = f"{moment.astimezone(UTC):%Y%m%dT%H%M%S}-{entity}-{f.dynamics}-{uuid.uuid4().hex[:6]}"
    job = QuickSyncJob(
        id=job_id,
        entity=entity,
        column=f.dynamics,
        marketo_field=f.marketo,
        state=JobState.QUEUED,
        created_at=_iso(moment),
        modified_from=modified_from,
        modified_to=modified_to,
        page_size=page_size,
    )
    return save_job(store, job, moment)


def quick_sync_status(services: Services) -> list[dict[str, Any]]:
    """Every job with its progress, newest first: for the Sync Status view."""
    return [j.public() for j in reversed(list_jobs(services.store))]


def list_jobs_reply(services: Services) -> Reply:
    jobs = quick_sync_status(services)
    active = sum(1 for j in jobs if JobState(j["state"]).active)
    return Reply(200, {"count": len(jobs), "active": active, "jobs": jobs})


# --- the mapping document ----------------------------------------------------------------------------------------


def edit_mapping(services: Services, change: Callable[[dict[str, Any]], Reply | None]) -> SyncMapping | Reply:
    """Apply ``change`` to the stored mapping document and save it on its ETag, re-reading on a conflict.

    ``change`` edits the decoded document in place, or returns a :class:`Reply` to refuse (it is re-run on the
    freshest document after a conflict, so its checks see what another instance just saved). The result is
    validated like any mapping before it is saved, and this process reloads it at once.
    """
    for _ in range(MAPPING_SAVE_ATTEMPTS):
        stored = services.store.get_document(MAPPING_DOCUMENT)
        if stored is None:
            services.reload_mapping()  # seeds the document from the mapping file
            stored = services.store.get_document(MAPPING_DOCUMENT)
            if stored is None:
                raise StopSync("the mapping document could not be seeded in the state store")
        text, etag = stored
        document: dict[str, Any] = json.loads(text)
        refused = change(document)
        if refused is not None:
            return refused
        try:
            parse_mapping(document)
        except MappingError as exc:
            return problem(422, "invalid-mapping", str(exc))
        try:
            services.store.save_document(MAPPING_DOCUMENT, json.dumps(document, indent=2), etag)
        except Conflict:
            continue
        return services.reload_mapping()
    raise Conflict("the mapping document kept changing under us; try again")


def entity_document(document: dict[str, Any], entity: str) -> dict[str, Any] | None:
    return next((e for e in document.get("entities", []) if str(e.get("entity", "")).lower() == entity), None)


def set_field_state(
    services: Services, entity: str, column: str, state: FieldState, *, only_from: Iterable[FieldState]
) -> bool:
    """Move a field to ``state`` if it is still mapped and in one of ``only_from``; True if it was moved."""
    allowed = {s.value for s in only_from}
    moved = False

    def change(document: dict[str, Any]) -> Reply | None:
        nonlocal moved
        moved = False
        found = entity_document(document, entity)
        for f in (found or {}).get("fields", []):
            if f.get("dynamics") == column and f.get("state", FieldState.ACTIVE.value) in allowed:
                if f.get("state", FieldState.ACTIVE.value) == state.value:
                    return Reply(200, None)  # already there: nothing to save
                f["state"] = state.value
                moved = True
                return None
        return Reply(404, None)

    edit_mapping(services, change)
    return moved


# --- the timer ---------------------------------------------------------------------------------------------------


@dataclass
class RunReport:
    jobs: list[str] = field(default_factory=list)
    pages: int = 0
    records: int = 0
    finished: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    out_of_time: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class _PageOutcome:
    done: int = 0
    unlinked: int = 0
    failed: int = 0
    conflicts: list[str] = field(default_factory=list)


def run_quick_sync(
    services: Services,
    *,
    limits: RunLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RunReport:
    """Work the queued and running jobs, oldest first, until they are done or the time budget is spent."""
    limits = limits or run_limits(services.settings)
    report = RunReport()
    started = clock()
    mapping = services.reload_mapping()  # fields added or removed by other instances
    _adopt_orphans(services, mapping, report, now())
    pause = services.store.get_pause()
    for job in list_jobs(services.store):
        if not job.state.active:
            continue
        if report.pages and clock() - started >= limits.budget_seconds:
            report.out_of_time = True
            break
        if pause.is_paused(job.entity):
            log.info("Quick Sync %s waits: %s is paused", job.id, job.entity)
            continue
        try:
            _work(services, job, limits, report, started=started, clock=clock, now=now)
        except StopSync as exc:
            _note_error(services, job, exc, report, now())
            break  # credentials, configuration or quota: nothing else will go better in this run
        except SkipRecord as exc:
            _note_error(services, job, exc, report, now())
            if job.next_link is not None:  # a stale resume link: start over (a refresh is idempotent)
                job.next_link, job.restarts = None, job.restarts + 1
                _save_quietly(services, job, now())
        except SyncError as exc:
            _note_error(services, job, exc, report, now())
            break  # transient (throttled, down): the next run resumes from the last saved page
    _record_run(services, now())
    return report


def _adopt_orphans(services: Services, mapping: SyncMapping, report: RunReport, moment: datetime) -> None:
    """A field waiting for a Quick Sync with no job (a crash between saving the mapping and the job, or a
    mapping edited by hand) gets one, so it can never wait forever."""
    jobs = [j for j in list_jobs(services.store) if j.state.active]
    for entity in mapping.entities:
        for f in entity.fields:
            if not f.state.in_quick_sync:
                continue
            if any(j.entity == entity.entity and j.column == f.dynamics for j in jobs):
                continue
            job = create_job(services.store, entity.entity, f, now=moment)
            report.adopted.append(job.id)
            log.warning(
                "Quick Sync job %s created for %s.%s, which waited without one", job.id, entity.entity, f.dynamics
            )


def _work(
    services: Services,
    job: QuickSyncJob,
    limits: RunLimits,
    report: RunReport,
    *,
    started: float,
    clock: Callable[[], float],
    now: Callable[[], datetime],
) -> None:
    entity = services.mapping.by_entity.get(job.entity)
    f = entity.by_column.get(job.column) if entity is not None else None
    if entity is None or f is None or f.state is FieldState.BROKEN:
        why = "is no longer mapped" if f is None else "is broken (see the status view)"
        _finish(
            services,
            job,
            JobState.CANCELLED,
            f"Quick Sync of {job.entity}.{job.column} cancelled: the field {why}",
            now(),
        )
        return
    try:
        if job.state is JobState.QUEUED:
            job.state, job.started_at = JobState.RUNNING, _iso(now())
        job.runs += 1
        job = save_job(services.store, job, now())  # claims the job for this run
    except Conflict:
        log.info("Quick Sync %s is being worked by another instance", job.id)
        return
    report.jobs.append(job.id)
    set_field_state(
        services, job.entity, job.column, FieldState.QUICK_SYNC_RUNNING, only_from=(FieldState.AWAITING_QUICK_SYNC,)
    )
    page_size = max(1, min(job.page_size or limits.page_size, MAX_PAGE_SIZE))
    while not job.paged_all:
        records, next_link = _fetch_page(services, entity, f, job, page_size)
        outcome = _push(services, entity, f, records, now())
        for _ in range(SETTLE_ROUNDS):
            if not outcome.conflicts:
                break
            again = services.dataverse.read_by_ids(entity.entity, outcome.conflicts, _select(entity, f))
            retried = _push(services, entity, f, list(again.values()), now())
            retried.unlinked += len(set(outcome.conflicts) - set(again))  # deleted meanwhile
            outcome = _PageOutcome(
                outcome.done + retried.done,
                outcome.unlinked + retried.unlinked,
                outcome.failed + retried.failed,
                retried.conflicts,
            )
        job.pages += 1
        job.records_read += len(records)
        job.records_done += outcome.done
        job.records_unlinked += outcome.unlinked
        job.records_failed += outcome.failed
        job.records_left_to_live_sync += len(outcome.conflicts)
        job.next_link, job.paged_all, job.last_error = next_link, next_link is None, None
        report.pages += 1
        report.records += len(records)
        services.store.add_counts(
            entity.entity, {k: v for k, v in {"quick_sync": outcome.done, "errors": outcome.failed}.items() if v}
        )
        try:
            job = save_job(services.store, job, now())
        except Conflict:
            log.warning("Quick Sync %s was advanced by another instance; this run leaves it", job.id)
            return
        if not job.paged_all and clock() - started >= limits.budget_seconds:
            report.out_of_time = True
            log.info("Quick Sync %s: time budget spent after page %d; the next run resumes", job.id, job.pages)
            return
    set_field_state(
        services,
        job.entity,
        job.column,
        FieldState.ACTIVE,
        only_from=(FieldState.AWAITING_QUICK_SYNC, FieldState.QUICK_SYNC_RUNNING),
    )
    notice = (
        f"Quick Sync done: {job.entity}.{job.column} -> Marketo {job.marketo_field}: {job.records_done} records "
        f"refreshed, {job.records_failed} failed (see sync errors), {job.records_unlinked} not linked, "
        f"{job.records_left_to_live_sync} left to the live sync, in {job.pages} pages over {job.runs} runs"
    )
    _finish(services, job, JobState.DONE, notice, now())
    report.finished.append(job.id)


def _finish(services: Services, job: QuickSyncJob, state: JobState, notice: str, moment: datetime) -> None:
    job.state, job.finished_at, job.notice, job.next_link = state, _iso(moment), notice, None
    try:
        save_job(services.store, job, moment)
    except Conflict:
        log.info("Quick Sync %s was finished by another instance", job.id)
        return
    log.warning("%s", notice)  # the notice: at WARNING so it reaches the alerts, and kept on the job


def _note_error(services: Services, job: QuickSyncJob, exc: SyncError, report: RunReport, moment: datetime) -> None:
    log.warning("Quick Sync %s stopped at page %d: %s", job.id, job.pages, exc)
    report.errors.append(f"{job.id}: {exc}")
    job.last_error = str(exc)
    _save_quietly(services, job, moment)


def _save_quietly(services: Services, job: QuickSyncJob, moment: datetime) -> None:
    with suppress(Conflict):  # someone else moved it on; their state stands
        save_job(services.store, job, moment)


def _record_run(services: Services, moment: datetime) -> None:
    name = timer_checkpoint(TIMER)
    current = services.store.get_checkpoint(name)
    with suppress(Conflict):  # another run stamped itself at the same moment
        services.store.save_checkpoint(Checkpoint(name, _iso(moment), moment, current.etag if current else None))


# --- one page ------------------------------------------------------------------------------------------------------


def _select(entity: EntityMapping, f: FieldMapping) -> list[str]:
    """The id and the one column (a lookup is selected as ``_<column>_value``, the Web API's rule)."""
    return [entity.id_column, f"_{f.dynamics}_value" if f.type is FieldType.LOOKUP else f.dynamics]


def range_filter(modified_from: str | None, modified_to: str | None) -> str | None:
    parts = []
    if modified_from:
        parts.append(f"modifiedon ge {modified_from}")
    if modified_to:
        parts.append(f"modifiedon le {modified_to}")
    return " and ".join(parts) or None


def _fetch_page(
    services: Services, entity: EntityMapping, f: FieldMapping, job: QuickSyncJob, page_size: int
) -> tuple[list[Record], str | None]:
    """One page: the first from the query, the next ones from the saved ``@odata.nextLink``."""
    dataverse = services.dataverse
    info = dataverse.entity(entity.entity)
    headers = {"Prefer": f'odata.maxpagesize={page_size},odata.include-annotations="*"'}
    if job.next_link:
        response = dataverse.request("GET", job.next_link, headers=headers)
    else:
        params = {"$select": ",".join(dict.fromkeys([info.primary_id_attribute, *_select(entity, f)]))}
        flt = range_filter(job.modified_from, job.modified_to)
        if flt:
            params["$filter"] = flt
        response = dataverse.request("GET", info.entity_set_name, params=params, headers=headers)
    try:
        body = response.json()
    except ValueError:
        raise StopSync(f"Dataverse answered the {entity.entity} query with a body that is not JSON") from None
    paginator = NextLinkPaginator()
    paginator.update_state(body)
    rows = body.get("value") or []
    return [record_from_row(row, info.primary_id_attribute) for row in rows], paginator.next_url


def _push(
    services: Services, entity: EntityMapping, f: FieldMapping, records: list[Record], moment: datetime
) -> _PageOutcome:
    """Write the column's value of every linked record to Marketo, then its baseline."""
    outcome = _PageOutcome()
    store = services.store
    persons = entity.rule.two_way
    links = store.get_links(entity.entity, [r.id for r in records])
    pending = []
    for record in records:
        link = links.get(record.id)
        if link is None or link.deleted_in_dynamics or link.followed_by or (persons and not link.marketo_id):
            outcome.unlinked += 1  # not synced yet (or no longer): the live sync creates it with every field
            continue
        canonical = from_dynamics(f, record.values.get(f.dynamics))  # a missing value is a null: nulls count
        wire = canonical if isinstance(canonical, ConversionError) else to_marketo(f, canonical)
        if isinstance(canonical, ConversionError) or isinstance(wire, ConversionError):
            reason = wire.reason if isinstance(wire, ConversionError) else str(wire)
            _error(store, entity.entity, record.id, "convert", "conversion", reason, moment, field=f.dynamics)
            outcome.failed += 1
            continue
        if persons:
            body = {"id": int(str(link.marketo_id)), f.marketo: wire}
        else:
            body = {entity.marketo_link_field: record.id, f.marketo: wire}
        pending.append((link, canonical, body))
    bodies = [body for _, _, body in pending]
    results: list[RecordOutcome] = (
        marketo_side.update_persons(services.marketo, bodies)
        if persons
        else marketo_side.upsert_objects(services.marketo, entity, bodies)
    )
    for (link, canonical, _), result in zip(pending, results, strict=True):
        if not result.ok:
            codes = ",".join(result.reason_codes) or str(result.status)
            message = "; ".join(r.message for r in result.reasons) or f"Marketo answered {result.status}"
            _error(store, entity.entity, link.dynamics_id, "quick_sync", codes, message, moment, field=f.dynamics)
            outcome.failed += 1
            continue
        try:
            store.save_link(replace(link, baseline={**link.baseline, f.dynamics: canonical}))
        except Conflict:
            outcome.conflicts.append(link.dynamics_id)
            continue
        outcome.done += 1
    return outcome


def _error(
    store: StateStore,
    entity: str,
    record_id: str,
    operation: str,
    code: str,
    message: str,
    moment: datetime,
    *,
    field: str,
) -> None:
    store.add_error(
        SyncErrorRecord(
            id=uuid.uuid4().hex,
            entity=entity,
            record_id=record_id,
            operation=operation,
            direction=TO_MARKETO,
            code=code,
            message=f"Quick Sync: {message}",
            occurred_at=moment,
            field=field,
        )
    )


__all__ = [
    "DEFAULT_LIMITS",
    "JobState",
    "QuickSyncJob",
    "RunLimits",
    "RunReport",
    "active_job",
    "create_job",
    "edit_mapping",
    "list_jobs",
    "list_jobs_reply",
    "quick_sync_status",
    "run_quick_sync",
    "set_field_state",
]
