"""The Sync Status view: what is waiting, what went through, what it costs, and what runs next.

Counted in records, not messages: a record's backlog is the union of the notifications waiting on the queue for it
(the observer's peek, several per record while a paused entity's notifications come round again) and its pending
mark in the store (docs/durability.md: the record of pending work, also where a lost message left one), each record
once. Throughput comes from the store's counters, kept in :data:`~shared.store.base.SLOT_MINUTES`-minute slots of
each hour: "last hour" is the last twelve slots (55 to 60 minutes), the trend one row per hour of the last 24.

Budgets report what is known and null what is not: Marketo's 20-second window as this instance's limiter counts
its own calls, and the daily quota from Marketo's Usage endpoint (every integration's calls, read at most once a
minute, not at all while Marketo's circuit is open); Dataverse's concurrency as the client's gate holds it (the
service-protection counters of 6000 requests and 20 minutes of execution time per 5 minutes are not reported by
Dataverse until a 429, so they are null).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.mapping import EntityMapping, SyncMapping
from shared.core.ncrontab import Schedule, ScheduleError
from shared.core.pending import PERSON, PendingMark
from shared.dataverse.client import DataverseClient
from shared.errors import NotFound, SyncError
from shared.marketo.client import MarketoClient
from shared.marketo.lanes import LaneLimiter
from shared.marketo.limiter import RateLimiter
from shared.pipeline import deadletters
from shared.pipeline.circuit import MARKETO, Circuits
from shared.pipeline.feeds import timer_checkpoint
from shared.pipeline.quicksync.jobs import list_jobs
from shared.queueing import QueueObserver
from shared.store.base import SLOT_MINUTES, StateStore
from shared.store.model import ErrorStatus

SERVICE_NAMES = {"marketo": "Marketo", "dataverse": "Dataverse"}
TREND_HOURS = 24
JOBS_SHOWN = 20  # the newest jobs in the status view (GET /api/jobs lists them all)
DATAVERSE_REQUESTS_PER_5_MIN = 6000  # service protection, per user per web server (Microsoft's documented limit)


@dataclass(frozen=True, slots=True)
class Budgets:
    """What the status view reports of the services' limits; built by :func:`budgets`."""

    marketo: dict[str, Any]
    dataverse: dict[str, Any]


@dataclass
class _Backlog:
    """Per entity: the records waiting (their keys), the oldest instant one of them has waited since, and the
    messages on the queue."""

    records: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    oldest: dict[str, datetime] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, entity: str, record: str, since: datetime) -> None:
        self.records[entity].add(record)
        if entity not in self.oldest or since < self.oldest[entity]:
            self.oldest[entity] = since


def iso(moment: datetime | None) -> str | None:
    """Times as people read them: UTC with the offset, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat() if moment else None


def backlog(observer: QueueObserver | None, queue: str, marks: Iterable[PendingMark]) -> _Backlog:
    """The queue's messages and the store's pending marks (not the parked ones: given up, each with a
    pending-gave-up sync error), one record each however many notifications name it."""
    found = _Backlog()
    for n, item in enumerate(observer.pending(queue) if observer else []):
        found.messages[item.entity] += 1
        key = item.record or f"{item.entity}/message-{n}"  # a message from before records were named: itself
        partition, _, record = key.partition("/")
        found.add(item.entity if partition != PERSON else PERSON, record, item.enqueued_at)
    for mark in marks:
        if not mark.parked:
            found.add(mark.key.partition, mark.key.record_id, mark.first_seen)
    return found


def trend(slots: Iterable[tuple[datetime, str, dict[str, int]]], now: datetime) -> dict[str, dict[str, Any]]:
    """Per entity: the last hour's totals (slots that started in the last 60 minutes) and 24 hourly rows."""
    moment = now.astimezone(UTC)
    hour_now = moment.replace(minute=0, second=0, microsecond=0)
    hours = [hour_now - timedelta(hours=back) for back in range(TREND_HOURS - 1, -1, -1)]
    slot_now = hour_now.replace(minute=moment.minute - moment.minute % SLOT_MINUTES)
    first_slot = slot_now - timedelta(minutes=60 - SLOT_MINUTES)  # this slot and the eleven before it
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"hour": defaultdict(int), "rows": {h: {"synced": 0, "failed": 0} for h in hours}}
    )
    for start, entity, counts in slots:
        into = out[entity]
        if start >= first_slot:
            for key, value in counts.items():
                into["hour"][key] += value
        row = into["rows"].get(start.replace(minute=0))
        if row is not None:
            row["synced"] += counts.get("synced", 0) + counts.get("quick_sync", 0)
            row["failed"] += counts.get("errors", 0)
    return out


