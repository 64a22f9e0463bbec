"""Dataverse's service protection limits as one budget for the whole tenant (docs/budgets.md).

Dataverse counts, per user (the sync's application user) and per web server, over a sliding 5-minute window:
6,000 requests (``0x80072322``), 20 minutes of combined execution time (``0x80072321``) and 52 concurrent
requests (``0x80072326``), whatever number of Function App instances and timers send them. Every process draws
from one ledger in the state store (``shared/store/budget.py``, row ``dataverse``) with the generic rules of
:mod:`shared.budget.rules`: requests and concurrency are leased before a request goes; execution time is each
request's response time, told when its lease closes. ``live`` (the reconcile, webhooks, the catch-up feed) may use
the whole budget, ``backfill`` (Quick Sync, initial sync, resyncs, sweeps) what leaves ``live_reserve`` of it.

A 429 still waits its ``Retry-After`` (the session's backoff), and :meth:`BudgetGate.throttled` also pauses the
shared budget until it passes, so no other instance keeps sending into the throttle. While the store is down a
request goes by ``fallback``, a fixed per-process share.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.budget.lanes import LaneLimiter
from shared.budget.rules import Limits, Usage
from shared.dataverse.concurrency import ConcurrencyGate

LEDGER = "dataverse"  # the ledger row's name in the state store
REQUESTS_PER_5_MIN = 6000
SERVICE_CONCURRENCY = 52
EXECUTION_SECONDS_PER_5_MIN = 1200.0


@dataclass(frozen=True, slots=True)
class DataverseLimits(Limits):
    """Dataverse's figures: 6,000 requests, 1,200 s of execution time and 52 at once, per 5 minutes and user."""

    calls_per_window: int = REQUESTS_PER_5_MIN
    window: float = 300.0
    headroom: float = 0.0
    max_concurrency: int = SERVICE_CONCURRENCY
    execution_seconds: float = EXECUTION_SECONDS_PER_5_MIN
    use_seconds: float = 10.0
    call_timeout: float = 40.0  # the HTTP timeouts are 30 s


class BudgetGate(ConcurrencyGate):
    """The session's gate over one lane of the shared Dataverse budget: the process's own gate first (its
    configured cap and the ``x-ms-dop-hint``, shared by both lanes of the process; a backfill lane leaves ``keep``
    places of it to live requests), then a lease from the tenant's budget."""

    def __init__(
        self, lane: LaneLimiter, configured: int = 16, *, process: ConcurrencyGate | None = None, keep: int = 0
    ) -> None:
        super().__init__(configured)
        self.lane = lane
        self.process = process or ConcurrencyGate(configured)
        self.keep = max(0, keep)

    def __repr__(self) -> str:
        return f"BudgetGate({self.lane!r}, limit={self.limit}, keep={self.keep})"

    @property
    def configured(self) -> int:
        return self.process.configured

    @property
    def limit(self) -> int:
        return self.process.limit

    @property
    def in_flight(self) -> int:
        """The process's requests in flight now, both lanes."""
        return self.process.in_flight

    @property
    def peak(self) -> int:
        return self.process.peak

    def observe_hint(self, raw: str | None) -> None:
        self.process.observe_hint(raw)

    @contextmanager
    def slot(self, keep: int = 0) -> Iterator[None]:
        with self.process.slot(max(keep, self.keep)), self.lane.slot():
            yield

    def throttled(self, retry_after: float | None) -> None:
        self.lane.throttled(retry_after)

    def usage(self) -> Usage:
        """The tenant's figures (every instance's requests in the window), for the status view."""
        return self.lane.usage()
