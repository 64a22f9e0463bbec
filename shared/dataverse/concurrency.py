"""A concurrency gate shared by every thread using one Dataverse client.

Dataverse allows 52 concurrent requests per user per web server and suggests a degree of parallelism in the
``x-ms-dop-hint`` header; the gate keeps in-flight requests under min(configured, hint, 52) and follows the hint
as it changes. Across processes the shared budget (:class:`shared.dataverse.budget.BudgetGate`) adds the tenant's
own limits on top of this gate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

SERVICE_MAX_CONCURRENCY = 52


class ConcurrencyGate:
    def __init__(self, configured: int = 16) -> None:
        if configured < 1:
            raise ValueError("configured concurrency must be at least 1")
        self._configured = min(configured, SERVICE_MAX_CONCURRENCY)
        self._hint: int | None = None
        self._in_flight = 0
        self._peak = 0
        self._condition = threading.Condition()

    @property
    def configured(self) -> int:
        return self._configured

    @property
    def limit(self) -> int:
        hint = self._hint if self._hint is not None else SERVICE_MAX_CONCURRENCY
        return max(1, min(self._configured, hint, SERVICE_MAX_CONCURRENCY))

    @property
    def in_flight(self) -> int:
        """Requests in flight now (for the status view)."""
        return self._in_flight

    @property
    def peak(self) -> int:
        """The most requests ever in flight at once (for tests and diagnostics)."""
        return self._peak

    def observe_hint(self, raw: str | None) -> None:
        if raw is None:
            return
        try:
            hint = int(raw)
        except ValueError:
            return
        if hint >= 1:
            with self._condition:
                self._hint = hint
                self._condition.notify_all()

    def throttled(self, retry_after: float | None) -> None:
        """Dataverse answered 429: the session's backoff waits ``retry_after``; a gate over the shared budget
        (``shared/dataverse/budget.py``) also pauses every other instance until it passes."""

    @contextmanager
    def slot(self, keep: int = 0) -> Iterator[None]:
        """One request's place. ``keep``: places this request leaves free for others (a backfill's: the live
        reserve), so it waits while fewer than ``keep`` + 1 are free; never below one place of its own."""
        with self._condition:
            while self._in_flight >= max(1, self.limit - keep):
                self._condition.wait()
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            yield
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify_all()  # waiters keep different reserves: the one woken may not fit
