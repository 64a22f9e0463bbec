"""One simulated time for everything in a scenario, so hours of outage take milliseconds.

The product reads it as its clock (marks, circuits, the sweep, scheduled messages), the clients sleep on it
(retry backoff, Marketo's rate limiter: a sleep moves time on), the local broker paces locks and retries on it, and
both simulators stamp records, expire tokens and end faults on it. Nothing runs in another thread, so the same seed
makes the same run.
"""

from __future__ import annotations

from datetime import UTC, datetime


class SimClock:
    def __init__(self, start: datetime) -> None:
        self._t = start.timestamp()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def time(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        self._t += max(0.0, seconds)

    def advance_to(self, t: float) -> None:
        self._t = max(self._t, t)
