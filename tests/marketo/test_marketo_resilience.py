from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from local.simulators.marketo import MarketoSimulator
from shared.errors import QuotaExhausted, RetryLater, Throttled
from shared.http.backoff import Backoff
from shared.marketo.limiter import RateLimiter
from tests.marketo_harness import FakeClock, Harness, Mode, Switchboard, marketo_harness

DESCRIBE = "GET /rest/v1/leads/describe.json"


@pytest.mark.parametrize("code", ["502", "503", "500", "604", "606", "608", "611", "615", "713"])
def test_transient_faults_are_retried_with_backoff(h: Harness, code: str) -> None:
    h.client.describe_leads()
    slept = h.clock.slept
    h.sim.faults.inject(code, times=2)
    assert h.client.describe_leads()
    assert h.client.retries[code] == 2
    assert h.sim.faults.fired[code] == 2
    assert h.clock.slept - slept == pytest.approx(0.5 + 1.0)  # backoff 0.5 s then 1 s (jitter pinned)


def test_faults_can_target_one_path(h: Harness) -> None:
    h.sim.faults.inject("608", path="/rest/v1/leads.json")
    h.client.describe_leads()
    assert h.client.retries == {}
    h.client.sync_leads([{"email": "a@example.com"}])
    assert h.client.retries == {"608": 1}


def test_timeouts_are_retried(mode: Mode, loopback: tuple[Switchboard, str]) -> None:
    with marketo_harness(mode, loopback=loopback, timeout=0.2) as h:
        h.client.describe_leads()
        h.sim.faults.inject("timeout", path="/rest/v1/leads.json")
        outcomes = h.client.sync_leads([{"email": "slow@example.com"}])
        assert h.client.retries["timeout"] == 1
        # Over loopback the slow first attempt still landed, so the retry finds the lead: no duplicate.
        assert outcomes[0].ok
        assert len(h.sim.find_leads("email", "slow@example.com")) == 1


def test_retries_end_when_the_budget_is_spent(mode: Mode, loopback: tuple[Switchboard, str]) -> None:
    with marketo_harness(mode, loopback=loopback, backoff=Backoff(max_attempts=3)) as h:
        h.sim.faults.inject("606", times=5)
        with pytest.raises(Throttled) as throttled:
            h.client.describe_leads()
        assert throttled.value.code == "606"
        h.sim.faults.clear()
        h.sim.faults.inject("611", times=5)
        with pytest.raises(RetryLater) as failed:
            h.client.describe_leads()
        assert failed.value.code == "611"


def test_daily_quota_stops_until_central_midnight(h: Harness) -> None:
    h.sim.set_daily_quota(3)
    for _ in range(3):
        h.client.describe_leads()
    with pytest.raises(QuotaExhausted) as caught:
        h.client.describe_leads()
    # The fake clock starts 2026-01-01T00:00Z = 2025-12-31 18:00 CST: the quota resets 2026-01-01 06:00 UTC.
    assert caught.value.resets_at == datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
    h.clock.advance(6 * 3600)
    assert h.client.describe_leads()


def test_injected_607_is_quota_too(h: Harness) -> None:
    h.sim.faults.inject("607")
    with pytest.raises(QuotaExhausted):
        h.client.describe_leads()


def test_limiter_holds_a_burst_below_the_rate_limit(h: Harness) -> None:
    start = h.clock.time()
    for _ in range(250):
        h.client.describe_leads()
    assert h.sim.rejections["606"] == 0
    assert h.sim.limits.max_in_any_window() <= 90
    assert h.clock.time() - start >= 40.0  # 250 calls at 90 per 20 s need two full windows of waiting


def test_without_the_limiter_marketo_answers_606_and_the_client_retries(
    mode: Mode, loopback: tuple[Switchboard, str]
) -> None:
    clock = FakeClock()
    generous = RateLimiter(calls_per_window=1000, headroom=0.0, max_concurrency=50, clock=clock.time, sleep=clock.sleep)
    patient = Backoff(base=0.5, cap=20.0, budget=300.0, max_attempts=10)
    with marketo_harness(mode, clock=clock, loopback=loopback, limiter=generous, backoff=patient) as h:
        for _ in range(150):
            h.client.describe_leads()
        assert h.sim.rejections["606"] >= 1
        assert h.client.retries["606"] >= 1
        assert h.sim.calls[DESCRIBE] == 150 + h.sim.rejections["606"]


def _burst(h: Harness, threads: int) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            h.client.describe_leads()
        except BaseException as exc:  # pragma: no cover - asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors


class _PacedClock(FakeClock):
    """Fake time, but every sleep also lets 20 ms of real time pass so real overlapping calls can drain."""

    def sleep(self, seconds: float) -> None:
        time.sleep(0.02)
        super().sleep(seconds)


class _HeldUntilRefused:
    """The simulator's latency, independent of how loaded the machine is: each call keeps its slot until Marketo
    has refused one call for concurrency (615), or for at most ``patience`` seconds of real time. So calls overlap
    whenever the client lets more than ten through, however slowly the threads are scheduled."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self.sim: MarketoSimulator | None = None

    def sleep(self, _seconds: float) -> None:
        deadline = time.monotonic() + self.patience
        while time.monotonic() < deadline and not (self.sim is not None and self.sim.rejections["615"]):
            time.sleep(0.002)


@pytest.mark.parametrize(("max_concurrency", "expect_615"), [(10, False), (40, True)])
def test_concurrency_limit(
    mode: Mode, loopback: tuple[Switchboard, str], max_concurrency: int, expect_615: bool
) -> None:
    clock = _PacedClock()
    held = _HeldUntilRefused(patience=0.3)
    sim = MarketoSimulator(clock=clock.time, sleep=held.sleep, latency=0.05)
    held.sim = sim
    limiter = RateLimiter(max_concurrency=max_concurrency, clock=clock.time, sleep=clock.sleep)
    patient = Backoff(max_attempts=20, budget=10_000.0)
    with marketo_harness(mode, sim=sim, clock=clock, loopback=loopback, limiter=limiter, backoff=patient) as h:
        h.client.describe_leads()
        _burst(h, 25)
        assert h.sim.limits.max_in_flight <= 10
        assert (h.sim.rejections["615"] > 0) is expect_615
        assert (h.client.retries.get("615", 0) > 0) is expect_615
