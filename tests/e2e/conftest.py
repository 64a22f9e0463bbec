"""The whole product in-process: simulated tenants, the local broker, SQLite state, the FunctionApp's functions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from local.stack import IN_PROCESS_HOST, LocalStack
from shared.dataverse.client import DataverseClient
from shared.services import build_dataverse
from tests.stacks import PROMPT_BATCHING, running_stack

WORLD_BATCHING = replace(PROMPT_BATCHING, concurrency=2)  # two batches at once, as races need


class ManualClock:
    """The product's time in a test: it moves only when the test says so (started at the real time, so the
    simulators' own clocks agree with it at the start)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SkippedWaits:
    """The clients' waits (retry backoff, Marketo's rate limiter) return at once and move this clock instead."""

    def __init__(self) -> None:
        self.skipped = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.skipped += max(0.0, seconds)

    def monotonic(self) -> float:
        return time.monotonic() + self.skipped


class World:
    """What a test does to the systems, in the words of a user of them."""

    def __init__(self, stack: LocalStack, clock: ManualClock | None = None) -> None:
        self.stack = stack
        self.clock = clock
        assert stack.tenants is not None
        self.tenants = stack.tenants
        self.dv = stack.tenants.dataverse
        self.mk = stack.tenants.marketo
        self.store = stack.services.store

    # Dynamics, as a person using it
    def create(self, entity: str, **values: Any) -> str:
        return self.tenants.user_create(entity, **values)

    def update(self, entity: str, record_id: str, **values: Any) -> None:
        self.tenants.user_update(entity, record_id, **values)

    def delete(self, entity: str, record_id: str) -> None:
        self.tenants.user_delete(entity, record_id)

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

    def status(self) -> dict[str, Any]:
        answer = self.call("GET", "status")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def dead_lettered(self) -> int:
        return len(self.stack.broker.queue(self.stack.settings.changes_queue).dead_letters)

    def restart(self, *, keep_queue: bool) -> None:
        """The host process dies; a fresh one starts over the same store (the tenants live on)."""
        self.stack.restart(keep_queue=keep_queue)
        self.store = self.stack.services.store

    def minutes_pass(self, minutes: float, *, sweep: bool = True) -> None:
        """Time moves on the product's clock a minute at a time, the pending sweep running each minute."""
        assert self.clock is not None, "this world runs on the real clock"
        for _ in range(round(minutes)):
            self.clock.advance(60)
            if sweep:
                self.fire("pending_sweep")


@pytest.fixture
def clocked_world() -> Iterator[World]:
    """A world on a :class:`ManualClock`, whose clients do not sleep between their own retries: hours of an
    outage pass in seconds."""
    clock = ManualClock()
    waits = SkippedWaits()
    overrides = {"PAUSE_RECHECK_SECONDS": "0.2"}
    with running_stack(
        batching=WORLD_BATCHING, overrides=overrides, clock=clock, sleep=waits.sleep, monotonic=waits.monotonic
    ) as stack:
        assert stack.tenants is not None
        stack.tenants.marketo.limits.config.calls_per_window = 1_000_000  # about outages, not Marketo's rate limit
        yield World(stack, clock)


@pytest.fixture
def world() -> Iterator[World]:
    with running_stack(batching=WORLD_BATCHING, overrides={"PAUSE_RECHECK_SECONDS": "0.2"}) as stack:
        yield World(stack)
