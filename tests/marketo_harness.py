"""A Marketo simulator and a client wired together, in-process or over loopback, on one fake clock, and the
pytest fixtures that hand them to the Marketo client and simulator tests (each runs twice, in-process and over
loopback; one loopback server, a switchboard, serves every test of the session).

    with marketo_harness("loopback") as h:
        h.client.sync_leads([{"email": "a@example.com"}])
        assert h.sim.calls["POST /rest/v1/leads.json"] == 1
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import pytest

from local.loopback import LoopbackServer, serve
from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET, MarketoSimulator
from shared.http.backoff import Backoff
from shared.marketo.client import MarketoClient
from shared.marketo.limiter import Limiter, RateLimiter

Mode = Literal["mock", "loopback"]
MODES: tuple[Mode, ...] = ("mock", "loopback")


class FakeClock:
    """Epoch seconds that only move when someone sleeps or calls ``advance``; thread-safe."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._lock = threading.Lock()
        self.slept = 0.0

    def time(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(seconds, 0.0)
            self.slept += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


class Switchboard:
    """A handler that forwards to whichever simulator is plugged in: one loopback server serves many tests.

    (Stopping a loopback server waits for its poll interval, about half a second; sharing one keeps tests fast.)
    """

    def __init__(self) -> None:
        self.target: Callable[[httpx.Request], httpx.Response] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.target is None:
            return httpx.Response(503, text="no simulator plugged in")
        return self.target(request)


@contextmanager
def shared_loopback() -> Iterator[tuple[Switchboard, str]]:
    board = Switchboard()
    server = LoopbackServer(board)
    server.start()
    try:
        yield board, server.url
    finally:
        server.stop()


@dataclass
class Harness:
    sim: MarketoSimulator
    client: MarketoClient
    clock: FakeClock
    http: httpx.Client
    base_url: str
    mode: Mode


@contextmanager
def marketo_harness(
    mode: Mode,
    *,
    sim: MarketoSimulator | None = None,
    clock: FakeClock | None = None,
    limiter: Limiter | None = None,
    backoff: Backoff | None = None,
    timeout: float = 5.0,
    client_secret: str = SIM_CLIENT_SECRET,
    loopback: tuple[Switchboard, str] | None = None,
    **client_options: Any,
) -> Iterator[Harness]:
    clock = clock or FakeClock()
    sim = sim or MarketoSimulator(clock=clock.time, sleep=clock.sleep)
    if mode == "loopback":
        sim.timeout_mode = "delay"
        sim.timeout_delay = timeout + 0.1
    limiter = limiter or RateLimiter(clock=clock.time, sleep=clock.sleep)
    backoff = backoff or Backoff(base=0.5, cap=20.0, budget=120.0, max_attempts=6)

    def build(http: httpx.Client, base_url: str) -> Harness:
        client = MarketoClient(
            http,
            base_url=base_url,
            identity_url=base_url + "/identity",
            client_id=SIM_CLIENT_ID,
            client_secret=client_secret,
            limiter=limiter,
            backoff=backoff,
            sleep=clock.sleep,
            clock=clock.time,
            now=clock.now,
            rand=lambda: 1.0,
            **client_options,
        )
        return Harness(sim, client, clock, http, base_url, mode)

    if mode == "mock":
        with httpx.Client(transport=httpx.MockTransport(sim), timeout=timeout) as http:
            yield build(http, "https://123-ABC-456.mktorest.com")
    elif loopback is not None:
        board, url = loopback
        board.target = sim
        try:
            with httpx.Client(timeout=timeout) as http:
                yield build(http, url)
        finally:
            board.target = None
    else:
        with serve(sim) as url, httpx.Client(timeout=timeout) as http:
            yield build(http, url)


@pytest.fixture(scope="session")
def loopback() -> Iterator[tuple[Switchboard, str]]:
    with shared_loopback() as served:
        yield served


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    selected: Mode = request.param
    return selected


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def h(mode: Mode, clock: FakeClock, loopback: tuple[Switchboard, str]) -> Iterator[Harness]:
    with marketo_harness(mode, clock=clock, loopback=loopback) as harness:
        yield harness
