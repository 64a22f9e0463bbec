"""One limiter per Marketo instance: at most N calls in any sliding window and at most C calls in flight.

Marketo counts 100 calls per 20 s and 10 concurrent calls per *instance*, shared with every other integration,
so every caller in the process must go through the same object (``headroom`` leaves room for the others).

A call occupies its window slot from the moment it starts until ``window`` seconds after it *finished*: the
server stamps the call somewhere in between, so counting it that long means the server can never see more
than the ceiling in any of its own windows, however long the calls take. The clock and sleep are injected so
tests and the benchmark do not wait on real time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol


class Limiter(Protocol):
    def slot(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class LimiterStats:
    ceiling: int
    max_concurrency: int
    in_flight: int
    in_window: int
    waits: int


class RateLimiter:
    def __init__(
        self,
        *,
        calls_per_window: int = 100,
        window: float = 20.0,
        headroom: float = 0.1,
        max_concurrency: int = 10,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_window < 1 or max_concurrency < 1 or window <= 0 or not 0.0 <= headroom < 1.0:
            raise ValueError("limiter needs calls_per_window >= 1, max_concurrency >= 1, window > 0, 0 <= headroom < 1")
        self.ceiling = max(1, math.floor(calls_per_window * (1.0 - headroom) + 1e-9))
        self.window = window
        self.max_concurrency = max_concurrency
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        # One stamp per call still counted: math.inf while in flight, its finish time afterwards.
        self._stamps: list[float] = []
        self._in_flight = 0
        self.waits = 0

    def __repr__(self) -> str:
        return f"RateLimiter(ceiling={self.ceiling}/{self.window:g}s, max_concurrency={self.max_concurrency})"

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one call's place; blocks (through the injected sleep) until the call may go."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

    def stats(self) -> LimiterStats:
        with self._cond:
            self._prune(self._clock())
            return LimiterStats(self.ceiling, self.max_concurrency, self._in_flight, len(self._stamps), self.waits)

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        self._stamps = [stamp for stamp in self._stamps if stamp > horizon]

    def _acquire(self) -> None:
        while True:
            with self._cond:
                while self._in_flight >= self.max_concurrency:
                    self._cond.wait()
                now = self._clock()
                self._prune(now)
                if len(self._stamps) < self.ceiling:
                    self._stamps.append(math.inf)
                    self._in_flight += 1
                    return
                finished = [stamp for stamp in self._stamps if stamp != math.inf]
                self.waits += 1
                if not finished:  # the window is full of calls still running: wait for one to end
                    self._cond.wait()
                    continue
                delay = min(finished) + self.window - now
            self._sleep(max(delay, 1e-3))

    def _release(self) -> None:
        with self._cond:
            # Turn one in-flight marker into this call's finish time (markers are interchangeable).
            self._stamps[self._stamps.index(math.inf)] = self._clock()
            self._in_flight -= 1
            self._cond.notify_all()
