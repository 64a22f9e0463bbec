"""Dataverse's service protection limits as one budget every instance shares through the state store
(shared/dataverse/budget.py over shared/budget/*): the simulator, which enforces the real limits with 429s, never
throttles a client drawing from it; one holder alone fills the window; a 429's Retry-After pauses every holder;
the backfill lane leaves the live share; execution time counts; a store outage falls back to the local share."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.simulators.dataverse.errors import ApiError
from local.simulators.dataverse.limits import ServiceProtection
from local.stack import LocalStack
from shared.budget.lanes import STORE_RETRY_SECONDS, LaneLimiter
from shared.budget.rules import Close, Lane, LedgerState, Request, decide
from shared.dataverse.budget import BudgetGate, DataverseLimits
from shared.dataverse.client import DataverseClient
from shared.errors import RetryLater
from shared.marketo.limiter import RateLimiter
from shared.store.budget import StoreLedger
from shared.store.sqlite import SqliteRows
from tests.budget.callers import calls_for, densest, in_processes, most_at_once
from tests.dataverse.conftest import Env

SMALL = DataverseLimits(calls_per_window=60, max_concurrency=3, skew=0.0)  # the 5-minute window, scaled-down counts


def _client(env: Env, ledger: StoreLedger, lane: Lane = Lane.LIVE, **options: Any) -> DataverseClient:
    limiter = LaneLimiter(
        ledger, lane, fallback=RateLimiter(clock=env.clock, sleep=env.clock.sleep), clock=env.clock,
        sleep=env.clock.sleep, max_chunk=3, max_lease=20, linger=1.0, service="Dataverse", **options,
    )  # fmt: skip
    return env.new_client(gate=BudgetGate(limiter, configured=16))


def _limited(env: Env, requests: int = 60, concurrency: int = 3) -> None:
    env.sim.request_limit = requests
    env.sim.concurrency_limit = concurrency


# --- the rules, as values ---------------------------------------------------------------------------------------


def test_a_lease_takes_extra_calls_only_while_the_window_has_room_and_counts_them_not_as_concurrency() -> None:
    state, answer = decide(LedgerState(), Request("a", Lane.LIVE, 2, "g1", extra=40), 0.0, SMALL)
    assert (answer.granted, answer.concurrency) == (2 + 29, 2)  # half of the 58 left to spare
    state, answer = decide(state, Request("b", Lane.LIVE, 5, "g2", extra=40), 0.0, SMALL)
    assert answer.concurrency == 1  # concurrency: 3, the first lease runs 2 at once
    assert answer.granted == 1 + 14  # the window: 29 left, half of the 28 to spare
    state, answer = decide(state, Request("c", Lane.LIVE, 1, "g3"), 0.0, SMALL)
    assert (answer.granted, answer.reason) == (0, "concurrency")
    used = Close("g1", (1.0,) * 10, seconds=5.0)  # 10 of its 31 calls used: 21 given back
    state, answer = decide(state, Request("a", Lane.LIVE, 1, "g4", closes=(used,), extra=40), 1.0, SMALL)
    assert answer.granted == 1 + (60 - 10 - 15 - 1) // 2


def test_the_backfill_lane_leaves_the_live_share_of_requests_and_concurrency() -> None:
    limits = DataverseLimits(calls_per_window=100, max_concurrency=10, skew=0.0)
    state, answer = decide(LedgerState(), Request("b", Lane.BACKFILL, 10, "g1", extra=200), 0.0, limits)
    assert answer.concurrency == 7
    assert answer.granted <= 70
    state, answer = decide(state, Request("b", Lane.BACKFILL, 1, "g2"), 0.0, limits)
    assert answer.reason in {"window", "concurrency"}
    state, answer = decide(state, Request("l", Lane.LIVE, 3, "g3", extra=200), 0.0, limits)
    assert answer.concurrency == 3  # live is never behind the backfill's share


def test_execution_time_fills_up_and_frees_a_window_after_the_calls() -> None:
    limits = DataverseLimits(calls_per_window=6000, execution_seconds=10.0, skew=0.0)
    state, _ = decide(LedgerState(), Request("a", Lane.LIVE, 4, "g1"), 0.0, limits)
    state, answer = decide(state, Request("a", Lane.LIVE, 1, "g2", closes=(Close("g1", (3.0,) * 4, 10.0),)), 3, limits)
    assert answer.reason == "execution-time"
    assert 300.0 <= answer.retry_after <= 300.0 + limits.bucket
    _, answer = decide(state, Request("a", Lane.LIVE, 1, "g2"), 3.0 + 300.0 + limits.bucket, limits)
    assert answer.granted == 1


def test_a_429_pauses_every_holder_of_both_lanes_until_its_retry_after() -> None:
    state, _ = decide(LedgerState(), Request("a", Lane.LIVE, 0, pause_until=17.0), 10.0, SMALL)
    for lane in Lane:
        _, answer = decide(state, Request("b", lane, 1, "g"), 12.0, SMALL)
        assert (answer.granted, answer.reason, answer.retry_after) == (0, "throttled", 5.0)
    assert decide(state, Request("b", Lane.LIVE, 1, "g"), 17.0, SMALL)[1].granted == 1
    capped, _ = decide(LedgerState(), Request("a", Lane.LIVE, 0, pause_until=1e9), 0.0, SMALL)
    assert capped.paused_until == SMALL.max_pause  # a wild Retry-After stops no one for long


def test_the_ledger_row_stays_small_at_six_thousand_requests() -> None:
    limits = DataverseLimits(skew=0.0)
    state = LedgerState()
    for n in range(600):  # 6,000 requests in leases of 10 over the window, each closed
        now = n * 0.5
        state, answer = decide(state, Request("a", Lane.LIVE, 10, f"g{n}"), now, limits)
        state, _ = decide(state, Request("a", Lane.LIVE, 0, closes=(Close(f"g{n}", (now,) * answer.granted),)), now,
                          limits)  # fmt: skip
    assert sum(s.calls for s in state.spent) == 6000
    assert len(state.spent) <= 201  # counts per 1.5 s of finish, not one entry per request
    assert decide(state, Request("a", Lane.LIVE, 1, "x"), 299.5, limits)[1].reason == "window"


# --- through the client, against the simulator's real limits ---------------------------------------------------


def test_one_client_alone_fills_the_window_and_the_simulator_never_throttles_it(env: Env, tmp_path: Path) -> None:
    _limited(env)
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), SMALL, name="dataverse")
    client = _client(env, ledger)
    start = env.clock()
    stamps: list[float] = []
    for _ in range(150):
        client.whoami()
        stamps.append(env.clock())
    assert sum(env.sim.throttled.values()) == 0
    assert densest(stamps, 300.0) == 60  # the whole window, never more
    assert env.clock() - start >= 2 * 300.0  # 150 requests at 60 per 5 minutes
    assert ledger.requests < 150  # leases: fewer store round trips than requests


def test_threads_of_two_lanes_never_pass_the_concurrency_limit(env: Env, tmp_path: Path) -> None:
    _limited(env, requests=6000, concurrency=3)
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), DataverseLimits(max_concurrency=3), name="dataverse")
    live, backfill = _client(env, ledger), _client(env, ledger, Lane.BACKFILL)
    errors: list[BaseException] = []

    def work(client: DataverseClient) -> None:
        try:
            for _ in range(15):
                client.whoami()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in (live, live, live, backfill, backfill, backfill)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(env.sim.throttled.values()) == 0
    assert env.sim.peak_in_flight <= 3


def test_a_429_retry_after_pauses_the_other_lane_too(env: Env, tmp_path: Path) -> None:
    ledger = StoreLedger(SqliteRows(tmp_path / "state.sqlite3"), SMALL, name="dataverse")
    seen: list[tuple[str, float]] = []
    sleep = env.clock.sleep

    def watching(seconds: float) -> None:  # while the live client waits out the 429, the backfill may not draw
        answer = ledger.draw(Request("someone-else", Lane.BACKFILL, 1, "x"), env.clock())
        seen.append((answer.reason, answer.retry_after))
        sleep(seconds)

    env.clock.sleep = watching  # type: ignore[method-assign]
    live = _client(env, ledger)
    env.sim.inject(status=429, code="0x80072322", message="Number of requests exceeded", retry_after=7)
    assert live.whoami().user_id == env.app_user
    assert seen[0] == ("throttled", 7.0)
    assert ledger.usage(env.clock()).paused_for == 0.0  # passed by the retry


class _Flaky:
    """The store's rows, unreachable while ``down``."""

    def __init__(self, rows: SqliteRows) -> None:
        self.rows = rows
        self.down = True

    def __getattr__(self, name: str) -> Any:
        if self.down:
            raise RetryLater("the state store is unreachable")
        return getattr(self.rows, name)


