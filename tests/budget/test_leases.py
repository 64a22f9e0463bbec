"""Leases of the generic shared budget (shared/budget/lanes.py): a holder takes more calls than it runs at once
while the window has room, hands them from thread to thread without the store, and gives back what it did not
use; an idle lease is closed at once, or after ``linger`` for a process that calls one at a time."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path

from shared.budget.lanes import LaneLimiter
from shared.budget.rules import Answer, Lane, Request
from shared.marketo.budget import BudgetLimits
from shared.marketo.limiter import RateLimiter
from shared.store.budget import StoreLedger
from shared.store.sqlite import SqliteRows
from tests.budget.callers import VirtualClock, densest, hammer, most_at_once
from tests.marketo_harness import FakeClock

LIMITS = BudgetLimits(headroom=0.0, skew=0.0)  # Marketo's 100 calls per 20 s, 10 at once


def _holders(path: Path, clock: VirtualClock, max_lease: int) -> list[LaneLimiter]:
    fallback = RateLimiter(clock=clock.time, sleep=clock.sleep)
    return [
        LaneLimiter(
            StoreLedger(SqliteRows(path), LIMITS),
            lane,
            fallback=fallback,
            clock=clock.time,
            sleep=clock.sleep,
            max_lease=max_lease,
        )
        for lane in (Lane.LIVE, Lane.LIVE, Lane.BACKFILL)
    ]


def _run(path: Path, max_lease: int) -> tuple[list[tuple[float, float, Lane]], int]:
    clock = VirtualClock()
    holders = _holders(path, clock, max_lease)
    spans = hammer(holders, clock, threads=12, seconds=70.0, join_timeout=60)
    assert not any(h.fallbacks for h in holders)
    return spans, sum(h.grants for h in holders)


def test_leases_with_extra_calls_never_pass_the_limits_and_fill_the_window(tmp_path: Path) -> None:
    spans, grants = _run(tmp_path / "leases.sqlite3", max_lease=20)
    starts = [s for s, _, _ in spans]
    for stamps in (starts, [e for _, e, _ in spans]):
        assert densest(stamps, LIMITS.window) <= LIMITS.ceiling
    assert densest(starts, LIMITS.window) >= 0.95 * LIMITS.ceiling
    assert most_at_once([(s, e) for s, e, _ in spans]) <= LIMITS.max_concurrency
    assert densest([s for s, _, lane in spans if lane is Lane.BACKFILL], LIMITS.window) <= LIMITS.backfill_ceiling
    assert grants < len(spans)


def test_with_room_in_the_window_a_lease_serves_several_times_the_calls_per_grant_of_a_chunk(tmp_path: Path) -> None:
    roomy = BudgetLimits(calls_per_window=100_000, headroom=0.0, skew=0.0)  # only the 10 at once bind

    def calls_per_grant(name: str, max_lease: int) -> float:
        clock = VirtualClock()
        ledger = StoreLedger(SqliteRows(tmp_path / name), roomy)
        fallback = RateLimiter(clock=clock.time, sleep=clock.sleep)
        holder = LaneLimiter(
            ledger, Lane.LIVE, fallback=fallback, clock=clock.time, sleep=clock.sleep, max_lease=max_lease
        )
        spans = hammer([holder], clock, threads=10, seconds=2.0, join_timeout=60)
        assert holder.fallbacks == 0
        return len(spans) / holder.grants

    chunked = calls_per_grant("chunks.sqlite3", max_lease=5)
    assert chunked <= 5  # a chunk is at most max_chunk calls
    assert calls_per_grant("leases.sqlite3", max_lease=20) >= 2 * chunked  # measured: 13-20 against 4.3-5


def test_an_idle_lease_is_closed_at_once_and_its_unused_calls_given_back(tmp_path: Path) -> None:
    clock = FakeClock()
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), LIMITS)
    limiter = LaneLimiter(ledger, Lane.LIVE, fallback=RateLimiter(), clock=clock.time, sleep=clock.sleep, max_lease=20)
    with limiter.slot():
        assert ledger.usage(clock.time()).in_window > 1  # a lease of more than the one call
    after = ledger.usage(clock.time())
    assert (after.in_window, after.in_flight) == (1, 0)  # nobody waits: closed, 1 call used, the rest back


def test_a_lingering_lease_serves_the_next_call_without_the_store_and_closes_once_idle(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), LIMITS)
    idle = [0.0]
    limiter = LaneLimiter(  # linger: an hour of its own idle clock, so never by the timer here
        ledger, Lane.LIVE, fallback=RateLimiter(), clock=clock.time, sleep=clock.sleep, max_lease=20, linger=3600.0,
        idle_clock=lambda: idle[0],
    )  # fmt: skip
    with limiter.slot():
        pass
    requests = ledger.requests
    with limiter.slot():  # the same lease: no store request
        pass
    assert ledger.requests == requests
    assert ledger.usage(clock.time()).in_flight == 1  # still held (one at a time: c = 1)
    idle[0] += 3600.0
    limiter._close_idle()  # what the timer runs once ``linger`` passed without a call
    after = ledger.usage(clock.time())
    assert (after.in_window, after.in_flight) == (2, 0)


def test_a_finished_lease_is_closed_with_the_next_store_request_its_process_makes_anyway(tmp_path: Path) -> None:
    clock = FakeClock()
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), LIMITS)
    limiter = LaneLimiter(ledger, Lane.LIVE, fallback=RateLimiter(), clock=clock.time, sleep=clock.sleep, max_chunk=1)
    with ExitStack() as first:
        first.enter_context(limiter.slot())  # a lease of one call
        with limiter.slot():  # a second lease, drawn while the first runs
            requests = ledger.requests
            first.close()  # the first lease is spent: its close waits for the second's
            assert ledger.requests == requests
            assert ledger.usage(clock.time()).in_flight == 2
            requests = ledger.requests
    assert ledger.requests == requests + 2  # both closed in one read and one write
    after = ledger.usage(clock.time())
    assert (after.in_window, after.in_flight) == (2, 0)


def test_calls_that_end_while_the_taker_waits_for_a_full_window_are_closed_by_its_next_draw(tmp_path: Path) -> None:
    clock = FakeClock()
    limits = BudgetLimits(calls_per_window=2, headroom=0.0, skew=0.0)
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), limits)
    running = ExitStack()
    quiet: list[bool] = []

    def sleep(seconds: float) -> None:  # the other calls end while the taker sleeps
        requests = ledger.requests
        running.close()
        quiet.append(ledger.requests == requests)
        clock.sleep(seconds)

    limiter = LaneLimiter(ledger, Lane.LIVE, fallback=RateLimiter(), clock=clock.time, sleep=sleep, max_chunk=1)
    running.enter_context(limiter.slot())
    running.enter_context(limiter.slot())  # the window's two calls
    with limiter.slot():  # refused for the window, then granted once the two left it
        usage = ledger.usage(clock.time())
    assert quiet[0]  # the two calls' ends wrote nothing themselves
    assert (usage.in_flight, usage.in_window) == (1, 1)  # closed by the draws: the two left the window


def test_a_grant_that_arrives_after_its_use_seconds_is_given_back_and_drawn_again(tmp_path: Path) -> None:
    clock = FakeClock()
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), LIMITS)
    slow = [True]

    class SlowStore:  # the first round trip outlasts the time a grant's calls have to start in
        limits = LIMITS

        def draw(self, request: Request, now: float) -> Answer:
            answer = ledger.draw(request, now)
            if slow[0] and answer.granted:
                slow[0] = False
                clock.advance(LIMITS.use_seconds + 1.0)
            return answer

    used: list[bool] = []
    limiter = LaneLimiter(SlowStore(), Lane.LIVE, fallback=RateLimiter(), clock=clock.time, sleep=clock.sleep)  # type: ignore[arg-type]
    with limiter.slot():
        used += [clock.time() < lease.use_by for lease in limiter._leases if lease.running]
        during = ledger.usage(clock.time())
    assert used == [True]  # the call started within its grant's use_seconds
    assert limiter.draws == 3  # the late grant, the one used, and that one's close
    assert during.in_flight == 1  # the late grant was closed with the second draw, every call given back
    after = ledger.usage(clock.time())
    assert (after.in_window, after.in_flight) == (1, 0)


def test_one_closer_thread_serves_a_lingering_lease_and_ends_once_nothing_is_due(tmp_path: Path) -> None:
    clock = FakeClock()
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), LIMITS)
    limiter = LaneLimiter(
        ledger, Lane.LIVE, fallback=RateLimiter(), clock=clock.time, sleep=clock.sleep, max_lease=20, linger=0.05
    )
    before = threading.active_count()
    for _ in range(30):  # one call at a time: each leaves the lease lingering
        with limiter.slot():
            pass
    assert threading.active_count() <= before + 1  # one closer, not a timer thread per call
    deadline = time.monotonic() + 10.0  # real time: the closer waits on it (``linger``), not on the fake clock
    while (limiter._closer is not None or ledger.usage(clock.time()).in_flight) and time.monotonic() < deadline:
        time.sleep(0.01)
    after = ledger.usage(clock.time())
    assert (after.in_window, after.in_flight) == (30, 0)  # closed by the closer, the unused calls given back
    assert limiter._closer is None  # and the closer ended: nothing was due any more
