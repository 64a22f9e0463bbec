"""The Quick Sync timer run: work the queued and running jobs, oldest first, page by page, within a time budget.

Contract: the job is saved after every page, on its checkpoint's ETag, so two instances never both advance one
job and a run cut short (budget spent, function timeout, crash) resumes at the next page. A paused entity's jobs
wait. A field waiting for a Quick Sync without a job gets one. A job whose field left the mapping (or broke) is
cancelled; so is one whose column is deleted in Dynamics while it runs, after marking the field broken as the live
sync does (reported once, see :mod:`shared.pipeline.field_states`). Anything else that goes wrong stops the job
where it is, bulk imports under way kept in the checkpoint for the next run to poll: a page Dynamics refuses (a
stale resume link) restarts it from the first page (refreshing is idempotent); a transient failure (an outage,
throttling), a configuration problem, or a mapping document that kept changing while a field state was saved ends
the run with the error noted on the job, and the next run resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.core.entities import Side
from shared.core.mapping import EntityMapping, FieldState, SyncMapping
from shared.dataverse.client import DataverseClient
from shared.dataverse.reads import COUNT_LIMIT
from shared.errors import Conflict, MissingColumn, SkipRecord, StopSync, SyncError
from shared.marketo.client import MarketoClient
from shared.pipeline.feeds import record_run
from shared.pipeline.field_states import mark_broken, set_field_state
from shared.pipeline.ports import ChangesQueue, LiveMapping
from shared.pipeline.quicksync.backfill import Backfill, range_filter
from shared.pipeline.quicksync.initial import InitialSync, adopt_entities, entity_synced
from shared.pipeline.quicksync.jobs import (
    MAX_PAGE_SIZE,
    JobKind,
    JobState,
    QuickSyncJob,
    create_job,
    iso,
    list_jobs,
    parse_iso,
    save_job,
)
from shared.pipeline.quicksync.resync import PAGE_SIZE as RESYNC_PAGE
from shared.pipeline.quicksync.resync import Resync
from shared.settings import Settings
from shared.store.base import StateStore

log = logging.getLogger(__name__)

TIMER = "quick_sync"
PACED_FOR = timedelta(seconds=60)  # a resync paced this long after its last page waits for the timer instead


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How much one timer run may do. The function timeout is 10 minutes: stop well before it."""

    budget_seconds: float = 480.0
    page_size: int = MAX_PAGE_SIZE
    bulk_min: int = 1000  # persons: pages of more records than this go through Marketo bulk import


DEFAULT_LIMITS = RunLimits()


def run_limits(settings: Settings) -> RunLimits:
    """``QUICK_SYNC_BUDGET_SECONDS`` / ``QUICK_SYNC_PAGE_SIZE`` / ``QUICK_SYNC_BULK_MIN``."""
    return RunLimits(
        budget_seconds=settings.quick_sync_budget_seconds,
        page_size=settings.quick_sync_page_size,
        bulk_min=settings.quick_sync_bulk_min,
    )


@dataclass
class RunReport:
    jobs: list[str] = field(default_factory=list)
    pages: int = 0
    records: int = 0
    finished: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    out_of_time: bool = False
    paced: bool = False  # a resync waits for its previous page to reconcile: run again shortly
    errors: list[str] = field(default_factory=list)


@dataclass
class _Run:
    store: StateStore
    dataverse: DataverseClient
    marketo: MarketoClient
    live: LiveMapping
    limits: RunLimits
    clock: Callable[[], float]
    now: Callable[[], datetime]
    mapping: SyncMapping
    started: float
    changes: ChangesQueue | None = None
    report: RunReport = field(default_factory=RunReport)

    def out_of_time(self) -> bool:
        return self.clock() - self.started >= self.limits.budget_seconds


