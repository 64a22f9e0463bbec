"""One environment per test, run twice: the simulator in-process (MockTransport) and over real HTTP on loopback.

MSAL is real in both: its ``http_client`` forwards to the simulator's authority. Time is fake: the client's sleep
advances a clock the simulator also reads, so Retry-After and the 5-minute window cost no real time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from local.loopback import serve
from local.simulators.dataverse import CapturedWebhooks, DataverseSimulator
from shared.dataverse.auth import BearerAuth, MsalTokenSource, build_confidential_client
from shared.dataverse.client import DataverseClient
from shared.http.backoff import Backoff

CLIENT_ID = "5a1f7c2e-0000-4000-8000-00000000c11e"
SECRET = "Sup3r~Secret.Value_never-logged"
IN_PROCESS_ORG = "https://contoso.crm.dynamics.com"


@dataclass
class FakeClock:
    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RedirectTransport(httpx.BaseTransport):
    """Sends every request (e.g. to https://login.microsoftonline.com) to the loopback server instead."""

    def __init__(self, base_url: str) -> None:
        self._base = httpx.URL(base_url)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._base.scheme, host=self._base.host, port=self._base.port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@dataclass
class Env:
    mode: str
    sim: DataverseSimulator
    clock: FakeClock
    org_url: str
    app_user: str
    tokens: MsalTokenSource
    http: httpx.Client
    client: DataverseClient
    webhooks: CapturedWebhooks
    authority_transport: httpx.BaseTransport
    api_transport: httpx.BaseTransport

    def new_client(self, http: httpx.Client | None = None, **kwargs: object) -> DataverseClient:
        return DataverseClient(
            http or self.http,
            self.org_url,
            backoff=kwargs.pop("backoff", Backoff(base=0.5, cap=8, budget=60, max_attempts=5)),  # type: ignore[arg-type]
            sleep=self.clock.sleep,
            clock=self.clock,
            rand=lambda: 1.0,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def timeout_delay(self) -> float:
        """How long an injected timeout hangs: nothing in-process; over loopback well past :data:`SHORT_READ`, so
        a loaded machine still sees the timeout (the other tests keep a generous read timeout)."""
        return 0.0 if self.mode == "in-process" else SHORT_READ * 5

    def impatient_client(self) -> DataverseClient:
        """A client whose reads time out after :data:`SHORT_READ` seconds: for the tests that inject timeouts."""
        timeout = httpx.Timeout(5.0, read=SHORT_READ)
        return self.new_client(
            httpx.Client(transport=self.api_transport, auth=BearerAuth(self.tokens), timeout=timeout)
        )


SHORT_READ = 0.3


def _build(mode: str, sim: DataverseSimulator, clock: FakeClock, webhooks: CapturedWebhooks, base: str | None) -> Env:
    app_user = sim.add_app(CLIENT_ID, secret=SECRET)
    if base is None:
        org_url = IN_PROCESS_ORG
        api_transport: httpx.BaseTransport = httpx.MockTransport(sim)
        authority_transport: httpx.BaseTransport = httpx.MockTransport(sim)
    else:
        org_url = base
        api_transport = httpx.HTTPTransport()
        authority_transport = RedirectTransport(base)
    app = build_confidential_client(
        tenant_id=sim.tenant_id,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        http_client=httpx.Client(transport=authority_transport),
    )
    tokens = MsalTokenSource(app, org_url, secret=SECRET)
    http = httpx.Client(transport=api_transport, auth=BearerAuth(tokens), timeout=httpx.Timeout(10.0))
    env = Env(mode, sim, clock, org_url, app_user, tokens, http, None, webhooks, authority_transport, api_transport)  # type: ignore[arg-type]
    env.client = env.new_client()
    return env


class _Switch:
    """One loopback server for the whole session (stopping one costs its 0.5 s poll); each test plugs its sim in.

    A test whose client gave up on a simulated timeout leaves the server's thread asleep in the simulator;
    :meth:`settle` waits for it, so no call of one test lands in (or logs during) the next.
    """

    def __init__(self) -> None:
        self.target: DataverseSimulator | None = None
        self._busy = 0
        self._idle = threading.Condition()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert self.target is not None
        with self._idle:
            self._busy += 1
        try:
            return self.target(request)
        except httpx.TimeoutException:  # simulated: the client has stopped waiting; nobody reads this answer
            return httpx.Response(504, json={"error": {"code": "simulated-timeout", "message": "simulated timeout"}})
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def settle(self, timeout: float = 30.0) -> None:
        with self._idle:
            assert self._idle.wait_for(lambda: self._busy == 0, timeout), "a loopback call never finished"


@pytest.fixture(scope="session")
def loopback() -> Iterator[tuple[_Switch, str]]:
    switch = _Switch()
    with serve(switch) as base:
        yield switch, base


@pytest.fixture(params=["in-process", "loopback"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    clock = FakeClock()
    webhooks = CapturedWebhooks()
    sim = DataverseSimulator(clock=clock, sender=webhooks, webhook_urls=["https://func.example/api/dataverse"])
    if request.param == "in-process":
        env = _build("in-process", sim, clock, webhooks, None)
    else:
        switch, base = request.getfixturevalue("loopback")
        switch.target = sim
        env = _build("loopback", sim, clock, webhooks, base)
    yield env
    env.http.close()
    if request.param == "loopback":
        switch.settle()
