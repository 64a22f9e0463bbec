"""Pending marks: the durable record that a change was accepted and is not reconciled yet.

A mark is kept per record, keyed by (entity, Dynamics id), or ("person", Marketo id) for a Marketo change whose
Dynamics record is not known yet. The queue message is only the fast path: a mark outlives a lost, dead-lettered
or never-sent message, and the sweep sends it again once it is due. These are the pure rules; the store and the
sweep carry them out.

* a new change **marks** the record: the latest notification wins, except that a delete is sticky (a record
  once deleted stays a delete), the version is bumped, and it becomes due after the grace period (so the sweep
  does not duplicate a healthy message) unless it was already held for longer;
* a batch that cannot reach a service **defers** the mark: due at the circuit's probe, one attempt more, the
  reason kept; the version stays (no new change arrived); the sweep's re-send that ran into the outage no longer
  counts;
* a reconcile **clears** the mark only if its version is still the one the batch read: a change that arrived
  meanwhile keeps its mark, and so does a mark made again after a clear (a new mark's version is the time of its
  first change in microseconds, never an earlier mark's);
* the sweep **re-sends** a due mark; a re-send counts towards the cap (``resends``) only when every circuit is
  closed, the record's entity is not paused and the mark was not held by an outage: an outage (or a pause) never
  exhausts a mark. A mark due again after ``max_attempts`` counted re-sends is **parked** (a sync error says so):
  never due, until a new change of the record (an admin retry is one) marks it again and starts the count afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

PERSON = "person"
"""The partition of marks for Marketo persons whose Dynamics record is not known yet."""


@dataclass(frozen=True, slots=True)
class MarkKey:
    partition: str  # the Dynamics entity, or PERSON
    record_id: str  # the Dynamics id (lower case), or the Marketo id


@dataclass(frozen=True, slots=True)
class Change:
    """What an intake accepted, as far as a mark needs it: the notification (as its JSON) and whether it is a
    delete."""

    key: MarkKey
    notification: str
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class PendingMark:
    key: MarkKey
    notification: str
    deleted: bool
    first_seen: datetime
    last_seen: datetime
    version: int
    next_due_at: datetime
    attempts: int = 0
    last_error: str | None = None
    waiting_on: str | None = None  # the service whose outage holds it ("marketo", "dataverse")
    resends: int = 0  # the sweep's re-sends not caused by an outage or a pause, since the last change
    parked: bool = False  # given up after too many re-sends: never due until the record changes again
    etag: str | None = None  # the store's version of the row

    def due(self, now: datetime) -> bool:
        return not self.parked and self.next_due_at <= now

    def exhausted(self, max_attempts: int) -> bool:
        """The sweep has re-sent it ``max_attempts`` times (not counting outages) and it is due once more; a mark
        an outage held is sent once more first (that re-send drains the outage and does not count)."""
        return self.resends >= max_attempts and self.waiting_on is None


def first_version(now: datetime) -> int:
    """A new mark's version: the time of its first change in microseconds, so that it never equals a version a
    batch read of an earlier mark of the same record (created, cleared, created again: a batch still holding the
    first mark's version must not clear the second). Later changes add one each."""
    return int(now.timestamp() * 1_000_000)


def marked(existing: PendingMark | None, change: Change, now: datetime, grace: timedelta) -> PendingMark:
    """The mark after a change was accepted."""
    due = now + grace
    if existing is None:
        return PendingMark(change.key, change.notification, change.deleted, now, now, first_version(now), due)
    return replace(
        existing,
        notification=change.notification,
        deleted=existing.deleted or change.deleted,
        last_seen=now,
        version=existing.version + 1,
        next_due_at=max(existing.next_due_at, due),
        resends=0,
        parked=False,
    )


def deferred(
    existing: PendingMark | None, change: Change, now: datetime, until: datetime, reason: str, service: str | None
) -> PendingMark:
    """The mark after a batch could not reach ``service``: it waits until ``until`` (the probe)."""
    base = existing or PendingMark(change.key, change.notification, change.deleted, now, now, first_version(now), until)
    return replace(
        base,
        deleted=base.deleted or change.deleted,
        attempts=base.attempts + 1,
        # the re-send that ran into the outage does not count (the first deferral of an outage takes it back)
        resends=base.resends if base.waiting_on else max(base.resends - 1, 0),
        next_due_at=until,
        last_error=reason,
        waiting_on=service,
    )


def resent(
    mark: PendingMark, now: datetime, grace: timedelta, *, outage: bool = False, paused: bool = False
) -> PendingMark:
    """The mark after the sweep sent its notification again: due again only if that one is lost too.

    ``outage``: a circuit is open (the re-send is its probe); the mark still waits on it and nothing counts.
    Otherwise the outage (if one held the mark) is over; the re-send counts unless it is the one that drains the
    outage's work (the mark was held by it) or the entity is paused."""
    if outage:
        return replace(mark, next_due_at=now + grace)
    counts = mark.waiting_on is None and not paused
    return replace(mark, next_due_at=now + grace, resends=mark.resends + int(counts), waiting_on=None)


def given_up(mark: PendingMark) -> PendingMark:
    """The mark after the sweep gave up on it: kept, never due, until the record changes again."""
    return replace(mark, parked=True)


def failed_with(mark: PendingMark, reason: str) -> PendingMark:
    """The mark after a batch with its record failed for a reason that is not an outage (the batch is
    redelivered): the reason is kept for the sync error the sweep records if it gives up."""
    return replace(mark, last_error=reason)


def clearable(current: PendingMark | None, read_version: int) -> bool:
    """Whether a reconcile that started from ``read_version`` may clear the mark as it stands now."""
    return current is not None and current.version == read_version
