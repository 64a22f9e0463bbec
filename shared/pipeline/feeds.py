"""The reliable paths in: Marketo's lead-changes feed and Dataverse change tracking, read by timers.

Webhooks cut latency; these make sure nothing is lost. Marketo's webhook is fire-and-forget and Dataverse retries a
webhook only once, so each timer reads its feed from a checkpoint in the state store, skips what is provably
already in sync (the sync's own writes coming back), and queues a notification for everything else.

Per page: mark, enqueue, then checkpoint. The changes queue marks each record pending before it sends
(:class:`shared.pipeline.pending.MarkingQueue`), so a checkpoint only ever moves past work the store holds; a
crash between the steps re-reads the page and marks it again, which changes nothing but the marks' versions.
The Marketo feed's first run reads ``first_lookback`` back (24 hours by default), not from now.

While the service a timer reads is unavailable, :func:`while_available` keeps it from failing every run: with the
service's circuit open and its probe not due the run is skipped (one INFO line, the checkpoint untouched); a run
that meets an outage (the client's ``RetryLater``/``Throttled``/``QuotaExhausted``) records it on the circuit as a
failed batch does and stops (one WARNING line, no traceback); the checkpoint stands where the last whole page left
it, so the next run resumes there. Any other failure still raises.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from shared.core.mapping import EntityMapping, EntityState, SyncMapping
from shared.core.values import read_dynamics_record
from shared.dataverse.client import Change, DataverseClient
from shared.dataverse.faults import EXPIRED_VERSION_STAMP
from shared.errors import Conflict, QuotaExhausted, SkipRecord
from shared.marketo.client import MarketoClient
from shared.marketo.lanes import DAILY_RESERVE
from shared.pipeline.circuit import Circuits, outage_of
from shared.pipeline.connections import catch_up_connections
from shared.pipeline.dataverse_side import dataverse_select, followed_values, sales_owners_synced
from shared.pipeline.echo import MarketoChange, classify_marketo_change
from shared.pipeline.notification import Kind, Notification, Source
from shared.pipeline.ports import ChangesQueue
from shared.store.base import StateStore
from shared.store.model import Checkpoint

log = logging.getLogger(__name__)

MARKETO_CHECKPOINT = "marketo:leadchanges"
DELETED_CHECKPOINT = "marketo:deletedleads"
CHANGE_DATA_VALUE = 13


def delta_checkpoint(entity: str) -> str:
    return f"dataverse:delta:{entity}"


def timer_checkpoint(name: str) -> str:
    return f"timer:{name}"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A timer run that did not read its feed (``skipped``: not started, the circuit waits for its probe) or
    stopped when the service failed; ``next_probe_at`` is the circuit's."""

    service: str
    reason: str
    skipped: bool
    next_probe_at: datetime | None


def while_available(circuits: Circuits, service: str, name: str, run: Callable[[], T]) -> T | Unavailable:
    """``run`` (a timer reading ``service``), unless the service's circuit says it is unavailable (see the
    module): the result, or :class:`Unavailable` once it is logged. Other exceptions propagate."""
    circuit = circuits.get(service)
    now = circuits.clock()
    if circuit.blocks(now):
        probe = circuit.next_probe_at.isoformat() if circuit.next_probe_at else "?"
        log.info("%s skipped: %s unavailable (%s); next probe at %s", name, service, circuit.reason, probe)
        return Unavailable(service, circuit.reason or "unavailable", True, circuit.next_probe_at)
    try:
        result = run()
    except Exception as exc:
        if isinstance(exc, QuotaExhausted) and exc.code == DAILY_RESERVE:  # a backfill's wait, not an outage
            log.info("%s waits: only the daily reserve of %s's quota is left, kept for live changes", name, service)
            return Unavailable(service, str(exc), False, exc.resets_at)
        outage = outage_of(exc)
        if outage is None:
            raise
        opened = circuits.failed(outage)
        probe = opened.next_probe_at.isoformat() if opened.next_probe_at else "?"
        log.warning(  # no traceback: an outage is expected, the circuit and the next runs handle it
            "%s stopped: %s unavailable (%s); the next run resumes at its checkpoint; next probe at %s",
            name,
            outage.service,
            outage.reason,
            probe,
        )
        return Unavailable(outage.service, outage.reason, False, opened.next_probe_at)
    if circuit.is_open:  # its probe was due and the run went through: the service answers again
        circuits.succeeded(service)
        log.info("%s: %s answers again", name, service)
    return result


