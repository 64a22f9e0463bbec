"""A provisioned pair of simulated tenants, and the setup CLI's seams pointed at them through MockTransport."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from local.simulators.dataverse import CapturedWebhooks
from local.tenants import SimulatedTenants
from shared.core.mapping import SyncMapping, load_mapping
from shared.settings import Settings
from shared.setup.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
DATAVERSE = "https://contoso.crm.dynamics.com"
MARKETO = "https://123-abc-456.mktorest.com"
ENTRA = "login.microsoftonline.com"
HOOK = "https://sync-app.azurewebsites.net/api/dataverse/webhook"


def base_mapping() -> SyncMapping:
    return load_mapping((ROOT / "config" / "mapping.json").read_text())


@dataclass
class World:
    tenants: SimulatedTenants
    hooks: CapturedWebhooks
    http: httpx.Client
    settings: Settings

    @property
    def mapping(self) -> SyncMapping:
        return self.tenants.mapping

    def run(self, *argv: str, mapping: SyncMapping | None = None, settings: Settings | None = None) -> tuple[int, str]:
        out = io.StringIO()
        code = main(
            list(argv), settings=settings or self.settings, http=self.http, mapping=mapping or self.mapping, out=out
        )
        return code, out.getvalue()

    def with_settings(self, **overrides: str) -> Settings:
        env = self.tenants.environment(DATAVERSE, MARKETO) | overrides
        return Settings.model_validate(env)


def _router(world_handlers: dict[str, Callable[[httpx.Request], httpx.Response]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        handler = world_handlers.get(request.url.host)
        if handler is None:
            return httpx.Response(502, json={"error": f"no service at {request.url.host}"})
        return handler(request)

    return httpx.MockTransport(handle)


@pytest.fixture
def world() -> World:
    tenants = SimulatedTenants(base_mapping())
    hooks = CapturedWebhooks()
    tenants.dataverse.sender = hooks
    transport = _router(
        {
            ENTRA: tenants.dataverse,
            httpx.URL(DATAVERSE).host: tenants.dataverse,
            httpx.URL(MARKETO).host: tenants.marketo,
        }
    )
    http = httpx.Client(transport=transport, timeout=10.0)
    settings = Settings.model_validate(tenants.environment(DATAVERSE, MARKETO))
    return World(tenants, hooks, http, settings)
