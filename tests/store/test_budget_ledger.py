"""The shared Marketo budget's ledger on both backends (SQLite and Table Storage on Azurite): holders racing on
the row's ETag from many threads never pass the ceiling, and together they fill it."""

from __future__ import annotations

from shared.marketo.budget import BudgetLimits, Lane
from shared.marketo.lanes import LaneLimiter
from shared.marketo.limiter import RateLimiter
from shared.store.base import StateStore
from shared.store.budget import StoreLedger
from tests.budget.callers import VirtualClock, densest, hammer, most_at_once

LIMITS = BudgetLimits(calls_per_window=40, headroom=0.0, max_concurrency=6, skew=0.0)


def test_holders_racing_on_the_ledger_row_never_pass_the_ceiling(store: StateStore) -> None:
    clock = VirtualClock()
    ledger = StoreLedger(store, LIMITS)
    fallback = RateLimiter(clock=clock.time, sleep=clock.sleep)
    holders = [
        LaneLimiter(ledger, lane, fallback=fallback, clock=clock.time, sleep=clock.sleep)
        for lane in (Lane.LIVE, Lane.LIVE, Lane.BACKFILL)
    ]
    spans = hammer(holders, clock, threads=9, seconds=50.0, join_timeout=120)
    assert not any(h.fallbacks for h in holders)
    starts = [s for s, _, _ in spans]
    assert densest(starts, LIMITS.window) <= LIMITS.ceiling
    assert densest([e for _, e, _ in spans], LIMITS.window) <= LIMITS.ceiling
    assert densest(starts, LIMITS.window) >= 0.95 * LIMITS.ceiling
    assert most_at_once([(s, e) for s, e, _ in spans]) <= LIMITS.max_concurrency
    backfill = [s for s, _, lane in spans if lane is Lane.BACKFILL]
    assert densest(backfill, LIMITS.window) <= LIMITS.backfill_ceiling
