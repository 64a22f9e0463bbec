"""The daily quota's ledger and Marketo's Usage endpoints that report it (``/rest/v1/stats/...``).

Marketo books API calls per subscription day, which starts at 12:00 AM US Central ("resets daily at 12:00AM
CST": the REST API page and error 607 on the error-codes page; Adobe's KB ka-29461 says midnight Central time,
so daylight saving follows ``America/Chicago``). The zone and the hour are configurable (``LimitConfig``).

The Usage page (``help/rest-api/usage.md``) documents four endpoints, each answering ``result`` with one object
per day: ``{date, total, users: [{userId, count}]}`` for usage and ``{date, total, errors: [{errorCode, count}]}``
for errors. The page says nothing of order or of days without calls: here ``last7days`` lists the seven days that
end today, newest first, each present even when empty, and ``users``/``errors`` are sorted by count, largest first.

What is booked: usage counts the calls charged to the quota (see ``limits.py``); errors count every response-level
error code a REST call was answered with (601/602 included, gateway pages such as 502 are not Marketo error codes).
The stats endpoints themselves are REST calls like any other: no page exempts them, so they are charged too.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from local.simulators.marketo import envelope
from local.simulators.marketo.wire import Call

Route = tuple[str, str, Callable[[Call], httpx.Response]]
KEEP_DAYS = 8  # today and the seven before it: all that last7days can ask for


class UsageLog:
    """Calls and errors per subscription day, thread-safe. ``zone``/``reset_hour`` are read on every call, so
    a changed configuration applies at once."""

    def __init__(self, zone: Callable[[], str], reset_hour: Callable[[], int]) -> None:
        self._zone = zone
        self._reset_hour = reset_hour
        self._lock = threading.Lock()
        self._calls: dict[date, Counter[str]] = {}
        self._errors: dict[date, Counter[str]] = {}

    def day(self, now: float) -> date:
        """The subscription day ``now`` falls in (it starts at ``reset_hour`` in ``zone``)."""
        local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(self._zone()))
        return (local - timedelta(hours=self._reset_hour())).date()

    def resets_at(self, now: float) -> float:
        """When the day that holds ``now`` ends: the next reset, as epoch seconds."""
        start = datetime.combine(self.day(now) + timedelta(days=1), time(self._reset_hour()), ZoneInfo(self._zone()))
        return start.timestamp()

    def used(self, now: float) -> int:
        with self._lock:
            return sum(self._calls.get(self.day(now), Counter()).values())

    def book(self, now: float, user: str) -> None:
        with self._lock:
            day = self.day(now)
            self._calls.setdefault(day, Counter())[user] += 1
            self._trim(day)

    def unbook(self, stamp: float, user: str) -> None:
        """Take back a call booked at ``stamp`` (its answer was an error: not charged)."""
        with self._lock:
            counts = self._calls.get(self.day(stamp))
            if counts is not None and counts[user] > 0:
                counts[user] -= 1
                if counts[user] == 0:
                    del counts[user]

    def set_used(self, now: float, user: str, count: int) -> None:
        """Today's usage becomes ``count`` calls, all booked to ``user`` (the simulator's control surface)."""
        with self._lock:
            day = self.day(now)
            self._calls[day] = Counter({user: count}) if count else Counter()
            self._trim(day)

    def error(self, now: float, code: str) -> None:
        with self._lock:
            day = self.day(now)
            self._errors.setdefault(day, Counter())[code] += 1
            self._trim(day)

    def usage(self, now: float, days: int = 1) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"date": day.isoformat(), "total": sum(counts.values()), "users": _ranked(counts, "userId")}
                for day, counts in self._days(self._calls, now, days)
            ]

    def errors(self, now: float, days: int = 1) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"date": day.isoformat(), "total": sum(counts.values()), "errors": _ranked(counts, "errorCode")}
                for day, counts in self._days(self._errors, now, days)
            ]

    def _days(self, book: dict[date, Counter[str]], now: float, days: int) -> list[tuple[date, Counter[str]]]:
        today = self.day(now)
        return [
            (today - timedelta(days=back), book.get(today - timedelta(days=back), Counter())) for back in range(days)
        ]

    def _trim(self, today: date) -> None:
        oldest = today - timedelta(days=KEEP_DAYS - 1)
        for book in (self._calls, self._errors):
            for day in [day for day in book if day < oldest]:
                del book[day]


def _ranked(counts: Counter[str], key: str) -> list[dict[str, Any]]:
    return [{key: name, "count": count} for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


class StatsApi:
    """The four Usage endpoints (no parameters; any authenticated API user may call them)."""

    def __init__(self, log: UsageLog, *, clock: Callable[[], float]) -> None:
        self.log = log
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            ("GET", "/rest/v1/stats/usage.json", lambda call: self._answer(call, self.log.usage, 1)),
            ("GET", "/rest/v1/stats/usage/last7days.json", lambda call: self._answer(call, self.log.usage, 7)),
            ("GET", "/rest/v1/stats/errors.json", lambda call: self._answer(call, self.log.errors, 1)),
            ("GET", "/rest/v1/stats/errors/last7days.json", lambda call: self._answer(call, self.log.errors, 7)),
        ]

    def _answer(self, call: Call, report: Callable[[float, int], list[dict[str, Any]]], days: int) -> httpx.Response:
        return envelope.ok(call.request_id, report(self._clock(), days))
