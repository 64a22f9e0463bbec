"""The shared Marketo budget's ledger on both backends (SQLite and Table Storage on Azurite): holders racing on
the row's ETag from many threads never pass the ceiling, and together they fill it."""

from __future__ import annotations

import threading

from shared.marketo.budget import BudgetLimits, Lane
from shared.marketo.lanes import LaneLimiter
from shared.marketo.limiter import RateLimiter
from shared.store.base import StateStore
from shared.store.budget import StoreLedger
from tests.marketo.test_shared_budget import densest, most_at_once
from tests.marketo_harness import FakeClock

LIMITS = BudgetLimits(calls_per_window=40, headroom=0.0, max_concurrency=6, skew=0.0)


def test_holders_racing_on_the_ledger_row_never_pass_the_ceiling(store: StateStore) -> None:
    clock = FakeClock()
    ledger = StoreLedger(store, LIMITS)
    fallback = RateLimiter(clock=clock.time, sleep=clock.sleep)
    holders = [
        LaneLimiter(ledger, lane, fallback=fallback, clock=clock.time, sleep=clock.sleep)
        for lane in (Lane.LIVE, Lane.LIVE, Lane.BACKFILL)
    ]
    spans: list[tuple[float, float, Lane]] = []
    lock = threading.Lock()
    stop = clock.time() + 50.0

    def work(limiter: LaneLimiter) -> None:
        while clock.time() < stop:
            with limiter.slot():
                start = clock.time()
                clock.advance(0.01)
                end = clock.time()
            with lock:
                spans.append((start, end, limiter.lane))

    threads = [threading.Thread(target=work, args=(holders[n % 3],)) for n in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not any(h.fallbacks for h in holders)
    starts = [s for s, _, _ in spans]
    assert densest(starts, LIMITS.window) <= LIMITS.ceiling
    assert densest([e for _, e, _ in spans], LIMITS.window) <= LIMITS.ceiling
    assert densest(starts, LIMITS.window) >= 0.95 * LIMITS.ceiling
    assert most_at_once([(s, e) for s, e, _ in spans]) <= LIMITS.max_concurrency
    backfill = [s for s, _, lane in spans if lane is Lane.BACKFILL]
    assert densest(backfill, LIMITS.window) <= LIMITS.backfill_ceiling
