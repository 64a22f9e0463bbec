"""An in-process stand-in for Azure Service Bus queues, with the semantics the sync relies on.

At-least-once delivery with a peek-lock, duplicate detection on ``message_id`` within a window, scheduled
messages, a delivery count that grows on every abandon, and dead-lettering with a reason once it reaches the
queue's max delivery count. Every operation costs the same however many messages the queue holds: available
messages wait in arrival order, scheduled ones in a heap by due time, and the duplicate-detection window forgets
its oldest ids from the front (it never rebuilds its map). There is no Service Bus broker to run on this machine (the emulator is a container),
so the local host and the end-to-end tests use this; in Azure the real queues behave the same way.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.queueing import DeadLettered, OutgoingMessage, Resend, Settled, Settlement


@dataclass(order=True)
class _Entry:
    available_at: float
    sequence: int
    message: OutgoingMessage = field(compare=False)
    enqueued_at: datetime = field(compare=False)
    delivery_count: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Delivered:
    """A locked message handed to a consumer; settle it with complete() or abandon()."""

    message: OutgoingMessage
    sequence: int
    enqueued_at: datetime
    delivery_count: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: OutgoingMessage
    reason: str
    description: str
    delivery_count: int
    dead_lettered_at: datetime
    sequence: int = 0
    enqueued_at: datetime | None = None


class LocalQueue:
    def __init__(
        self,
        name: str,
        *,
        max_delivery_count: int = 10,
        duplicate_window: timedelta = timedelta(minutes=10),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``clock`` paces locks, retries and waits; ``wall`` is the time a ``scheduled_at`` is measured from
        (tests inject both to move time without sleeping)."""
        self.name = name
        self.max_delivery_count = max_delivery_count
        self.duplicate_window = duplicate_window.total_seconds()
        self._clock = clock
        self._wall = wall
        self._ready: deque[_Entry] = deque()  # available now, in the order they became available
        self._scheduled: list[_Entry] = []  # a heap by (available_at, sequence): scheduled or retried later
        self._locked: dict[int, _Entry] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()  # message id -> when sent, oldest first
        self._sequence = itertools.count(1)
        self._cond = threading.Condition()
        self.dead_letters: list[DeadLetter] = []
        self._dead_locked: set[int] = set()  # sequence numbers of dead letters a settle call holds
        self.duplicates_dropped = 0

    # --- producer side ---------------------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        now = self._clock()
        with self._cond:
            for message in messages:
                seen = self._seen.get(message.message_id)
                if seen is not None and now - seen < self.duplicate_window:
                    self.duplicates_dropped += 1
                    continue
                self._seen[message.message_id] = now
                self._seen.move_to_end(message.message_id)
                delay = 0.0
                if message.scheduled_at is not None:
                    delay = max(0.0, (message.scheduled_at - self._wall()).total_seconds())
                self._put(_Entry(now + delay, next(self._sequence), message, self._wall()), now)
            self._forget_old(now)
            self._cond.notify_all()

    def _put(self, entry: _Entry, now: float) -> None:
        if entry.available_at <= now and not self._scheduled_before(entry):
            self._ready.append(entry)
        else:
            heapq.heappush(self._scheduled, entry)

    def _scheduled_before(self, entry: _Entry) -> bool:
        """A scheduled message due before ``entry`` must be handed out first (it is promoted at the next look)."""
        return bool(self._scheduled) and self._scheduled[0].available_at <= entry.available_at

    def _promote(self, now: float) -> None:
        """Move the scheduled messages that are due now to the end of the available ones."""
        while self._scheduled and self._scheduled[0].available_at <= now:
            self._ready.append(heapq.heappop(self._scheduled))

    def _forget_old(self, now: float) -> None:
        """Drop ids older than the window from the front (ids are kept in the order they were sent)."""
        while self._seen:
            oldest, when = next(iter(self._seen.items()))
            if now - when < self.duplicate_window:
                return
            del self._seen[oldest]

    # --- consumer side ---------------------------------------------------------------------------------------

    def receive(self, max_messages: int, timeout: float, stop: threading.Event | None = None) -> list[Delivered]:
        """Lock up to ``max_messages`` available messages, waiting up to ``timeout`` seconds for the first (or
        until ``stop`` is set and :meth:`wake` called: then nothing)."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                self._promote(now)
                if self._ready:
                    break
                remaining = deadline - now
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    return []
                wait = min(remaining, self._next_due_in(now))
                self._cond.wait(timeout=max(wait, 0.001))
            taken: list[Delivered] = []
            while self._ready and len(taken) < max_messages:
                entry = self._ready.popleft()
                entry.delivery_count += 1
                self._locked[entry.sequence] = entry
                taken.append(Delivered(entry.message, entry.sequence, entry.enqueued_at, entry.delivery_count))
            return taken

    def receive_batch(
        self, max_messages: int, min_messages: int, max_wait: float, timeout: float, stop: threading.Event | None = None
    ) -> list[Delivered]:
        """Like the Functions host with ``minMessageBatchSize``/``maxBatchWaitTime``: once a message is available,
        wait up to ``max_wait`` for ``min_messages`` of them before delivering what there is."""
        first_deadline = self._clock() + timeout
        with self._cond:
            while not self._available(self._clock()):
                remaining = first_deadline - self._clock()
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    return []
                self._cond.wait(timeout=min(remaining, self._next_due_in(self._clock())))
            batch_deadline = self._clock() + max_wait
            while self._available(self._clock()) < min_messages:
                remaining = batch_deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(timeout=min(remaining, self._next_due_in(self._clock())))
        return self.receive(max_messages, timeout=0)

    def wake(self) -> None:
        """Wake every receive waiting now, to look at its ``stop`` event: a host stopping ends its pumps at once,
        even when the queue's clock is a test's that stands still (their waits would never time out)."""
        with self._cond:
            self._cond.notify_all()

    def _available(self, now: float) -> int:
        self._promote(now)
        return len(self._ready)

    def _next_due_in(self, now: float) -> float:
        if not self._scheduled:
            return 0.05
        return max(0.001, self._scheduled[0].available_at - now)

    def complete(self, delivered: Sequence[Delivered]) -> None:
        with self._cond:
            for d in delivered:
                self._locked.pop(d.sequence, None)
            self._cond.notify_all()

    def abandon(self, delivered: Sequence[Delivered], *, reason: str, retry_delay: float = 0.0) -> None:
        """Unlock for redelivery; at the max delivery count, dead-letter instead (as Service Bus does)."""
        now = self._clock()
        with self._cond:
            for d in delivered:
                entry = self._locked.pop(d.sequence, None)
                if entry is None:
                    continue
                if entry.delivery_count >= self.max_delivery_count:
                    self.dead_letters.append(
                        DeadLetter(
                            entry.message,
                            "MaxDeliveryCountExceeded",
                            f"Message could not be consumed after {entry.delivery_count} delivery attempts: {reason}",
                            entry.delivery_count,
                            self._wall(),
                            entry.sequence,
                            entry.enqueued_at,
                        )
                    )
                    continue
                entry.available_at = now + retry_delay
                self._put(entry, now)
            self._cond.notify_all()

    def expire_locks(self) -> int:
        """The process that held the locks died: each locked message's lock expires, which Service Bus treats as
        an abandon (available again, its delivery count kept; past the max delivery count, dead-lettered)."""
        with self._cond:
            held = [Delivered(e.message, e.sequence, e.enqueued_at, e.delivery_count) for e in self._locked.values()]
        self.abandon(held, reason="the lock expired (the receiver went away)")
        return len(held)

    # --- observation ------------------------------------------------------------------------------------------

    def peek(self) -> list[Delivered]:
        """Every message not yet completed (ready, scheduled or locked), oldest first."""
        with self._cond:
            entries = sorted([*self._ready, *self._scheduled, *self._locked.values()], key=lambda e: e.sequence)
            return [Delivered(e.message, e.sequence, e.enqueued_at, e.delivery_count) for e in entries]

    # --- the dead-letter sub-queue: peek, lock, then complete or release -----------------------------------------

    def peek_dead_letters(self, after: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Locked ones too, as a Service Bus peek shows them; by sequence number, oldest first."""
        with self._cond:
            found = sorted((d for d in self.dead_letters if d.sequence > after), key=lambda d: d.sequence)
            return found[:limit]

    def lock_dead_letters(self, sequences: Collection[int]) -> list[DeadLetter]:
        """Lock those of ``sequences`` that are there and not locked by another caller; the rest are missed."""
        with self._cond:
            free = [d for d in self.dead_letters if d.sequence in sequences and d.sequence not in self._dead_locked]
            self._dead_locked.update(d.sequence for d in free)
            return free

    def complete_dead_letter(self, sequence: int) -> None:
        with self._cond:
            self._dead_locked.discard(sequence)
            self.dead_letters[:] = [d for d in self.dead_letters if d.sequence != sequence]

    def release_dead_letters(self, sequences: Collection[int]) -> None:
        with self._cond:
            self._dead_locked.difference_update(sequences)

    def drop_ready(self) -> int:
        """Forget the messages waiting (ready or scheduled), as if they had never been sent."""
        with self._cond:
            lost = len(self._ready) + len(self._scheduled)
            self._ready.clear()
            self._scheduled.clear()
            self._cond.notify_all()
            return lost

    def idle(self) -> bool:
        with self._cond:
            return not self._ready and not self._scheduled and not self._locked

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is ready or locked (scheduled messages count as pending)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return self.idle()