def _entity_view(
    entity: EntityMapping, paused: bool, waiting: _Backlog, counted: dict[str, Any], open_errors: int, now: datetime
) -> dict[str, Any]:
    name = entity.entity
    hour: Mapping[str, int] = counted["hour"]
    first = waiting.oldest.get(name)
    records = len(waiting.records.get(name, ()))
    return {
        "entity": name,
        "direction": entity.direction.value,
        "paused": paused,
        "backlog": records,  # in records (before: in notifications)
        "backlog_records": records,
        "queued_messages": waiting.messages.get(name, 0),
        "oldest_pending": iso(first),
        "oldest_pending_age_s": round((now - first).total_seconds(), 1) if first else None,
        "synced_last_hour": hour.get("synced", 0),
        "failed_last_hour": hour.get("errors", 0),
        "changes_last_hour": hour.get("changes", 0),
        "errors_last_hour": hour.get("errors", 0),
        "quick_sync_last_hour": hour.get("quick_sync", 0),
        "open_errors": open_errors,
        "collisions_last_hour": {
            "marketo_won": hour.get("collisions_marketo_won", 0),
            "dynamics_won": hour.get("collisions_dynamics_won", 0),
        },
        "trend_24h": [{"hour": iso(h), **row} for h, row in counted["rows"].items()],
        "broken_fields": [f.dynamics for f in entity.fields if f.state.value == "broken"],
    }


def timers(store: StateStore, schedules: Mapping[str, str], now: datetime) -> dict[str, dict[str, Any]]:
    """Each timer's last run (its checkpoint) and next run (its NCRONTAB schedule, after now)."""
    out = {}
    for name, text in schedules.items():
        checkpoint = store.get_checkpoint(timer_checkpoint(name))
        last = datetime.fromisoformat(checkpoint.value) if checkpoint else None
        try:
            following: datetime | None = Schedule.parse(text).next_after(now.astimezone(UTC))
        except ScheduleError:
            following = None
        out[name] = {"last_run": iso(last), "next_run": iso(following), "schedule": text}
    return out


def budgets(
    marketo: MarketoClient | None,
    dataverse: DataverseClient | None,
    *,
    calls_per_20s: int,
    daily_quota: int,
    marketo_available: bool = True,
) -> Budgets:
    """Marketo: this instance's calls in the current 20 s window (its limiter's count) against Marketo's limit, and
    the day's calls from the Usage endpoint (cached a minute; skipped while Marketo is unavailable). Dataverse: the
    concurrency the client's gate allows and holds; the per-5-minute counters are not known (null)."""
    mk: dict[str, Any] = {
        "calls_last_20s": None,
        "limit_20s": calls_per_20s,
        "ceiling_20s": None,
        "in_flight": None,
        "daily_used": None,
        "daily_limit": daily_quota,
        "daily_left": None,
        "daily_date": None,
        "daily_error": None,
    }
    if marketo is not None:
        limiter = marketo.limiter
        if isinstance(limiter, RateLimiter):
            stats = limiter.stats()
            mk.update(calls_last_20s=stats.in_window, ceiling_20s=stats.ceiling, in_flight=stats.in_flight)
        elif isinstance(limiter, LaneLimiter):  # the budget every instance shares: the tenant's figures
            try:
                shared = limiter.usage()
                mk.update(
                    calls_last_20s=shared.in_window,
                    ceiling_20s=limiter.ledger.limits.ceiling,
                    in_flight=shared.in_flight,
                )
            except SyncError:
                pass  # the store is down: the view shows what it can
        if marketo_available:
            reading = marketo.usage.get()
            if reading.usage is not None:
                used = reading.usage.total
                mk.update(daily_used=used, daily_left=max(0, daily_quota - used), daily_date=reading.usage.date)
            mk["daily_error"] = reading.error
        else:
            mk["daily_error"] = "Marketo is unavailable: usage not read"
    dv: dict[str, Any] = {
        "concurrency_limit": None,
        "in_flight": None,
        "requests_last_5min": None,
        "requests_limit_5min": DATAVERSE_REQUESTS_PER_5_MIN,
        "peak": None,
    }
    if dataverse is not None:
        gate = dataverse.gate
        dv.update(concurrency_limit=gate.limit, in_flight=gate.in_flight, peak=gate.peak)
    return Budgets(mk, dv)


