"""An in-process stand-in for Azure Service Bus queues, with the semantics the sync relies on.

At-least-once delivery with a peek-lock, duplicate detection on ``message_id`` within a window, scheduled
messages, a delivery count that grows on every abandon, and dead-lettering with a reason once it reaches the
queue's max delivery count. There is no Service Bus broker to run on this machine (the emulator is a container),
so the local host and the end-to-end tests use this; in Azure the real queues behave the same way.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.queueing import OutgoingMessage


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
        self._ready: list[_Entry] = []
        self._locked: dict[int, _Entry] = {}
        self._seen: dict[str, float] = {}
        self._sequence = itertools.count(1)
        self._cond = threading.Condition()
        self.dead_letters: list[DeadLetter] = []
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
                delay = 0.0
                if message.scheduled_at is not None:
                    delay = max(0.0, (message.scheduled_at - self._wall()).total_seconds())
                entry = _Entry(now + delay, next(self._sequence), message, self._wall())
                heapq.heappush(self._ready, entry)
            self._forget_old(now)
            self._cond.notify_all()

    def _forget_old(self, now: float) -> None:
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if now - v < self.duplicate_window}

    # --- consumer side ---------------------------------------------------------------------------------------

    def receive(self, max_messages: int, timeout: float) -> list[Delivered]:
        """Lock up to ``max_messages`` available messages, waiting up to ``timeout`` seconds for the first."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                if self._ready and self._ready[0].available_at <= now:
                    break
                remaining = deadline - now
                if remaining <= 0:
                    return []
                wait = remaining
                if self._ready:
                    wait = min(wait, max(0.0, self._ready[0].available_at - now))
                self._cond.wait(timeout=max(wait, 0.001))
            taken: list[Delivered] = []
            while self._ready and self._ready[0].available_at <= now and len(taken) < max_messages:
                entry = heapq.heappop(self._ready)
                entry.delivery_count += 1
                self._locked[entry.sequence] = entry
                taken.append(Delivered(entry.message, entry.sequence, entry.enqueued_at, entry.delivery_count))
            return taken

    def receive_batch(self, max_messages: int, min_messages: int, max_wait: float, timeout: float) -> list[Delivered]:
        """Like the Functions host with ``minMessageBatchSize``/``maxBatchWaitTime``: once a message is available,
        wait up to ``max_wait`` for ``min_messages`` of them before delivering what there is."""
        first_deadline = self._clock() + timeout
        with self._cond:
            while not self._available(self._clock()):
                remaining = first_deadline - self._clock()
                if remaining <= 0:
                    return []
                self._cond.wait(timeout=min(remaining, self._next_due_in(self._clock())))
            batch_deadline = self._clock() + max_wait
            while self._available(self._clock()) < min_messages:
                remaining = batch_deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(timeout=min(remaining, self._next_due_in(self._clock())))
        return self.receive(max_messages, timeout=0)

    def _available(self, now: float) -> int:
        return sum(1 for e in self._ready if e.available_at <= now)

    def _next_due_in(self, now: float) -> float:
        future = [e.available_at - now for e in self._ready if e.available_at > now]
        return max(0.001, min(future, default=0.05))

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
                        )
                    )
                    continue
                entry.available_at = now + retry_delay
                heapq.heappush(self._ready, entry)
            self._cond.notify_all()

    # --- observation ------------------------------------------------------------------------------------------

    def peek(self) -> list[Delivered]:
        """Every message not yet completed (ready, scheduled or locked), oldest first."""
        with self._cond:
            entries = sorted([*self._ready, *self._locked.values()], key=lambda e: e.sequence)
            return [Delivered(e.message, e.sequence, e.enqueued_at, e.delivery_count) for e in entries]

    def idle(self) -> bool:
        with self._cond:
            return not self._ready and not self._locked

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

    def __init__(self, *, max_delivery_count: int = 10) -> None:
        self.max_delivery_count = max_delivery_count
        self._queues: dict[str, LocalQueue] = {}
        self._lock = threading.Lock()

    def queue(self, name: str) -> LocalQueue:
        with self._lock:
            found = self._queues.get(name)
            if found is None:
                found = self._queues[name] = LocalQueue(name, max_delivery_count=self.max_delivery_count)
            return found

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.queue(queue).send(messages)

    def queues(self) -> dict[str, LocalQueue]:
        with self._lock:
            return dict(self._queues)
