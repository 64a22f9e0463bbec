"""Pending marks: the durable record that a change was accepted and is not reconciled yet.

A mark is kept per record, keyed by (entity, Dynamics id), or ("person", Marketo id) for a Marketo change whose
Dynamics record is not known yet. The queue message is only the fast path: a mark outlives a lost, dead-lettered
or never-sent message, and the sweep sends it again once it is due. These are the pure rules; the store and the
sweep carry them out.

* a new change **marks** the record: the latest notification wins, except that a delete is sticky (a record
  once deleted stays a delete), the version is bumped, and it becomes due after the grace period (so the sweep
  does not duplicate a healthy message) unless it was already held for longer;
* a batch that cannot reach a service **defers** the mark: due at the circuit's probe, one attempt more, the
  reason kept; the version stays (no new change arrived);
* a reconcile **clears** the mark only if its version is still the one the batch read: a change that arrived
  meanwhile keeps its mark.
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
    etag: str | None = None  # the store's version of the row

    def due(self, now: datetime) -> bool:
        return self.next_due_at <= now


def marked(existing: PendingMark | None, change: Change, now: datetime, grace: timedelta) -> PendingMark:
    """The mark after a change was accepted."""
    due = now + grace
    if existing is None:
        return PendingMark(change.key, change.notification, change.deleted, now, now, 1, due)
    return replace(
        existing,
        notification=change.notification,
        deleted=existing.deleted or change.deleted,
        last_seen=now,
        version=existing.version + 1,
        next_due_at=max(existing.next_due_at, due),
    )


def deferred(
    existing: PendingMark | None, change: Change, now: datetime, until: datetime, reason: str, service: str | None
) -> PendingMark:
    """The mark after a batch could not reach ``service``: it waits until ``until`` (the probe)."""
    base = existing or PendingMark(change.key, change.notification, change.deleted, now, now, 1, until)
    return replace(
        base,
        deleted=base.deleted or change.deleted,
        attempts=base.attempts + 1,
        next_due_at=until,
        last_error=reason,
        waiting_on=service,
    )


def resent(mark: PendingMark, now: datetime, grace: timedelta) -> PendingMark:
    """The mark after the sweep sent its notification again: due again only if that one is lost too."""
    return replace(mark, next_due_at=now + grace)


def clearable(current: PendingMark | None, read_version: int) -> bool:
    """Whether a reconcile that started from ``read_version`` may clear the mark as it stands now."""
    return current is not None and current.version == read_version