@dataclass
class FeedReport:
    queued: int = 0
    echoes: int = 0
    unlinked: int = 0
    pages: int = 0
    deleted_in_marketo: int = 0
    details: dict[str, int] = field(default_factory=dict)


def record_run(store: StateStore, name: str, now: datetime) -> None:
    """Stamp a timer's last run (the status view shows it)."""
    current = store.get_checkpoint(timer_checkpoint(name))
    etag = current.etag if current is not None else None
    with suppress(Conflict):  # another run recorded itself at the same moment: either stamp will do
        store.save_checkpoint(Checkpoint(timer_checkpoint(name), now.isoformat(), now, etag))


def _send(queue: ChangesQueue, notes: Iterable[Notification]) -> int:
    return len(queue.send(notes))


def read_marketo_feed(
    store: StateStore,
    marketo: MarketoClient,
    mapping: SyncMapping,
    queue: ChangesQueue,
    *,
    budget_seconds: float = 240.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.monotonic,
    first_lookback: timedelta = timedelta(hours=24),
) -> FeedReport:
    """Queue a notification per linked person with a real change since the checkpoint."""
    report = FeedReport()
    persons = [m for m in mapping.entities if m.rule.two_way]
    fields = sorted({f.marketo for m in persons for f in m.live_fields})
    checkpoint = store.get_checkpoint(MARKETO_CHECKPOINT)
    started = clock()
    if checkpoint is None:
        # First run: look back (edits made before the sync's first run, whose webhook may be missing).
        token = marketo.paging_token(now() - first_lookback)
        checkpoint = store.save_checkpoint(Checkpoint(MARKETO_CHECKPOINT, token, now()))
    if fields:
        for page in marketo.lead_changes(checkpoint.value, fields):
            report.pages += 1
            notes: dict[str, Notification] = {}
            links = store.find_many_by_marketo(
                "lead", {a.lead_id for a in page.activities if a.activity_type_id == CHANGE_DATA_VALUE}
            )
            for activity in page.activities:
                if activity.activity_type_id != CHANGE_DATA_VALUE:
                    continue  # New Lead: new persons are not pushed to Dynamics
                verdict = classify_marketo_change(
                    store,
                    mapping,
                    str(activity.lead_id),
                    ((c.name, c.new_value) for c in activity.fields),
                    link=links.get(str(activity.lead_id)),
                )
                if verdict is MarketoChange.UNLINKED:
                    report.unlinked += 1
                    continue
                if verdict is not MarketoChange.SYNC:
                    report.echoes += 1  # the sync's own write coming back, or no synced field changed
                    continue
                notes[str(activity.lead_id)] = Notification(
                    source=Source.MARKETO_FEED, marketo_id=str(activity.lead_id), dedupe_key=activity.marketo_guid
                )
            report.queued += _send(queue, notes.values())
            try:
                checkpoint = store.save_checkpoint(
                    Checkpoint(MARKETO_CHECKPOINT, page.next_page_token, now(), checkpoint.etag)
                )
            except Conflict:
                log.warning("another reader advanced the Marketo feed; stopping this run")
                break
            if clock() - started > budget_seconds:
                break
    report.deleted_in_marketo = _forget_deleted_persons(store, marketo, now)
    record_run(store, "marketo_feed", now())
    return report


