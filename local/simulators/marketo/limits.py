"""The instance-wide limits Marketo enforces: 100 calls per sliding 20 s, 10 concurrent calls, a daily quota.

The error-codes page: "An API call that returns this response code is not counted against your daily quota, or
your rate limit" (its note on response-level errors). So a call is charged when it is admitted and charged back
(:meth:`Limits.refund`) when its answer is an error envelope; calls refused with 606/607/615 were never charged.
Identity calls are not REST calls and never reach these limits.

The daily quota (default 50,000, "resets daily at 12:00AM CST") is booked per API user and per subscription day
in :class:`~local.simulators.marketo.usage.UsageLog`, which the stats endpoints read: what they report and what
607 enforces are one ledger. Accepted call times are kept so tests and the benchmark can ask what the densest
window held.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field

from local.simulators.marketo.usage import UsageLog

CENTRAL = "America/Chicago"


@dataclass
class LimitConfig:
    calls_per_window: int = 100
    window: float = 20.0
    max_concurrency: int = 10
    daily_quota: int = 50_000
    quota_timezone: str = CENTRAL  # an IANA zone: the subscription day starts at quota_reset_hour there
    quota_reset_hour: int = 0


@dataclass
class Limits:
    config: LimitConfig = field(default_factory=LimitConfig)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _window: deque[float] = field(default_factory=deque, repr=False)
    _in_flight: int = 0
    arrivals: list[float] = field(default_factory=list, repr=False)
    max_in_flight: int = 0
    usage: UsageLog = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.usage = UsageLog(lambda: self.config.quota_timezone, lambda: self.config.quota_reset_hour)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def enter(self) -> bool:
        """Count one more call in flight; False if that breaks the concurrency limit (caller answers 615)."""
        with self._lock:
            if self._in_flight >= self.config.max_concurrency:
                return False
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def admit(self, now: float, user: str = "") -> str | None:
        """Rate and quota check for one call at ``now`` by ``user``: None if admitted (and charged), else
        ``"606"`` or ``"607"``."""
        with self._lock:
            horizon = now - self.config.window
            while self._window and self._window[0] <= horizon:
                self._window.popleft()
            if len(self._window) >= self.config.calls_per_window:
                return "606"
            if self.usage.used(now) >= self.config.daily_quota:
                return "607"
            self.usage.book(now, user)
            self._window.append(now)
            bisect.insort(self.arrivals, now)
            return None

    def refund(self, stamp: float, user: str = "") -> None:
        """Charge back the call admitted at ``stamp``: its answer was an error, which Marketo does not count."""
        with self._lock:
            self.usage.unbook(stamp, user)
            if stamp in self._window:
                self._window.remove(stamp)
            index = bisect.bisect_left(self.arrivals, stamp)
            if index < len(self.arrivals) and self.arrivals[index] == stamp:
                del self.arrivals[index]

    def max_in_any_window(self, window: float | None = None) -> int:
        """The most accepted calls any sliding window of ``window`` seconds (default: the configured) held."""
        span = self.config.window if window is None else window
        with self._lock:
            times = list(self.arrivals)
        best = 0
        start = 0
        for end, stamp in enumerate(times):
            while times[start] <= stamp - span:
                start += 1
            best = max(best, end - start + 1)
        return best
