"""The whole product in-process: simulated tenants, the local broker, SQLite state, the FunctionApp's functions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import function_app
from local.host import Batching
from local.stack import IN_PROCESS_HOST, LocalStack
from shared.dataverse.client import DataverseClient
from shared.services import build_dataverse


class World:
    """What a test does to the systems, in the words of a user of them."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        assert stack.tenants is not None
        self.tenants = stack.tenants
        self.dv = stack.tenants.dataverse
        self.mk = stack.tenants.marketo
        self.store = stack.services.store

    # Dynamics, as a person using it
    def create(self, entity: str, **values: Any) -> str:
        return self.dv.user_create(entity, values, user_id=self.tenants.admin_user_id)

    def update(self, entity: str, record_id: str, **values: Any) -> None:
        self.dv.user_update(entity, record_id, values, user_id=self.tenants.admin_user_id)

    def delete(self, entity: str, record_id: str) -> None:
        self.dv.user_delete(entity, record_id, user_id=self.tenants.admin_user_id)

    def row(self, entity: str, record_id: str) -> dict[str, Any]:
        found = self.dv.get(entity, record_id)
        assert found is not None, f"{entity} {record_id} is gone from Dynamics"
        return found

    def as_admin_app(self) -> DataverseClient:
        """A Web API client for the admin's own app registration (not the sync's): its changes are human ones."""
        s = self.stack.settings
        settings = s.model_copy(
            update={
                "dataverse_client_id": self.tenants.demo_client_id,
                "dataverse_client_secret": SecretStr(self.tenants.secrets.demo_client_secret),
            }
        )
        return build_dataverse(settings, self.stack.http)

    # Marketo
    def person(self, **where: Any) -> dict[str, Any]:
        ((field, value),) = where.items()
        found = self.mk.find_leads(field, value)
        assert len(found) == 1, f"expected one person with {field}={value!r}, found {len(found)}"
        return found[0]

    def persons(self) -> list[dict[str, Any]]:
        return list(self.mk.leads.leads.values())

    # the product
    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.stack.host.handle_http(httpx.Request(method, f"{IN_PROCESS_HOST}/api/{path}", **kw))

    def settle(self, timeout: float = 15.0) -> None:
        assert self.stack.drain(timeout), "the queue did not drain"

    def fire(self, timer: str) -> None:
        self.stack.host.fire(timer)
        self.settle()


@pytest.fixture
def world() -> Iterator[World]:
    stack = LocalStack(
        function_app.app,
        in_process=True,
        run_timers=False,
        retry_delay=0.05,
        batching=Batching(max_size=300, min_size=1, max_wait=0.0, concurrency=2),
        overrides={"PAUSE_RECHECK_SECONDS": "0.2"},
    ).start()
    try:
        yield World(stack)
    finally:
        stack.stop()