def _catch_up_notes(
    store: StateStore, mapping: EntityMapping, changes: list[Change], report: FeedReport, owners: bool
) -> list[Notification]:
    """Notifications for changed rows whose values differ from the baseline, and for removed linked rows."""
    links = store.get_links(mapping.entity, [c.id for c in changes])
    notes = []
    for change in changes:
        link = links.get(change.id)
        if change.kind == "removed":
            if link is not None and not link.deleted_in_dynamics:
                notes.append(
                    Notification(
                        source=Source.DATAVERSE_CATCHUP,
                        entity=mapping.entity,
                        dynamics_id=change.id,
                        kind=Kind.DELETE,
                        dedupe_key=f"removed:{change.id}",
                    )
                )
            continue
        if link is not None and change.record is not None:
            values = read_dynamics_record(mapping.live_fields, change.record.values)
            followed = followed_values(change.record, mapping, sales_owners=owners)  # owner, role contacts
            # A column the row does not carry proves nothing: a delta link keeps the $select it was made with, so
            # a field added since is missing from every row it reports (found by the chaos suite).
            complete = len(values) == len(mapping.live_fields)
            if complete and all(link.baseline.get(k, object()) == v for k, v in {**values, **followed}.items()):
                report.echoes += 1
                continue
        etag = change.record.etag if change.record is not None else None
        notes.append(
            Notification(
                source=Source.DATAVERSE_CATCHUP,
                entity=mapping.entity,
                dynamics_id=change.id,
                dedupe_key=f"etag:{etag}" if etag else None,
            )
        )
    return notes


def _forget_deleted_persons(store: StateStore, marketo: MarketoClient, now: Callable[[], datetime]) -> int:
    """Persons deleted in Marketo: their links let go of the person (nothing is deleted in Dynamics). The
    record's next change creates a person again, or links one found by e-mail."""
    checkpoint = store.get_checkpoint(DELETED_CHECKPOINT)
    if checkpoint is None:
        token = marketo.paging_token(now() - timedelta(seconds=5))
        store.save_checkpoint(Checkpoint(DELETED_CHECKPOINT, token, now()))
        return 0
    forgotten = 0
    for page in marketo.deleted_leads(checkpoint.value):
        for activity in page.activities:
            link = store.find_by_marketo("lead", activity.lead_id)
            if link is None:
                continue
            with suppress(Conflict):  # changed meanwhile: the reconcile that changed it re-reads the person
                store.save_link(replace(link, marketo_id=None, baseline={}))
                forgotten += 1
        try:
            checkpoint = store.save_checkpoint(
                Checkpoint(DELETED_CHECKPOINT, page.next_page_token, now(), checkpoint.etag)
            )
        except Conflict:
            break
    return forgotten


