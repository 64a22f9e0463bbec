"""Service protection limits, per user, as "Service protection API limits" (Power Apps docs, ``api-limits.md``) sets
them: 6000 requests in a sliding 5-minute window (0x80072322), 20 minutes of combined execution time in it
(0x80072321, each request's time from admission to answer on the simulator's clock), 52 concurrent requests
(0x80072326), answered with 429 and ``Retry-After`` in seconds; every response reports what is left in
``x-ms-ratelimit-burst-remaining-xrm-requests`` / ``x-ms-ratelimit-time-remaining-xrm-requests`` and suggests a
degree of parallelism in ``x-ms-dop-hint``. Time comes from the injected clock, so tests never sleep.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from local.simulators.dataverse.errors import ApiError

WINDOW_SECONDS = 300.0
EXECUTION_TIME_LIMIT_MS = 1_200_000


@dataclass
class ServiceProtection:
    clock: Callable[[], float]
    request_limit: int = 6000
    concurrency_limit: int = 52
    dop_hint: int | None = 8
    throttle_retry_after: float = 2.0
    execution_limit_ms: float = EXECUTION_TIME_LIMIT_MS
    peak_in_flight: int = 0
    _windows: dict[str, deque[float]] = field(default_factory=dict)
    _executions: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)  # (finished, seconds)
    _in_flight: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _executed(self, user_id: str, now: float) -> float:
        """Seconds the user's requests took in the window (lock held)."""
        done = self._executions.setdefault(user_id, deque())
        while done and done[0][0] <= now - WINDOW_SECONDS:
            done.popleft()
        return sum(seconds for _, seconds in done)

    def admit(self, user_id: str) -> float:
        """Count the request in (returns its admission time, for :meth:`release`), or raise the 429 Dataverse
        would answer."""
        now = self.clock()
        with self._lock:
            window = self._windows.setdefault(user_id, deque())
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            if self._executed(user_id, now) * 1000.0 >= self.execution_limit_ms:
                oldest = self._executions[user_id][0][0]
                wait = max(1, math.ceil(oldest + WINDOW_SECONDS - now))
                raise ApiError(
                    429,
                    "0x80072321",
                    "Combined execution time of incoming requests exceeded limit of "
                    f"{self.execution_limit_ms:.0f} milliseconds over time window of 300 seconds.",
                    {"Retry-After": str(wait)},
                )
            if len(window) >= self.request_limit:
                wait = max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
                raise ApiError(
                    429,
                    "0x80072322",
                    f"Number of requests exceeded the limit of {self.request_limit} over time window of 300 seconds.",
                    {"Retry-After": str(wait)},
                )
            if self._in_flight[user_id] >= self.concurrency_limit:
                raise ApiError(
                    429,
                    "0x80072326",
                    f"Number of concurrent requests exceeded the limit of {self.concurrency_limit}.",
                    {"Retry-After": str(int(self.throttle_retry_after))},
                )
            window.append(now)
            self._in_flight[user_id] += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight[user_id])
            return now

    def release(self, user_id: str, admitted: float | None = None) -> None:
        now = self.clock()
        with self._lock:
            self._in_flight[user_id] -= 1
            if admitted is not None:
                self._executions.setdefault(user_id, deque()).append((now, max(0.0, now - admitted)))

    def headers(self, user_id: str) -> dict[str, str]:
        with self._lock:
            used = len(self._windows.get(user_id, ()))
            executed_ms = self._executed(user_id, self.clock()) * 1000.0
        headers = {
            "x-ms-ratelimit-burst-remaining-xrm-requests": str(max(0, self.request_limit - used)),
            "x-ms-ratelimit-time-remaining-xrm-requests": f"{max(0.0, self.execution_limit_ms - executed_ms):.2f}",
            "x-ms-service-request-id": str(uuid.uuid4()),
        }
        if self.dop_hint is not None:
            headers["x-ms-dop-hint"] = str(self.dop_hint)
        return headers
