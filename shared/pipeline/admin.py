"""What admins see and do: the Sync Status view, the Sync Errors view (list, export, retry), pause and resume,
and the explicit "sync person to Dynamics" action.

Each returns the data it found or did (the triggers render it), or refuses with a :class:`Refused` error:
:class:`NotFound` for an entity, sync error or person that does not exist, :class:`InvalidRequest` for an id
that cannot be one, :class:`NotPossible` for a person whose values cannot be written to Dynamics.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.mapping import SyncMapping
from shared.core.pending import PERSON
from shared.errors import NotFound, RetryLater, SyncError
from shared.pipeline import deadletters
from shared.pipeline.circuit import Circuits
from shared.pipeline.feeds import timer_checkpoint
from shared.pipeline.notification import Notification, Source
from shared.pipeline.person_to_dynamics import PersonSynced as PersonSynced  # noqa: PLC0414 - re-exported
from shared.pipeline.person_to_dynamics import sync_person_to_dynamics as sync_person_to_dynamics  # noqa: PLC0414
from shared.pipeline.ports import ChangesQueue
from shared.pipeline.quicksync.status import quick_sync_status
from shared.queueing import QueueObserver
from shared.store.base import StateStore
from shared.store.model import ErrorStatus, PauseState, SyncErrorRecord

log = logging.getLogger(__name__)

TIMERS = ("marketo_feed", "dataverse_catchup", "quick_sync", "pending_sweep")
SERVICE_NAMES = {"marketo": "Marketo", "dataverse": "Dataverse"}
EXPORT_COLUMNS = (
    "id",
    "occurred_at",
    "entity",
    "record_id",
    "operation",
    "direction",
    "field",
    "code",
    "message",
    "status",
    "attempts",
)


def status(
    store: StateStore,
    mapping: SyncMapping,
    observer: QueueObserver | None,
    queue: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Per entity: backlog, oldest pending change, the last hour's throughput, errors and collisions."""
    moment = now or datetime.now(UTC)
    pending = observer.pending(queue) if observer else []
    backlog: dict[str, int] = defaultdict(int)
    oldest: dict[str, datetime] = {}
    for item in pending:
        backlog[item.entity] += 1
        if item.entity not in oldest or item.enqueued_at < oldest[item.entity]:
            oldest[item.entity] = item.enqueued_at
    hour = store.counts_since(moment - timedelta(hours=1))
    open_errors: dict[str, int] = defaultdict(int)
    for error in store.list_errors(status=ErrorStatus.OPEN, limit=100_000):
        open_errors[error.entity] += 1
    pause = store.get_pause()
    entities = []
    for entity in mapping.entities:
        counts = hour.get(entity.entity, {})
        first = oldest.get(entity.entity)
        entities.append(
            {
                "entity": entity.entity,
                "direction": entity.direction.value,
                "paused": pause.is_paused(entity.entity),
                "backlog": backlog.get(entity.entity, 0),
                "oldest_pending": first.isoformat() if first else None,
                "oldest_pending_age_s": round((moment - first).total_seconds(), 1) if first else None,
                "synced_last_hour": counts.get("synced", 0),
                "changes_last_hour": counts.get("changes", 0),
                "errors_last_hour": counts.get("errors", 0),
                "open_errors": open_errors.get(entity.entity, 0),
                "collisions_last_hour": {
                    "marketo_won": counts.get("collisions_marketo_won", 0),
                    "dynamics_won": counts.get("collisions_dynamics_won", 0),
                },
                "broken_fields": [f.dynamics for f in entity.fields if f.state.value == "broken"],
            }
        )
    timers = {}
    for name in TIMERS:
        checkpoint = store.get_checkpoint(timer_checkpoint(name))
        timers[name] = checkpoint.value if checkpoint else None
    return {
        "generated_at": moment.isoformat(),
        "paused": pause.all,
        "queue": {
            "name": queue,
            "pending": len(pending),
            "unresolved_person_notifications": backlog.get("person", 0),
            "dead_lettered": observer.dead_lettered(queue) if observer else None,
        },
        "entities": entities,
        "timers": timers,
        "quick_sync": quick_sync_status(store),
        "dead_letters": deadletters.summary(observer, queue),
        **durability_status(store, moment),
    }


