"""The Marketo budget every instance shares through the state store (shared/marketo/budget.py, lanes.py and
shared/store/budget.py): the ceiling holds across holders, threads and processes; one holder alone reaches it;
live calls overtake a backfill; the daily reserve stops a backfill and not a live call."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from local.stack import LocalStack
from shared.budget.rules import USAGE_MAX_AGE_CEILING, Day, usage_max_age
from shared.errors import QuotaExhausted
from shared.marketo.budget import BudgetLimits, Close, Lane, LedgerState, Request, decide, settle
from shared.marketo.lanes import DAILY_RESERVE, LaneLimiter
from shared.marketo.limiter import RateLimiter
from shared.store.budget import StoreLedger
from shared.store.sqlite import SqliteRows
from tests.budget.callers import VirtualClock, calls_for, densest, hammer, in_processes, most_at_once
from tests.marketo_harness import FakeClock, marketo_harness

LIMITS = BudgetLimits(headroom=0.0, skew=0.0)  # 100 calls per 20 s, 10 concurrent, 30 % kept for live


def lane(ledger: StoreLedger, which: Lane, clock: FakeClock, **options: object) -> LaneLimiter:
    fallback = RateLimiter(clock=clock.time, sleep=clock.sleep)
    return LaneLimiter(ledger, which, fallback=fallback, clock=clock.time, sleep=clock.sleep, **options)  # type: ignore[arg-type]


# --- the rules, as values ---------------------------------------------------------------------------------------


def test_live_may_take_the_whole_window_and_backfill_only_what_leaves_the_live_share() -> None:
    now = 1_000.0
    state, answer = decide(LedgerState(), Request("a", Lane.BACKFILL, 10, "g1"), now, LIMITS)
    assert answer.granted == 7  # 30 % of the 10 concurrent calls stay free for live calls
    state, answer = decide(state, Request("a", Lane.BACKFILL, 10, "g2"), now, LIMITS)
    assert (answer.granted, answer.reason) == (0, "concurrency")
    state, answer = decide(state, Request("b", Lane.LIVE, 10, "g3"), now, LIMITS)
    assert answer.granted == 3  # live is never behind the backfill's share
    state, _ = decide(state, Request("a", Lane.BACKFILL, 0, closes=(Close("g1", (now + 1,) * 7),)), now + 1, LIMITS)
    state, _ = decide(state, Request("b", Lane.LIVE, 0, closes=(Close("g3", (now + 1,) * 3),)), now + 1, LIMITS)
    granted = 0
    for n in range(20):
        state, answer = decide(state, Request("a", Lane.BACKFILL, 7, f"b{n}"), now + 2, LIMITS)
        state, _ = decide(state, Request("a", Lane.BACKFILL, 0, closes=(Close(f"b{n}", (now + 2,) * answer.granted),)),
                          now + 2, LIMITS)  # fmt: skip
        granted += answer.granted
    assert granted == 70 - 7  # the backfill's share of the window is 70 calls, 7 already used
    for n in range(20):
        state, answer = decide(state, Request("b", Lane.LIVE, 10, f"l{n}"), now + 2, LIMITS)
        state, _ = decide(state, Request("b", Lane.LIVE, 0, closes=(Close(f"l{n}", (now + 2,) * answer.granted),)),
                          now + 2, LIMITS)  # fmt: skip
        granted += answer.granted
    assert granted == 100 - 10  # live took the rest of the window, never more
    _, answer = decide(state, Request("b", Lane.LIVE, 1, "x"), now + 2, LIMITS)
    assert answer.reason == "window"
    assert answer.retry_after == pytest.approx(19.0)
    _, answer = decide(state, Request("b", Lane.LIVE, 1, "x"), now + 21.5, LIMITS)
    assert answer.granted == 1


def test_a_crashed_holders_grant_expires_and_a_closed_one_counts_until_a_window_after_its_last_call() -> None:
    state, _ = decide(LedgerState(), Request("dead", Lane.LIVE, 10, "g"), 0.0, LIMITS)
    assert decide(state, Request("b", Lane.LIVE, 1, "x"), 1.0, LIMITS)[1].reason == "concurrency"
    later = settle(state, LIMITS.hold, LIMITS)  # past its hold: closed as if every call ran to the end
    assert later.grants == ()
    assert [(s.end, s.calls) for s in later.spent] == [(LIMITS.hold, 10)]
    assert decide(state, Request("b", Lane.LIVE, 1, "x"), LIMITS.hold, LIMITS)[1].granted == 1
    gone = settle(state, LIMITS.hold + LIMITS.window + 0.01, LIMITS)
    assert (gone.grants, gone.spent) == ((), ())


def test_a_grant_stamped_in_the_future_is_dropped() -> None:
    state, _ = decide(LedgerState(), Request("a", Lane.LIVE, 10, "g"), 10_000.0, LIMITS)
    assert settle(state, 100.0, LIMITS).grants == ()  # the clock went back (a host restarted on another clock)


# --- one store, many holders and threads ---------------------------------------------------------------------------


def test_threads_of_many_holders_never_pass_the_ceiling_and_fill_it(tmp_path: Path) -> None:
    clock = VirtualClock()
    path = tmp_path / "state.sqlite3"
    holders = [lane(StoreLedger(SqliteRows(path), LIMITS), Lane.LIVE, clock) for _ in range(3)]  # ETag races
    spans = [(start, end) for start, end, _ in hammer(holders, clock, threads=12, seconds=70.0, join_timeout=60)]
    for stamps in ([s for s, _ in spans], [e for _, e in spans]):
        assert densest(stamps, LIMITS.window) <= LIMITS.ceiling
    assert densest([s for s, _ in spans], LIMITS.window) >= 0.95 * LIMITS.ceiling
    assert most_at_once(spans) <= LIMITS.max_concurrency
    grants = sum(h.grants for h in holders)
    assert grants < len(spans)  # chunks: fewer grants than calls
    assert not any(h.fallbacks for h in holders)


def _worker(path: str, window: float, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limits = BudgetLimits(calls_per_window=40, window=window, headroom=0.0, skew=0.0, use_seconds=0.5,
                          call_timeout=1.0)  # fmt: skip
    limiter = LaneLimiter(StoreLedger(SqliteRows(path), limits), Lane.LIVE, fallback=RateLimiter())
    out.put((calls_for(limiter, seconds), limiter.fallbacks))


def _run_processes(path: Path, k: int, window: float, seconds: float) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    for got, fallbacks in in_processes(_worker, (str(path), window, seconds), k):
        assert fallbacks == 0
        spans += got
    return spans


@pytest.mark.parametrize("k", [1, 3])
def test_processes_sharing_one_sqlite_store_never_pass_the_ceiling_and_one_alone_reaches_it(
    tmp_path: Path, k: int
) -> None:
    window = 1.0  # 40 calls per second: time scaled down, every call through the real store and processes
    spans = _run_processes(tmp_path / "state.sqlite3", k, window, seconds=3.0)
    starts = [s for s, _ in spans]
    assert densest(starts, window) <= 40
    assert densest([e for _, e in spans], window) <= 40
    assert most_at_once(spans) <= 10
    assert densest(starts, window) >= 38  # >= 95 % of the ceiling, one process alone or several


# --- lanes -----------------------------------------------------------------------------------------------------


def test_a_live_call_overtakes_a_running_backfill(tmp_path: Path) -> None:
    clock = FakeClock()
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), LIMITS)
    backfill, live = lane(ledger, Lane.BACKFILL, clock), lane(ledger, Lane.LIVE, clock)
    for _ in range(70):  # the backfill spends its share of the window
        with backfill.slot():
            pass
    start = clock.time()
    waiting = threading.Event()
    done = threading.Event()
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:  # the backfill's wait: hold it until the live call went
        waiting.set()
        assert done.wait(10)
        real_sleep(seconds)

    backfill._sleep = sleep
    behind = threading.Thread(target=lambda: backfill.slot().__enter__())
    behind.start()
    assert waiting.wait(10)  # the backfill is waiting for its share of the window to free up ...
    with live.slot():  # ... and a live call goes at once, without waiting on it
        assert clock.time() == start
    done.set()
    behind.join(10)
    assert clock.time() >= start + LIMITS.window  # the backfill went only once its calls left the window


def test_the_daily_reserve_stops_a_backfill_and_not_a_live_call() -> None:
    with marketo_harness("mock") as h:
        ledger = StoreLedger(SqliteRows(":memory:"), BudgetLimits(daily_quota=50_000, daily_reserve=0.1))
        live = h.client.with_limiter(lane(ledger, Lane.LIVE, h.clock))
        backfill_lane = lane(ledger, Lane.BACKFILL, h.clock, usage_reader=live.usage_today)
        backfill = h.client.with_limiter(backfill_lane)
        backfill.describe_leads()  # plenty left: the backfill goes (and read Marketo's usage once)
        h.sim.set_quota_used(45_500)  # other integrations spent the day: only the reserve is left
        h.clock.advance(301.0)  # far from the reserve at the last reading: not worth a call yet ...
        backfill.describe_leads()
        assert h.sim.call_counts().get("GET /rest/v1/stats/usage.json") == 1
        h.clock.advance(3300.0)  # ... until the hour is up (a day's 45,000 calls take 2.5 hours at the rate limit)
        with pytest.raises(QuotaExhausted) as stopped:
            backfill.describe_leads()
        assert stopped.value.code == DAILY_RESERVE
        assert stopped.value.resets_at is not None
        live.describe_leads()  # live changes still go
        assert ledger.usage(h.clock.time()).daily_estimate >= 45_500
        assert h.sim.call_counts().get("GET /rest/v1/stats/usage.json") == 2


def test_usage_is_read_more_often_as_the_day_nears_the_reserve() -> None:
    limits = BudgetLimits(daily_quota=50_000, daily_reserve=0.1)  # the backfill's share: 45,000
    assert usage_max_age(Day("2026-12-01", counted=0), 300.0, limits) == USAGE_MAX_AGE_CEILING
    assert usage_max_age(Day("2026-12-01", counted=42_000), 300.0, limits) == 600.0  # 3,000 left at 5 calls/s
    assert usage_max_age(Day("2026-12-01", counted=44_900), 300.0, limits) == 300.0
    assert usage_max_age(Day("2026-12-01", counted=0), 300.0, BudgetLimits(daily_quota=0)) == 300.0  # no daily quota


# --- the composition root -----------------------------------------------------------------------------------------


def test_the_reconcile_gets_the_live_lane_and_the_job_runner_the_backfill_lane(stack: LocalStack) -> None:
    svc = stack.services
    live, backfill = svc.marketo.limiter, svc.backfill.limiter
    assert isinstance(live, LaneLimiter)
    assert isinstance(backfill, LaneLimiter)
    assert (live.lane, backfill.lane) == (Lane.LIVE, Lane.BACKFILL)
    assert live.ledger is backfill.ledger, "one budget, in the store every instance shares"
    assert svc.marketo.auth is svc.backfill.auth, "one connection and token"
    svc.backfill.describe_leads()
    svc.marketo.describe_leads()
    assert live.ledger.usage(time.time()).in_window >= 2  # both lanes' calls counted in the one ledger
