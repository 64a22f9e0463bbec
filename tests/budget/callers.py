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


def hammer(
    holders: list[LaneLimiter], clock: FakeClock, *, threads: int, seconds: float, join_timeout: float
) -> list[tuple[float, float, Lane]]:
    """``threads`` threads spread over ``holders`` make 10 ms calls through them for ``seconds`` of the fake
    clock; each call's start, end and lane. Fails if a thread is still stuck after ``join_timeout`` real seconds."""
    spans: list[tuple[float, float, Lane]] = []
    lock = threading.Lock()
    stop = clock.time() + seconds

    def work(limiter: LaneLimiter) -> None:
        while clock.time() < stop:
            with limiter.slot():
                start = clock.time()
                clock.advance(0.01)
                end = clock.time()
            with lock:
                spans.append((start, end, limiter.lane))

    workers = [threading.Thread(target=work, args=(holders[n % len(holders)],)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=join_timeout)
    assert not any(w.is_alive() for w in workers)
    return spans