def test_while_the_store_is_down_requests_go_by_the_local_share_and_come_back_after_it(
    env: Env, tmp_path: Path
) -> None:
    rows = _Flaky(SqliteRows(tmp_path / "state.sqlite3"))
    ledger = StoreLedger(rows, SMALL, name="dataverse")
    client = _client(env, ledger)
    limiter = client.gate.lane  # type: ignore[attr-defined]
    for _ in range(3):
        assert client.whoami().user_id == env.app_user
    assert limiter.fallbacks == 3
    assert ledger.requests == 1  # one failed try: the next calls keep to the local share without asking
    rows.down = False
    env.clock.sleep(STORE_RETRY_SECONDS)
    client.whoami()
    assert limiter.fallbacks == 3
    assert ledger.usage(env.clock()).in_window >= 1  # back on the shared budget


def test_the_simulator_answers_429_past_the_combined_execution_time() -> None:
    now = [0.0]
    limits = ServiceProtection(lambda: now[0], execution_limit_ms=10_000)
    for _ in range(5):  # five requests of 2 s: the whole 10 s allowance
        admitted = limits.admit("user")
        now[0] += 2.0
        limits.release("user", admitted)
    with pytest.raises(ApiError) as refused:
        limits.admit("user")
    assert (refused.value.status, refused.value.code) == (429, "0x80072321")
    assert refused.value.headers == {"Retry-After": "292"}  # the first request's 2 s leave the window at 302
    now[0] = 302.0
    limits.admit("user")  # the oldest request's time left the window


