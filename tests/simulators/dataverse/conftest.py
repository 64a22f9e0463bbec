"""An in-process simulated organisation and a signed-in ``httpx`` client for it (no product code involved)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.simulators.dataverse import CapturedWebhooks, DataverseSimulator

ORG = "https://contoso.crm.dynamics.com"
API = f"{ORG}/api/data/v9.2/"
CLIENT_ID = "0c6f0d2a-0000-4000-8000-0000000000c3"
SECRET = "rules-secret"


class Web:
    """Raw Web API calls as an application user, the way the docs write them."""

    def __init__(self) -> None:
        self.hooks = CapturedWebhooks()
        self.sim = DataverseSimulator(sender=self.hooks)
        self.user = self.sim.add_app(CLIENT_ID, secret=SECRET)
        self.http = httpx.Client(transport=httpx.MockTransport(self.sim), base_url=API)
        token = self.http.post(
            f"https://login.microsoftonline.com/{self.sim.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "scope": f"{ORG}/.default",
            },
        ).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.http.get(path, headers=headers)

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers=headers)

    def patch(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.patch(path, json=body, headers=headers)

    @staticmethod
    def error(response: httpx.Response) -> tuple[int, str, str]:
        error = response.json()["error"]
        return response.status_code, error["code"], error["message"]


@pytest.fixture
def web() -> Iterator[Web]:
    client = Web()
    yield client
    client.http.close()