def durability_status(store: StateStore, now: datetime) -> dict[str, Any]:
    """The pending marks (total, due now, parked by the sweep, waiting per service) and each service's circuit, with the notice an
    admin reads while one is open: "Marketo unavailable since 14:02 UTC, 30 records waiting"."""
    marks = list(store.pending.all())
    waiting: dict[str, int] = defaultdict(int)
    for mark in marks:
        if mark.waiting_on:
            waiting[mark.waiting_on] += 1
    services = {}
    for name, circuit in Circuits(store, lambda: now).all().items():
        since = circuit.open_since
        services[name] = {
            "available": not circuit.is_open,
            "unavailable_since": since.isoformat() if since else None,
            "next_probe_at": circuit.next_probe_at.isoformat() if circuit.next_probe_at else None,
            "failures": circuit.failures,
            "reason": circuit.reason,
            "records_waiting": waiting.get(name, 0) if since else 0,
            "notice": (
                f"{SERVICE_NAMES.get(name, name)} unavailable since {since.astimezone(UTC):%H:%M} UTC, "
                f"{waiting.get(name, 0)} records waiting"
                if since
                else None
            ),
        }
    return {
        "pending": {
            "total": len(marks),
            "due": sum(1 for m in marks if m.due(now)),
            "parked": sum(1 for m in marks if m.parked),  # given up (a pending-gave-up error each)
        },
        "services": services,
    }


def list_errors(
    store: StateStore,
    *,
    entity: str | None = None,
    state: ErrorStatus | None = None,
    search: str | None = None,
    limit: int = 500,
) -> dict[str, Any]:
    errors = store.list_errors(entity=entity, status=state, search=search, limit=limit)
    return {"count": len(errors), "errors": [e.as_row() for e in errors]}


def export_errors(store: StateStore, *, entity: str | None = None, search: str | None = None) -> str:
    """Every matching sync error as CSV, for a spreadsheet."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    for error in store.list_errors(entity=entity, search=search, limit=100_000):
        writer.writerow(error.as_row())
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class RetryQueued:
    """The records put back on the queue, and the sync errors now marked retrying."""

    records: int
    errors: list[str]


def retry_error(store: StateStore, mapping: SyncMapping, queue: ChangesQueue, error_id: str) -> RetryQueued:
    """Put the failed record back on the queue; it is re-read and decided afresh."""
    error = store.get_error(error_id)
    if error is None:
        raise NotFound("no such sync error", code="not-found")
    return _retry(store, mapping, queue, [error])


def retry_open_errors(
    store: StateStore, mapping: SyncMapping, queue: ChangesQueue, *, entity: str | None = None
) -> RetryQueued:
    errors = store.list_errors(entity=entity, status=ErrorStatus.OPEN, limit=10_000)
    return _retry(store, mapping, queue, errors)


def _retry(store: StateStore, mapping: SyncMapping, queue: ChangesQueue, errors: list[SyncErrorRecord]) -> RetryQueued:
    notes = {}
    for error in errors:
        key = f"retry:{error.id}:{datetime.now(UTC).isoformat()}"
        if error.entity in mapping.by_entity and error.record_id:
            notes[(error.entity, error.record_id)] = Notification(
                source=Source.ADMIN_RETRY, entity=error.entity, dynamics_id=error.record_id, dedupe_key=key
            )
        elif error.entity == PERSON and error.record_id:  # a Marketo person's parked change (pending-gave-up)
            notes[(error.entity, error.record_id)] = Notification(
                source=Source.ADMIN_RETRY, marketo_id=error.record_id, dedupe_key=key
            )
    try:
        queue.send(notes.values())
    except SyncError as exc:
        raise RetryLater(f"could not queue the retry: {exc}", code="queue-unavailable") from exc
    for error in errors:
        store.set_error_status(error.id, ErrorStatus.RETRYING)
    return RetryQueued(len(notes), [e.id for e in errors])


def set_pause(store: StateStore, mapping: SyncMapping, entity: str | None, *, paused: bool) -> PauseState:
    """``entity`` None: the whole sync."""
    if entity is not None and entity not in mapping.by_entity:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    return store.set_pause(entity, paused)
