"""The simulator driven by marketorestpython (PyPI), a Marketo client this project did not write.

How the client is pointed at the simulator, and kept off real time, with the least reach into it:

- Host: the client has no host or api_host parameter; it builds every URL, the identity call's included, from
  its public ``host`` attribute (``"https://" + munchkin_id + ".mktorest.com"``, set in ``__init__``). It talks
  through ``requests``' module functions (no session to mount a transport adapter on), so each test sets
  ``client.host`` to the loopback URL that serves the simulator. Nothing else of the client is changed.
- Time: the client throttles itself to 5 calls a second and books its token's life with the ``time`` module,
  and ``backoff`` (its retry decorator) waits with ``time.sleep``. The ``time`` name in those three modules is
  replaced by :class:`SimulatedTime`, which reads and advances the simulator's clock: the client paces, renews
  and backs off in simulated time, exactly as it would in real time, and no test waits. That clock is one for
  the whole session and only moves forward, because the throttle keeps the time of its last call between tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import backoff._sync
import httpx
import marketorestpython.client  # type: ignore[import-untyped,unused-ignore]
import marketorestpython.helper.http_lib  # type: ignore[import-untyped,unused-ignore]
import pytest
from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]

from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET, MarketoSimulator
from tests.marketo_harness import FakeClock, Switchboard, loopback

__all__ = ["loopback"]

MUNCHKIN_ID = "123-ABC-456"
ClientFactory = Callable[..., MarketoClient]


class SimulatedTime:
    """Stands in for the ``time`` module inside marketorestpython and backoff (see the module docstring)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def time(self) -> float:
        return self.clock.time()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


@pytest.fixture(scope="session")
def session_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clock(session_clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    simulated = SimulatedTime(session_clock)
    for module in (marketorestpython.client, marketorestpython.helper.http_lib, backoff._sync):
        monkeypatch.setattr(module, "time", simulated)
    return session_clock


class Wiretap:
    """Forwards to the simulator and keeps each request: to show which wire form the client really used."""

    def __init__(self, target: MarketoSimulator) -> None:
        self.target = target
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.target(request)

    def to(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]


@pytest.fixture
def wire(clock: FakeClock, loopback: tuple[Switchboard, str]) -> Iterator[Wiretap]:
    board, _ = loopback
    tap = Wiretap(MarketoSimulator(clock=clock.time, sleep=clock.sleep, timeout_mode="delay"))
    board.target = tap
    try:
        yield tap
    finally:
        board.target = None


@pytest.fixture
def sim(wire: Wiretap) -> MarketoSimulator:
    """A fresh simulator, served at the session's loopback URL for the length of the test."""
    return wire.target


@pytest.fixture
def connect(sim: MarketoSimulator, loopback: tuple[Switchboard, str]) -> ClientFactory:
    """Build a marketorestpython client for the served simulator (retrying as it does by default)."""
    _, url = loopback

    def build(
        *, client_secret: str = SIM_CLIENT_SECRET, max_retry_time: float = 300, client_id: str = SIM_CLIENT_ID
    ) -> MarketoClient:
        client = MarketoClient(MUNCHKIN_ID, client_id, client_secret, max_retry_time=max_retry_time, requests_timeout=5)
        assert client.host == f"https://{MUNCHKIN_ID}.mktorest.com"  # what it would call in production
        client.host = url
        return client

    return build


@pytest.fixture
def mkto(connect: ClientFactory) -> MarketoClient:
    """The client as an integrator would use it, but giving up at the first error (``max_retry_time=0``)."""
    return connect(max_retry_time=0)