def run_quick_sync(
    store: StateStore,
    dataverse: DataverseClient,
    marketo: MarketoClient,
    mapping: LiveMapping,
    *,
    limits: RunLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    changes: ChangesQueue | None = None,
) -> RunReport:
    """Work the queued and running jobs, oldest first, until they are done or the time budget is spent.
    ``changes``: where a both-ways resync queues its records (without it, those jobs wait)."""
    started = clock()
    run = _Run(store, dataverse, marketo, mapping, limits, clock, now, mapping.current(), started, changes)
    _adopt_orphans(run)
    pause = store.get_pause()
    for job in list_jobs(store):
        if not job.state.active:
            continue
        if run.report.pages and run.out_of_time():
            run.report.out_of_time = True
            break
        if pause.is_paused(job.entity):
            log.info("Quick Sync %s waits: %s is paused", job.id, job.entity)
            continue
        if job.not_before is not None and job.not_before > iso(run.now()):
            continue  # its nudge is scheduled for then; the timer's next minute would do too
        try:
            if job.kind in (JobKind.RESYNC, JobKind.INITIAL_SYNC):
                work_resync(run, job)
            else:
                _work(run, job)
        except SkipRecord as exc:
            _restart(run, job, exc)
        except StopSync as exc:
            _note_error(run, job, exc)
            break  # credentials, configuration or quota: nothing else will go better in this run
        except SyncError as exc:
            # Transient (throttled, down), or a Conflict the retries did not settle (the mapping document kept
            # changing while a field state was saved): the next run resumes from the last saved page.
            _note_error(run, job, exc)
            break
    record_run(store, TIMER, now())
    return run.report


def _adopt_orphans(run: _Run) -> None:
    """A field waiting for a Quick Sync with no job (a crash between saving the mapping and the job, or a
    mapping edited by hand) gets one, so it can never wait forever; so does an entity waiting for its initial sync."""
    run.report.adopted += adopt_entities(run.store, run.mapping, run.now())
    jobs = [j for j in list_jobs(run.store) if j.state.active and j.kind is JobKind.QUICK_SYNC]
    for entity in run.mapping.entities:
        for f in entity.fields:
            if not f.state.in_quick_sync:
                continue
            if any(j.entity == entity.entity and j.column == f.dynamics for j in jobs):
                continue
            job = create_job(run.store, entity.entity, f, now=run.now())
            run.report.adopted.append(job.id)
            log.warning(
                "Quick Sync job %s created for %s.%s, which waited without one", job.id, entity.entity, f.dynamics
            )


def _work(run: _Run, job: QuickSyncJob) -> None:
    entity = run.mapping.by_entity.get(job.entity)
    f = entity.by_column.get(job.column) if entity is not None else None
    if entity is None or f is None or f.state is FieldState.BROKEN:
        why = "is no longer mapped" if f is None else "is broken (see the status view)"
        _finish(run, job, JobState.CANCELLED, f"Quick Sync of {job.entity}.{job.column} cancelled: the field {why}")
        return
    try:
        _claim(run, job)
    except Conflict:
        log.info("Quick Sync %s is being worked by another instance", job.id)
        return
    run.report.jobs.append(job.id)
    run.mapping = set_field_state(
        run.live, job.entity, job.column, FieldState.QUICK_SYNC_RUNNING, only_from=(FieldState.AWAITING_QUICK_SYNC,)
    )
    backfill = Backfill(
        run.store,
        run.dataverse,
        run.marketo,
        entity,
        f,
        bulk_min=run.limits.bulk_min,
        checkpoint=lambda j: save_job(run.store, j, run.now()),  # bulk imports under way, saved as submitted
        out_of_time=run.out_of_time,
    )
    page_size = max(1, min(job.page_size or run.limits.page_size, MAX_PAGE_SIZE))
    while not job.paged_all:
        try:
            outcome = backfill.page(job, page_size, run.now())
        except MissingColumn as exc:
            if _column_gone(run, job, entity, exc):
                return
            raise
        if outcome.waiting:  # bulk imports still running: their batch ids are in the checkpoint
            run.report.out_of_time = True
            log.info("Quick Sync %s: time budget spent while Marketo imports; the next run polls them", job.id)
            return
        job.pages += outcome.pages
        job.records_read += outcome.read
        job.records_done += outcome.done
        job.records_unlinked += outcome.unlinked
        job.records_filtered += outcome.filtered
        job.records_failed += outcome.failed
        job.records_left_to_live_sync += len(outcome.conflicts)
        job.next_link, job.paged_all, job.last_error = outcome.next_link, outcome.next_link is None, None
        job.import_pages, job.import_batches, job.import_digest = 0, [], None  # the group's baselines are saved
        run.report.pages += outcome.pages
        run.report.records += outcome.read
        counts = {"quick_sync": outcome.done, "errors": outcome.failed}
        run.store.add_counts(entity.entity, {k: v for k, v in counts.items() if v})
        try:
            job = save_job(run.store, job, run.now())
        except Conflict:
            log.warning("Quick Sync %s was advanced by another instance; this run leaves it", job.id)
            return
        if not job.paged_all and run.out_of_time():
            run.report.out_of_time = True
            log.info("Quick Sync %s: time budget spent after page %d; the next run resumes", job.id, job.pages)
            return
    run.mapping = set_field_state(
        run.live,
        job.entity,
        job.column,
        FieldState.ACTIVE,
        only_from=(FieldState.AWAITING_QUICK_SYNC, FieldState.QUICK_SYNC_RUNNING),
    )
    notice = (
        f"Quick Sync done: {job.entity}.{job.column} -> Marketo {job.marketo_field}: {job.records_done} records "
        f"refreshed, {job.records_failed} failed (see sync errors), {job.records_unlinked} not linked, "
        f"{job.records_filtered} kept out by the sync filter, "
        f"{job.records_left_to_live_sync} left to the live sync, in {job.pages} pages over {job.runs} runs"
    )
    _finish(run, job, JobState.DONE, notice)
    run.report.finished.append(job.id)