def catch_up_dataverse(
    store: StateStore,
    dataverse: DataverseClient,
    mapping: SyncMapping,
    queue: ChangesQueue,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.monotonic,
    budget_seconds: float = 480.0,
    page_size: int = 5000,
) -> FeedReport:
    """Queue a notification per Dynamics record that changed (or was deleted) and is not in sync.

    The first run per entity reads every row: that is the initial sync of the entities the mapping started with.
    Later runs read the delta since the checkpointed delta link. A run that would outlast its time budget
    checkpoints the page it reached and the next run resumes there, so a table of any size gets through its
    initial sync. An entity added at runtime (state ``initial_sync``) is left to its initial sync job, which reads
    the table once, behind live traffic, and saves the delta link here (:func:`start_catch_up`); the catch-up reads
    its delta from then on. A table Dataverse refuses to read this way (change tracking off) is logged and
    skipped: the other tables are still caught up.
    """
    report = FeedReport()
    started = clock()
    owners = sales_owners_synced(mapping)
    for index, entity in enumerate(mapping.entities):
        if index and clock() - started > budget_seconds:
            break  # the other tables wait for the next run
        if entity.state is EntityState.INITIAL_SYNC:
            continue  # its initial sync job reads the table and hands over the delta link
        name = delta_checkpoint(entity.entity)
        checkpoint = store.get_checkpoint(name)
        state = _CatchUpState.parse(checkpoint.value) if checkpoint else _CatchUpState()
        feed = dataverse.changes(
            entity.entity,
            select=dataverse_select(entity),
            delta_link=state.resume or state.delta,
            page_size=page_size,
        )
        pending: list[Change] = []
        queued = 0
        pages_seen = 0
        next_link: str | None = None  # the URL of the page after the one being read
        stopped = False
        try:
            for change in feed:
                if feed.pages_read != pages_seen:  # this row opens a new page, fetched from `next_link`
                    if pages_seen:  # every row of the earlier pages is read: queue them, remember where we are
                        queued += _send(queue, _catch_up_notes(store, entity, pending, report, owners))
                        pending = []
                        resume = _CatchUpState(state.delta, next_link)
                        checkpoint = _save_catch_up(store, name, resume, checkpoint, now)
                        if checkpoint is None or clock() - started > budget_seconds:
                            stopped = True  # the next run resumes at this page (or another run owns the table)
                            break
                    pages_seen = feed.pages_read
                    next_link = feed.next_page_link
                pending.append(change)
        except SkipRecord as exc:
            if exc.code != EXPIRED_VERSION_STAMP:
                # Most often "Track changes" is off for the table: nothing is caught up for it until it is on
                # (its plug-in steps still deliver); the other tables must not wait for a human on its account.
                log.warning("Dataverse catch-up: %s skipped, Dataverse refused its change feed: %s", entity.entity, exc)
                report.details[entity.entity] = 0
                continue
            # Down (or not run) for longer than Dataverse keeps change history: read the table in full again;
            # rows whose values match their baseline are skipped, so only what changed is queued.
            log.warning("Dataverse catch-up: %s's delta link expired; the next run reads it in full", entity.entity)
            _save_catch_up(store, name, _CatchUpState(None, None), checkpoint, now)
            report.details[entity.entity] = 0
            continue
        if not stopped and pending:
            queued += _send(queue, _catch_up_notes(store, entity, pending, report, owners))
        report.queued += queued
        report.details[entity.entity] = queued
        if not stopped and feed.delta_link:
            _save_catch_up(store, name, _CatchUpState(feed.delta_link, None), checkpoint, now)
    if "opportunity" in mapping.by_entity and clock() - started <= budget_seconds:  # stakeholders: roles follow them
        report.details["connection"] = catch_up_connections(store, dataverse, queue, now=now, page_size=page_size)
        report.queued += report.details["connection"]
    record_run(store, "dataverse_catchup", now())
    return report


def start_catch_up(store: StateStore, entity: str, delta_link: str, now: datetime) -> None:
    """The table's catch-up reads what changed after ``delta_link`` from now on: what an entity's initial sync job
    hands over once it has read the table (a checkpoint left from an earlier time the entity was mapped is
    replaced)."""
    name = delta_checkpoint(entity)
    for _ in range(5):
        current = store.get_checkpoint(name)
        state = _CatchUpState(delta_link, None).dump()
        try:
            store.save_checkpoint(Checkpoint(name, state, now, current.etag if current is not None else None))
        except Conflict:
            continue
        return
    raise Conflict(f"the catch-up checkpoint of {entity} kept changing; try again")


@dataclass(frozen=True, slots=True)
class _CatchUpState:
    """A table's catch-up checkpoint: the delta link to ask next, and a page to resume at if a run stopped early."""

    delta: str | None = None
    resume: str | None = None

    @classmethod
    def parse(cls, value: str) -> _CatchUpState:
        if value.startswith("{"):
            data = json.loads(value)
            return cls(data.get("delta"), data.get("resume"))
        return cls(value or None, None)  # a bare delta link

    def dump(self) -> str:
        return json.dumps({"delta": self.delta, "resume": self.resume})


def _save_catch_up(
    store: StateStore, name: str, state: _CatchUpState, checkpoint: Checkpoint | None, now: Callable[[], datetime]
) -> Checkpoint | None:
    try:
        return store.save_checkpoint(Checkpoint(name, state.dump(), now(), checkpoint.etag if checkpoint else None))
    except Conflict:
        log.warning("another catch-up advanced %s; its checkpoint stands", name)
        return None
