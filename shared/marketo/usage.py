"""Marketo's daily API usage as its Usage endpoint reports it (``GET /rest/v1/stats/usage.json``), read at most once
per ``max_age`` seconds per process.

The endpoint answers ``result: [{date, total, users: [{userId, count}]}]`` for the current subscription day (it
counts every integration's calls, not only this app's). The read is itself a charged REST call, so the status view
goes through :class:`UsageCache`: a status call costs at most one Marketo call per minute, and a failed read is
remembered as long (an outage does not turn every status call into a Marketo call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import SyncError

USAGE_PATH = "/rest/v1/stats/usage.json"


@dataclass(frozen=True, slots=True)
class DailyUsage:
    date: str | None  # the subscription day, as Marketo names it
    total: int  # calls booked to the day, by every API user


def daily_usage(payload: dict[str, Any]) -> DailyUsage:
    """The first (today's) entry of the endpoint's ``result``; none: nothing booked yet."""
    result = payload.get("result") or []
    first = result[0] if result and isinstance(result[0], dict) else {}
    date = first.get("date")
    return DailyUsage(str(date) if date else None, int(first.get("total") or 0))


@dataclass(frozen=True, slots=True)
class UsageReading:
    usage: DailyUsage | None
    read_at: float  # on the cache's clock
    error: str | None = None  # why the last read failed (no secret: the typed error's message)


class UsageCache:
    """The last reading of ``read``, fresh for ``max_age`` seconds of ``clock``; thread-safe, one read at a time."""

    def __init__(self, read: Callable[[], DailyUsage], clock: Callable[[], float], max_age: float = 60.0) -> None:
        self._read = read
        self._clock = clock
        self.max_age = max_age
        self._last: UsageReading | None = None
        self._lock = threading.Lock()
        self.reads = 0

    def get(self) -> UsageReading:
        with self._lock:
            now = self._clock()
            last = self._last
            if last is not None and 0 <= now - last.read_at < self.max_age:
                return last
            self.reads += 1
            try:
                reading = UsageReading(self._read(), now)
            except SyncError as exc:
                reading = UsageReading(last.usage if last else None, now, str(exc))
            self._last = reading
            return reading