def _claim(run: _Run, job: QuickSyncJob) -> None:
    """Start (counting the records it will read) or resume the job, saved on its ETag: claims it for this run."""
    if job.state is JobState.QUEUED:
        job.state, job.started_at = JobState.RUNNING, iso(run.now())
        if job.records_total is None:
            job.records_total = _count(run, job)
    job.runs += 1
    save_job(run.store, job, run.now())


def _count(run: _Run, job: QuickSyncJob) -> int | None:
    """The rows the job's query matches, by Dataverse's ``$count`` (None past what it counts, or if it fails: a
    count is worth no failed job)."""
    try:
        counted = run.dataverse.count(job.entity, filter=range_filter(job.modified_from, job.modified_to))
    except SyncError as exc:
        log.info("Quick Sync %s: records not counted (%s)", job.id, exc)
        return None
    return counted if counted < COUNT_LIMIT else None


def work_resync(run: _Run, job: QuickSyncJob) -> None:
    """A force resync, page by page (:mod:`.resync`), saved after each; paced behind the live sync."""
    entity = run.mapping.by_entity.get(job.entity)
    if entity is None:
        _finish(run, job, JobState.CANCELLED, f"resync of {job.entity} cancelled: the entity is no longer mapped")
        return
    if job.mode == "both_ways" and run.changes is None:
        log.info("resync %s waits: this run has no changes queue", job.id)
        return
    try:
        _claim(run, job)
    except Conflict:
        log.info("resync %s is being worked by another instance", job.id)
        return
    run.report.jobs.append(job.id)
    initial = job.kind is JobKind.INITIAL_SYNC
    pager = (InitialSync if initial else Resync)(run.store, run.dataverse, run.marketo, entity, run.changes)
    page_size = max(1, min(job.page_size or RESYNC_PAGE, MAX_PAGE_SIZE))
    while not job.paged_all:
        outcome = pager.page(job, page_size, run.now())
        if outcome.paced:
            # Nudged again shortly while its records move; stuck longer (an outage holds them), the timer's
            # minute is soon enough.
            saved = parse_iso(job.updated_at)
            run.report.paced = saved is None or run.now() - saved < PACED_FOR
            return
        job.pages += 1
        job.records_read += outcome.read
        job.records_done += outcome.done
        job.records_unlinked += outcome.unlinked
        job.records_failed += outcome.failed
        job.next_link, job.paged_all, job.in_flight, job.last_error = (
            outcome.next_link,
            outcome.last,
            outcome.queued,
            None,
        )
        run.report.pages += 1
        run.report.records += outcome.read
        try:
            save_job(run.store, job, run.now())
        except Conflict:
            log.warning("resync %s was advanced by another instance; this run leaves it", job.id)
            return
        if not job.paged_all and run.out_of_time():
            run.report.out_of_time = True
            return
    what = "queued for a reconcile both ways" if job.mode == "both_ways" else "refreshed in Marketo from Dynamics"
    notice = (
        f"Resync done: {job.entity}, {job.records_done} records {what}, {job.records_failed} failed (see sync "
        f"errors), {job.records_unlinked} not linked or gone, in {job.pages} pages over {job.runs} runs"
    )
    if initial:
        run.mapping = entity_synced(run.live, job.entity)  # the catch-up takes the table over
        caught_up = (
            "the catch-up reads its changes from now on"
            if job.scope == "changes"
            else "change tracking is off for the table: only its plug-in steps bring its changes"
        )
        notice = (
            f"Initial sync done: {job.entity}, {job.records_done} records queued for their first reconcile, in "
            f"{job.pages} pages over {job.runs} runs; {caught_up}"
        )
    _finish(run, job, JobState.DONE, notice)
    run.report.finished.append(job.id)