class LocalBroker:
    """The local host's queues, addressed by name; implements the QueueSender port."""

    def __init__(
        self,
        *,
        max_delivery_count: int = 10,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``wall``: the time scheduled messages are measured from and enqueue times are stamped with; ``clock``:
        what paces locks, retries and waits (tests that drive time themselves inject both)."""
        self.max_delivery_count = max_delivery_count
        self._wall = wall
        self._clock = clock
        self._queues: dict[str, LocalQueue] = {}
        self._lock = threading.Lock()

    def queue(self, name: str) -> LocalQueue:
        with self._lock:
            found = self._queues.get(name)
            if found is None:
                found = self._queues[name] = LocalQueue(
                    name, max_delivery_count=self.max_delivery_count, wall=self._wall, clock=self._clock
                )
            return found

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.queue(queue).send(messages)

    def drop(self, queue: str) -> int:
        """Lose every message waiting on a queue (not locked ones): how many. For tests of what the sweep finds."""
        return self.queue(queue).drop_ready()

    def queues(self) -> dict[str, LocalQueue]:
        with self._lock:
            return dict(self._queues)

    def dead_letters(self, queue: str, *, after: int = 0, limit: int = 100) -> list[DeadLettered]:
        """The DeadLetterQueue port, as ServiceBusObserver implements it in Azure."""
        return [_dead_lettered(d) for d in self.queue(queue).peek_dead_letters(after, limit)]

    def settle(self, queue: str, plan: Mapping[int, Settlement]) -> Settled:
        """Lock, act, complete: a dead letter another call holds is missed, as a peek-lock receive misses it."""
        q = self.queue(queue)
        locked = q.lock_dead_letters(set(plan))
        done: list[DeadLettered] = []
        try:
            for dead in locked:
                settlement = plan[dead.sequence]
                if isinstance(settlement, Resend):
                    q.send([settlement.message])
                q.complete_dead_letter(dead.sequence)
                done.append(_dead_lettered(dead))
        finally:
            q.release_dead_letters([d.sequence for d in locked])
        got = {d.sequence for d in locked}
        return Settled(done, sorted(s for s in plan if s not in got))


def _dead_lettered(d: DeadLetter) -> DeadLettered:
    m = d.message
    return DeadLettered(
        message_id=m.message_id,
        sequence_number=d.sequence,
        enqueued_at=d.enqueued_at,
        reason=d.reason,
        description=d.description,
        delivery_count=d.delivery_count,
        body=m.body,
        correlation_id=m.correlation_id,
        subject=m.subject,
        application_properties=dict(m.application_properties),
    )
