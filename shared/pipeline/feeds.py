"""The reliable paths in: Marketo's lead-changes feed and Dataverse change tracking, read by timers.

Webhooks cut latency; these make sure nothing is lost. Marketo's webhook is fire-and-forget and Dataverse retries a
webhook only once, so each timer reads its feed from a checkpoint in the state store, skips what is provably
already in sync (the sync's own writes coming back), and queues a notification for everything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from shared.core.mapping import EntityMapping
from shared.core.values import read_dynamics_record
from shared.dataverse.client import Change
from shared.errors import Conflict
from shared.pipeline.echo import MarketoChange, classify_marketo_change
from shared.pipeline.notification import Kind, Notification, Source
from shared.pipeline.reconcile import dataverse_select, notification_message
from shared.services import Services
from shared.store.model import Checkpoint

log = logging.getLogger(__name__)

MARKETO_CHECKPOINT = "marketo:leadchanges"
DELETED_CHECKPOINT = "marketo:deletedleads"
CHANGE_DATA_VALUE = 13


def delta_checkpoint(entity: str) -> str:
    return f"dataverse:delta:{entity}"


def timer_checkpoint(name: str) -> str:
    return f"timer:{name}"


@dataclass
class FeedReport:
    queued: int = 0
    echoes: int = 0
    unlinked: int = 0
    pages: int = 0
    deleted_in_marketo: int = 0
    details: dict[str, int] = field(default_factory=dict)


def _record_run(services: Services, name: str, now: datetime) -> None:
    current = services.store.get_checkpoint(timer_checkpoint(name))
    etag = current.etag if current is not None else None
    with suppress(Conflict):  # another run recorded itself at the same moment: either stamp will do
        services.store.save_checkpoint(Checkpoint(timer_checkpoint(name), now.isoformat(), now, etag))


def _send(services: Services, notes: Iterable[Notification]) -> int:
    messages = [notification_message(n) for n in notes]
    if messages:
        services.queue.send(services.settings.changes_queue, messages)
    return len(messages)


def read_marketo_feed(
    services: Services,
    *,
    budget_seconds: float = 240.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.monotonic,
) -> FeedReport:
    """Queue a notification per linked person with a real change since the checkpoint."""
    report = FeedReport()
    mapping = services.mapping
    persons = [m for m in mapping.entities if m.rule.two_way]
    fields = sorted({f.marketo for m in persons for f in m.live_fields})
    store, marketo = services.store, services.marketo
    checkpoint = store.get_checkpoint(MARKETO_CHECKPOINT)
    started = clock()
    if checkpoint is None:
        # First run: start from now (the catch-up timer and webhooks cover what came before).
        token = marketo.paging_token(now() - timedelta(seconds=5))
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
                    services,
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
            report.queued += _send(services, notes.values())
            try:
                checkpoint = store.save_checkpoint(
                    Checkpoint(MARKETO_CHECKPOINT, page.next_page_token, now(), checkpoint.etag)
                )
            except Conflict:
                log.warning("another reader advanced the Marketo feed; stopping this run")
                break
            if clock() - started > budget_seconds:
                break
    report.deleted_in_marketo = _forget_deleted_persons(services, now)
    _record_run(services, "marketo_feed", now())
    return report


def _catch_up_notes(
    services: Services, mapping: EntityMapping, changes: list[Change], report: FeedReport
) -> list[Notification]:
    """Notifications for changed rows whose values differ from the baseline, and for removed linked rows."""
    links = services.store.get_links(mapping.entity, [c.id for c in changes])
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
            if all(link.baseline.get(k, object()) == v for k, v in values.items()):
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


def _forget_deleted_persons(services: Services, now: Callable[[], datetime]) -> int:
    """Persons deleted in Marketo: their links let go of the person (nothing is deleted in Dynamics). The
    record's next change creates a person again, or links one found by e-mail."""
    store, marketo = services.store, services.marketo
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
    services: Services,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    flush_every: int = 500,
) -> FeedReport:
    """Queue a notification per Dynamics record that changed (or was deleted) and is not in sync.

    The first run per entity reads every row: that is the initial sync. Later runs read the delta since the
    checkpointed delta link.
    """
    report = FeedReport()
    store = services.store
    for mapping in services.mapping.entities:
        name = delta_checkpoint(mapping.entity)
        checkpoint = store.get_checkpoint(name)
        feed = services.dataverse.changes(
            mapping.entity, select=dataverse_select(mapping), delta_link=checkpoint.value if checkpoint else None
        )
        pending: list[Change] = []
        queued = 0
        for change in feed:
            pending.append(change)
            if len(pending) >= flush_every:
                queued += _send(services, _catch_up_notes(services, mapping, pending, report))
                pending = []
        if pending:
            queued += _send(services, _catch_up_notes(services, mapping, pending, report))
        report.queued += queued
        report.details[mapping.entity] = queued
        if feed.delta_link:
            try:
                store.save_checkpoint(Checkpoint(name, feed.delta_link, now(), checkpoint.etag if checkpoint else None))
            except Conflict:
                log.warning("another catch-up advanced %s; its delta link stands", mapping.entity)
    _record_run(services, "dataverse_catchup", now())
    return report
