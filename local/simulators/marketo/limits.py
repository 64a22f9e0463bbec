"""The instance-wide limits Marketo enforces: 100 calls per sliding 20 s, 10 concurrent calls, a daily quota.

Calls refused with 606/615/607 are not counted, as Marketo documents for error answers. Accepted call times are
kept so tests and the benchmark can ask what the densest window held.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

CENTRAL = ZoneInfo("America/Chicago")


@dataclass
class LimitConfig:
    calls_per_window: int = 100
    window: float = 20.0
    max_concurrency: int = 10
    daily_quota: int = 50_000


@dataclass
class Limits:
    config: LimitConfig = field(default_factory=LimitConfig)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _window: deque[float] = field(default_factory=deque, repr=False)
    _in_flight: int = 0
    _day: str = ""
    _day_count: int = 0
    arrivals: list[float] = field(default_factory=list, repr=False)
    max_in_flight: int = 0

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

    def admit(self, now: float) -> str | None:
        """Rate and quota check for one call at ``now``: None if admitted, else ``"606"`` or ``"607"``."""
        with self._lock:
            horizon = now - self.config.window
            while self._window and self._window[0] <= horizon:
                self._window.popleft()
            if len(self._window) >= self.config.calls_per_window:
                return "606"
            day = datetime.fromtimestamp(now, UTC).astimezone(CENTRAL).date().isoformat()
            if day != self._day:
                self._day, self._day_count = day, 0
            if self._day_count >= self.config.daily_quota:
                return "607"
            self._day_count += 1
            self._window.append(now)
            bisect.insort(self.arrivals, now)
            return None

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