def status(
    store: StateStore,
    mapping: SyncMapping,
    observer: QueueObserver | None,
    queue: str,
    *,
    now: datetime | None = None,
    entity: str | None = None,
    schedules: Mapping[str, str] | None = None,
    limits: Budgets | None = None,
) -> dict[str, Any]:
    """The whole view; ``entity`` narrows the entities listed (:class:`NotFound` for one the mapping lacks)."""
    moment = now or datetime.now(UTC)
    if entity is not None and entity not in mapping.by_entity:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    marks = list(store.pending.all())
    waiting = backlog(observer, queue, marks)
    counted = trend(store.counts_by_slot(moment - timedelta(hours=TREND_HOURS)), moment)
    open_errors: dict[str, int] = defaultdict(int)
    for error in store.list_errors(status=ErrorStatus.OPEN, limit=100_000):
        open_errors[error.entity] += 1
    pause = store.get_pause()
    entities = [
        _entity_view(e, pause.is_paused(e.entity), waiting, counted[e.entity], open_errors.get(e.entity, 0), moment)
        for e in mapping.entities
        if entity is None or e.entity == entity
    ]
    jobs = [j.public(moment) for j in reversed(list_jobs(store))]
    dead = deadletters.summary(observer, queue)
    return {
        "generated_at": iso(moment),
        "paused": pause.all,
        "paused_all": pause.all,
        "paused_entities": sorted(pause.entities),
        "queue": {
            "name": queue,
            "pending": sum(waiting.messages.values()),
            "unresolved_person_notifications": waiting.messages.get(PERSON, 0),
            "unresolved_person_records": len(waiting.records.get(PERSON, ())),
            "dead_lettered": observer.dead_lettered(queue) if observer else None,
        },
        "entities": entities,
        "timers": timers(store, schedules or {}, moment),
        "budgets": {"marketo": limits.marketo, "dataverse": limits.dataverse} if limits else None,
        "jobs": jobs[:JOBS_SHOWN],
        "quick_sync": [j for j in jobs if j["kind"] == "quick_sync"][:JOBS_SHOWN],
        "dead_letters": dead,
        **durability_status(store, moment, marks),
    }


def marketo_available(store: StateStore, now: datetime) -> bool:
    circuit = Circuits(store, lambda: now).all().get(MARKETO)
    return circuit is None or not circuit.is_open


def durability_status(store: StateStore, now: datetime, marks: list[PendingMark] | None = None) -> dict[str, Any]:
    """The pending marks (total, due now, parked by the sweep, waiting per service) and each service's circuit, with
    the notice an admin reads while one is open: "Marketo unavailable since 14:02 UTC, 30 records waiting"."""
    marks = list(store.pending.all()) if marks is None else marks
    waiting: dict[str, int] = defaultdict(int)
    for mark in marks:
        if mark.waiting_on:
            waiting[mark.waiting_on] += 1
    services = {}
    for name, circuit in Circuits(store, lambda: now).all().items():
        since = circuit.open_since
        services[name] = {
            "available": not circuit.is_open,
            "unavailable_since": iso(since),
            "next_probe_at": iso(circuit.next_probe_at),
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