# --- several processes, one store -----------------------------------------------------------------------------


def _worker(path: str, window: float, seconds: float, out: Any) -> None:
    limits = DataverseLimits(calls_per_window=120, window=window, max_concurrency=8, execution_seconds=0.0, skew=0.0,
                             use_seconds=0.5, call_timeout=1.0)  # fmt: skip
    ledger = StoreLedger(SqliteRows(path), limits, name="dataverse")
    limiter = LaneLimiter(ledger, Lane.LIVE, fallback=RateLimiter(), max_chunk=4, max_lease=30, service="Dataverse")
    out.put((calls_for(limiter, seconds), limiter.fallbacks, ledger.requests))


def _processes(path: Path, k: int, window: float, seconds: float) -> Iterator[tuple[list[tuple[float, float]], int]]:
    for spans, fallbacks, requests in in_processes(_worker, (str(path), window, seconds), k):
        assert fallbacks == 0
        yield spans, requests


def test_processes_sharing_one_store_never_pass_the_limits_and_one_alone_reaches_them(tmp_path: Path) -> None:
    window = 1.0  # 120 requests per second: time scaled down, every request through the real store and processes
    for k in (1, 3):
        results = list(_processes(tmp_path / f"state{k}.sqlite3", k, window, seconds=3.0))
        spans = [span for got, _ in results for span in got]
        starts = [s for s, _ in spans]
        assert densest(starts, window) <= 120
        assert densest([e for _, e in spans], window) <= 120
        assert most_at_once(spans) <= 8
        assert densest(starts, window) >= 114, k  # >= 95 % of the window, one process alone or several
        assert sum(r for _, r in results) < len(spans), k  # fewer store requests than Dataverse requests


# --- the composition root -----------------------------------------------------------------------------------------


def test_the_reconcile_gets_the_live_lane_and_the_job_runner_the_backfill_lane(stack: LocalStack) -> None:
    svc = stack.services
    live, jobs = svc.dataverse.gate, svc.dataverse_jobs.gate
    assert isinstance(live, BudgetGate)
    assert isinstance(jobs, BudgetGate)
    assert (live.lane.lane, jobs.lane.lane) == (Lane.LIVE, Lane.BACKFILL)
    assert live.lane.ledger is jobs.lane.ledger, "one budget, in the store every instance shares"
    assert live.process is jobs.process, "one DATAVERSE_MAX_CONCURRENCY for the process, not one per lane"
    assert (live.keep, jobs.keep) == (0, math.ceil(jobs.configured * 0.3))  # the backfill leaves the live reserve
    svc.dataverse.whoami()
    svc.dataverse_jobs.whoami()
    assert live.usage().in_window >= 2  # both lanes' requests counted in the one ledger
