"""The pending work: marks written before every enqueue, cleared by the reconcile, found again by the sweep.

The queue is the fast path, not the record of what is pending. Every intake (webhooks, the catch-up timer, the
Marketo feed, admin retry) sends through :class:`MarkingQueue`, which writes the records' marks first (one batch
write per partition); a timer moves its checkpoint only after that send, so what it read is marked before it is
passed. A batch that reconciled a record clears its mark if the version is still the one it read at its start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.core.pending import (
    PERSON,
    Change,
    MarkKey,
    PendingMark,
    clearable,
    deferred,
    failed_with,
    given_up,
    marked,
    resent,
)
from shared.errors import Conflict
from shared.pipeline.notification import Kind, Notification, parse_notification
from shared.pipeline.ports import ChangesQueue
from shared.queueing import OutgoingMessage
from shared.store.base import StateStore

log = logging.getLogger(__name__)

_ROUNDS = 5  # a write that keeps losing to other instances gives up after this many fresh reads


def mark_key(note: Notification) -> MarkKey:
    if note.dynamics_id is not None and note.entity is not None:
        return MarkKey(note.entity, note.dynamics_id.lower())
    return MarkKey(PERSON, str(note.marketo_id))


def change_of(note: Notification) -> Change:
    return Change(mark_key(note), note.model_dump_json(exclude_none=True), note.kind is Kind.DELETE)


def notification_of(mark: PendingMark) -> Notification:
    """The notification a mark holds (a sticky delete stays a delete)."""
    note = parse_notification(mark.notification)
    return note.model_copy(update={"kind": Kind.DELETE}) if mark.deleted else note


@dataclass(frozen=True, slots=True)
class PendingWork:
    store: StateStore
    clock: Callable[[], datetime]
    grace: timedelta = timedelta(minutes=5)

    def mark(self, notes: Iterable[Notification]) -> None:
        """Mark every record the notifications name (the last one per record wins, a delete sticks)."""
        now = self.clock()
        changes = _merged(notes)
        self._update(changes, lambda old, change: marked(old, change, now, self.grace))

    def defer(self, notes: Iterable[Notification], until: datetime, reason: str, service: str | None) -> None:
        """The records wait for ``until`` (the circuit's probe): marked if they were not, one attempt more."""
        now = self.clock()
        changes = _merged(notes)
        self._update(changes, lambda old, change: deferred(old, change, now, until, reason, service))

    def _update(
        self, changes: Mapping[MarkKey, Change], rule: Callable[[PendingMark | None, Change], PendingMark]
    ) -> None:
        left = dict(changes)
        for _ in range(_ROUNDS):
            if not left:
                return
            existing = self.store.pending.get_many(left)
            try:
                self.store.pending.save_many([rule(existing.get(key), change) for key, change in left.items()])
                return
            except Conflict:
                pass  # another instance wrote one of them: one at a time from fresh reads
            for key, change in list(left.items()):
                current = self.store.pending.get_many([key]).get(key)
                try:
                    self.store.pending.save_many([rule(current, change)])
                    del left[key]
                except Conflict:
                    continue
        if left:
            raise Conflict(f"{len(left)} pending mark(s) kept changing under us")

    def versions(self, notes: Iterable[Notification]) -> dict[MarkKey, int]:
        """The marks' versions now (a batch reads them at its start; records without a mark are absent)."""
        return {k: m.version for k, m in self.store.pending.get_many({mark_key(n) for n in notes}).items()}

    def clear(self, versions: Mapping[MarkKey, int]) -> int:
        """Clear the marks still at the version read; a mark changed since keeps. Returns how many cleared."""
        current = self.store.pending.get_many(versions)
        doomed = [m for k, m in current.items() if clearable(m, versions[k])]
        try:
            self.store.pending.delete_many(doomed)
            return len(doomed)
        except Conflict:
            pass
        cleared = 0
        for mark in doomed:  # one of them changed meanwhile: the others go one by one
            try:
                self.store.pending.delete_many([mark])
                cleared += 1
            except Conflict:
                continue
        return cleared

    def resend(
        self,
        marks: Sequence[PendingMark],
        queue: ChangesQueue,
        *,
        stamp: str,
        outage: bool = False,
        paused: Callable[[MarkKey], bool] = lambda key: False,
    ) -> int:
        """Send the marks' notifications again (a fresh message id each time, past duplicate detection), then
        move them a grace period out, counting the re-send unless ``outage`` (a circuit's probe) or the record's
        entity is ``paused`` (:func:`shared.core.pending.resent`). Marks that changed meanwhile keep their own
        (newer) schedule."""
        if not marks:
            return 0
        notes = []
        for mark in marks:
            note = notification_of(mark)
            notes.append(note.model_copy(update={"dedupe_key": f"{note.dedupe_key or ''}|sweep@{stamp}"}))
        ChangesQueue.send(queue, notes)  # the marks exist: no need to mark again
        now = self.clock()
        self._save_each([resent(m, now, self.grace, outage=outage, paused=paused(m.key)) for m in marks])
        return len(notes)

    def park(self, marks: Sequence[PendingMark]) -> list[PendingMark]:
        """Give up on the marks: kept, never due, until their records change again. Returns those parked (a mark
        that changed meanwhile keeps its newer state)."""
        return self._save_each([given_up(m) for m in marks])

    def failed(self, notes: Iterable[Notification], reason: str) -> None:
        """A batch with these records failed for a reason that is not an outage: keep the reason on their marks
        (best effort: the batch is redelivered whatever happens here, and the store may be what failed)."""
        keys = {mark_key(n) for n in notes}
        try:
            current = self.store.pending.get_many(keys)
            self._save_each([failed_with(m, reason) for m in current.values()])
        except Exception as exc:  # best effort: never hides the batch's own failure, which the caller raises
            log.warning("could not note the failure on %d pending mark(s): %s", len(keys), exc)

    def _save_each(self, marks: Sequence[PendingMark]) -> list[PendingMark]:
        """Save the marks (conditional on their ETags); on a conflict the others one by one. Returns the saved."""
        try:
            self.store.pending.save_many(marks)
            return list(marks)
        except Conflict:  # one changed meanwhile (a new change, a clear): the others one by one
            saved = []
            for mark in marks:
                with suppress(Conflict):
                    self.store.pending.save_many([mark])
                    saved.append(mark)
            return saved

    def all(self) -> list[PendingMark]:
        return list(self.store.pending.all())


def _merged(notes: Iterable[Notification]) -> dict[MarkKey, Change]:
    """One change per record: the last notification, a delete among them kept."""
    changes: dict[MarkKey, Change] = {}
    for note in notes:
        change = change_of(note)
        before = changes.get(change.key)
        if before is not None and before.deleted and not change.deleted:
            change = Change(change.key, change.notification, True)
        changes[change.key] = change
    return changes


@dataclass(frozen=True, slots=True)
class MarkingQueue(ChangesQueue):
    """The changes queue every intake sends through: the records are marked before the messages are sent."""

    pending: PendingWork | None = None

    def send(self, notes: Iterable[Notification]) -> list[OutgoingMessage]:
        listed = list(notes)
        if self.pending is not None and listed:
            self.pending.mark(listed)
        return ChangesQueue.send(self, listed)
