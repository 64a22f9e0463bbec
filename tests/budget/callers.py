"""What the shared-budget tests of both services share: callers in threads (on a fake clock) or in several real
processes over one store, and the measures of what they did (the densest window, the most calls at once)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from shared.budget.lanes import LaneLimiter
from shared.budget.rules import Lane
from tests.marketo_harness import FakeClock

STALL_SECONDS = 10.0  # real seconds a sleeper waits for the others before it moves the clock anyway

Span = tuple[float, float]  # a call's start and end, on the wall clock every process shares


def densest(stamps: list[float], window: float) -> int:
    """The most of ``stamps`` in any ``window`` seconds."""
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def most_at_once(spans: list[Span]) -> int:
    """The most calls under way at the same moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def calls_for(limiter: LaneLimiter, seconds: float, threads: int = 6) -> list[Span]:
    """``threads`` threads making 2 ms calls through ``limiter`` as fast as it lets them, for ``seconds``."""
    spans: list[Span] = []
    lock = threading.Lock()
    stop = time.time() + seconds

    def work() -> None:
        while time.time() < stop:
            with limiter.slot():
                start = time.time()
                time.sleep(0.002)
                end = time.time()
            with lock:
                spans.append((start, end))

    running = [threading.Thread(target=work) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return spans


def in_processes(worker: Callable[..., None], args: Sequence[Any], k: int, timeout: float = 60.0) -> list[Any]:
    """``worker(*args, out)`` in ``k`` spawned processes at once; what each put on ``out``, in the order they did."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [context.Process(target=worker, args=(*args, out)) for _ in range(k)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=timeout) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    return results


class VirtualClock(FakeClock):
    """A fake clock that moves only when every thread taking part waits on it: a discrete-event clock.

    On a plain :class:`FakeClock` a thread that sleeps moves every thread's time at once, so under CPU load one
    holder's store round trip, or a woken thread that the OS has not run yet, could span seconds of the other
    holders' sleeps: grants came back "late" and leases expired unused, which real time does not do. Here a
    sleeper moves the clock to its wake time only once no participant runs (each sleeps or waits on a limiter's
    :class:`VirtualCondition`) and no sleeper wakes earlier, so what the threads do in fake time does not depend
    on how the OS schedules them. A participant is a thread between :meth:`enter` and :meth:`leave`."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        super().__init__(start)
        self._state = threading.Condition()
        self._running = 0
        self._wakes: list[float] = []

    def enter(self) -> None:
        with self._state:
            self._running += 1

    def block(self) -> None:
        """The calling participant waits for another one (on a :class:`VirtualCondition`)."""
        with self._state:
            self._running -= 1
            self._state.notify_all()

    def leave(self) -> None:
        """The calling participant is done: to the clock, one that never runs again."""
        self.block()

    def unblock(self, n: int) -> None:
        """``n`` blocked participants were woken: they run again from this moment, before the OS runs them."""
        if n:
            with self._state:
                self._running += n

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        with self._state:
            target = self.time() + seconds
            self._wakes.append(target)
            self._running -= 1
            self._state.notify_all()
            stall = time.monotonic() + STALL_SECONDS
            try:
                while self.time() < target:
                    left = stall - time.monotonic()
                    if left <= 0 or (self._running <= 0 and target <= min(self._wakes)):
                        self.advance(target - self.time())
                        self._state.notify_all()
                        break
                    self._state.wait(left)
            finally:
                self._wakes.remove(target)
                self._running += 1
                self.slept += seconds


class VirtualCondition(threading.Condition):
    """A limiter's condition whose waiters count as blocked on ``clock`` (see :class:`VirtualClock`)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock
        self._blocked = 0

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is None, "a virtual condition is woken by a notify, never by real time"
        self._blocked += 1
        self._clock.block()
        return super().wait()

    def notify(self, n: int = 1) -> None:
        woken = min(n, self._blocked)
        self._blocked -= woken
        self._clock.unblock(woken)
        super().notify(n)


def hammer(
    holders: list[LaneLimiter], clock: VirtualClock, *, threads: int, seconds: float, join_timeout: float
) -> list[tuple[float, float, Lane]]:
    """``threads`` threads spread over ``holders`` make 10 ms calls through them for ``seconds`` of the fake
    clock; each call's start, end and lane. Fails if a thread is still stuck after ``join_timeout`` real seconds.
    The holders' sleeps and waits go by ``clock`` (:class:`VirtualClock`): the outcome does not depend on load."""
    spans: list[tuple[float, float, Lane]] = []
    lock = threading.Lock()
    stop = clock.time() + seconds
    for holder in holders:
        holder._cond = VirtualCondition(clock)

    def work(limiter: LaneLimiter) -> None:
        try:
            while clock.time() < stop:
                with limiter.slot():
                    start = clock.time()
                    clock.advance(0.01)
                    end = clock.time()
                with lock:
                    spans.append((start, end, limiter.lane))
        finally:
            clock.leave()

    workers = [threading.Thread(target=work, args=(holders[n % len(holders)],)) for n in range(threads)]
    for _ in workers:
        clock.enter()  # all of them before any runs: none may move the clock while the others are yet to start
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=join_timeout)
    assert not any(w.is_alive() for w in workers)
    return spans
