"""The simulated organisation served over loopback, and independent clients pointed at it.

The clients are maintained Dataverse libraries from PyPI, not this project's code:

- ``PowerPlatform-Dataverse-Client`` (Microsoft's Python SDK, ``requests`` + an azure-identity TokenCredential).
  It refuses anything but ``https://`` base URLs, so it is given ``https://contoso.crm.dynamics.com`` and a
  ``requests`` session whose transport adapter (:class:`LoopbackAdapter`) sends every request to the loopback
  server instead; the session is the one the SDK would create for ``with DataverseClient(...)`` (its
  ``_session``), set before first use. The simulator checks a token's audience against the URL it is served at,
  so the small :class:`SimulatedCredential` asks the simulated Entra for a token of that URL.
- ``dynamics-client`` (``httpx`` + authlib's client-credentials flow): takes any API and token URL, so it is
  simply given the loopback ones.

What a library does not do (change tracking, conditional requests, raw ``$batch``) is driven with plain
``requests`` calls written from the Web API docs, in ``test_web_api_by_hand.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from dynamics.client import DynamicsClient
from PowerPlatform.Dataverse.client import DataverseClient
from PowerPlatform.Dataverse.core.config import DataverseConfig
from requests.adapters import HTTPAdapter

from local.loopback import serve
from local.simulators.dataverse import CapturedWebhooks, DataverseSimulator

CLIENT_ID = "c0ffee00-0000-4000-8000-00000000c0f1"
SECRET = "conformance-client-secret"
ORG = "https://contoso.crm.dynamics.com"


class LoopbackAdapter(HTTPAdapter):
    """A ``requests`` transport that sends https://contoso.crm.dynamics.com/... to the loopback server."""

    def __init__(self, public: str, served: str) -> None:
        super().__init__()
        self._public = urlsplit(public).netloc
        self._served = urlsplit(served)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(str(request.url))
        if parts.netloc == self._public:
            request.url = urlunsplit((self._served.scheme, self._served.netloc, parts.path, parts.query, ""))
        return super().send(request, *args, **kwargs)


@dataclass
class SimulatedCredential:
    """A TokenCredential (azure-core's protocol) for the simulated Entra: client credentials over HTTP."""

    token_url: str
    audience: str

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        response = requests.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "scope": f"{self.audience}/.default",
            },
            timeout=10,
        )
        response.raise_for_status()
        body = response.json()
        return AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))


class _Switch:
    """One loopback server for the session; each test plugs its own organisation in."""

    def __init__(self) -> None:
        self.target: DataverseSimulator | None = None

    def __call__(self, request: Any) -> Any:
        assert self.target is not None
        return self.target(request)


@dataclass
class Org:
    sim: DataverseSimulator
    base: str  # where the simulator is served, e.g. http://127.0.0.1:5123
    user_id: str
    hooks: CapturedWebhooks

    @property
    def api(self) -> str:
        return f"{self.base}/api/data/v9.2/"

    @property
    def token_url(self) -> str:
        return f"{self.base}/{self.sim.tenant_id}/oauth2/v2.0/token"

    def session(self) -> requests.Session:
        """A plain ``requests`` session with a bearer token and the headers the docs put on every request."""
        session = requests.Session()
        token = SimulatedCredential(self.token_url, self.base).get_token().token
        session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "OData-MaxVersion": "4.0",
                "OData-Version": "4.0",
            }
        )
        return session

    def microsoft_sdk(self) -> DataverseClient:
        client = DataverseClient(ORG, SimulatedCredential(self.token_url, self.base), DataverseConfig())
        session = requests.Session()
        session.mount("https://", LoopbackAdapter(ORG, self.base))
        client._session = session  # the pooled session the SDK itself creates in __enter__
        return client

    def dynamics_client(self) -> DynamicsClient:
        return DynamicsClient(
            api_url=f"{self.base}/api/data/v9.2",
            token_url=self.token_url,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            scope=f"{self.base}/.default",
            cache_token=False,
        )


@pytest.fixture(scope="session")
def loopback() -> Iterator[tuple[_Switch, str]]:
    switch = _Switch()
    with serve(switch) as base:
        yield switch, base


@pytest.fixture
def org(loopback: tuple[_Switch, str]) -> Org:
    switch, base = loopback
    hooks = CapturedWebhooks()
    sim = DataverseSimulator(sender=hooks)
    user = sim.add_app(CLIENT_ID, secret=SECRET)
    switch.target = sim
    return Org(sim, base, user, hooks)