def _finish(run: _Run, job: QuickSyncJob, state: JobState, notice: str) -> None:
    moment = run.now()
    job.state, job.finished_at, job.notice, job.next_link = state, iso(moment), notice, None
    try:
        save_job(run.store, job, moment)
    except Conflict:
        log.info("Quick Sync %s was finished by another instance", job.id)
        return
    log.warning("%s", notice)  # the notice: at WARNING so it reaches the alerts, and kept on the job


def _column_gone(run: _Run, job: QuickSyncJob, entity: EntityMapping, exc: MissingColumn) -> bool:
    """The job's column was deleted in Dynamics mid-Quick-Sync: the field is marked broken as the live sync marks
    it (reported once) and the job cancelled, so later runs do not start it again. False when Dynamics named
    another column: the caller's error stands."""
    if (exc.table, exc.column) != (job.entity, job.column):
        return False
    marked = mark_broken(run.live, entity, job.column, side=Side.DYNAMICS, at=run.now())
    if marked is None:  # not a column the entity maps after all
        return False
    run.mapping = marked.mapping
    if marked.error is not None:
        run.store.add_error(marked.error)
    run.report.errors.append(f"{job.id}: {exc}")
    job.last_error = str(exc)
    notice = (
        f"Quick Sync of {job.entity}.{job.column} cancelled: the column no longer exists in Dynamics, the field is "
        f"marked broken (see the status view); {job.records_done} records were refreshed before"
    )
    _finish(run, job, JobState.CANCELLED, notice)
    return True


def _restart(run: _Run, job: QuickSyncJob, exc: SkipRecord) -> None:
    """A page Dynamics refused (most likely a stale resume link), or a bulk import batch Marketo no longer knows:
    the next run starts over from the first page, bulk imports forgotten (a refresh is idempotent); refused on the
    first page with nothing under way, the job waits with the error noted."""
    _note_error(run, job, exc)
    if job.next_link is not None or job.import_pages:
        job.next_link, job.restarts = None, job.restarts + 1
        job.import_pages, job.import_batches, job.import_digest = 0, [], None  # refused too: start afresh
        _save_quietly(run, job)


def _note_error(run: _Run, job: QuickSyncJob, exc: SyncError) -> None:
    log.warning("Quick Sync %s stopped at page %d: %s", job.id, job.pages, exc)
    run.report.errors.append(f"{job.id}: {exc}")
    job.last_error = str(exc)
    _save_quietly(run, job)


def _save_quietly(run: _Run, job: QuickSyncJob) -> None:
    with suppress(Conflict):  # someone else moved it on; their state stands
        save_job(run.store, job, run.now())
