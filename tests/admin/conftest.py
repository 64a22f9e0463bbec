"""The admin CLI's seams: the whole product in-process (its HTTP API answers the CLI through an httpx transport
into the local host, as a socket would), or a scripted app (an httpx.MockTransport answering as the contracts
say) for what a test must shape itself, such as a job's progress over time."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.stack import IN_PROCESS_HOST, LocalStack
from shared.admin.__main__ import main
from tests.e2e.conftest import WORLD_BATCHING, World
from tests.stacks import running_stack

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Ran:
    code: int
    out: str
    err: str


@dataclass
class FakeTime:
    """The watch loop's clock and sleep: sleeping moves the clock, nothing waits."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class TimerTime(FakeTime):
    def __init__(self, stack: LocalStack) -> None:
        super().__init__()
        self.stack = stack

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.stack.host.fire("quick_sync")


def run_cli(
    transport: httpx.BaseTransport,
    *argv: str,
    env: dict[str, str] | None = None,
    tty: bool = False,
    time: FakeTime | None = None,
) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    ticks = time or FakeTime()
    code = main(
        ["--url", IN_PROCESS_HOST, *argv],
        transport=transport,
        env=env if env is not None else {},
        out=out,
        err=err,
        tty=tty,
        sleep=ticks.sleep,
        clock=ticks.clock,
        now=lambda: NOW,
    )
    return Ran(code, out.getvalue(), err.getvalue())


@dataclass
class Product:
    """The product behind the CLI, and the CLI pointed at it."""

    world: World

    @property
    def stack(self) -> LocalStack:
        return self.world.stack

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.stack.host.handle_http)

    def __call__(self, *argv: str, env: dict[str, str] | None = None, tty: bool = False) -> Ran:
        return run_cli(self.transport(), *argv, env=env, tty=tty)

    def watching(self, *argv: str) -> Ran:
        """A command that watches a job: each wait between two polls runs the Quick Sync timer once instead (the
        jobs' runner), so the job advances with no waiting; ``--timeout`` (fake seconds) bounds a job that hangs."""
        return run_cli(self.transport(), "--timeout", "60", *argv, time=TimerTime(self.stack))


@pytest.fixture
def product() -> Iterator[Product]:
    with running_stack(batching=WORLD_BATCHING, overrides={"PAUSE_RECHECK_SECONDS": "0.2"}) as stack:
        yield Product(World(stack))


Handler = Callable[[httpx.Request], Any]


@dataclass
class ScriptedApp:
    """An app that answers each ``METHOD /api/route`` from a table; it records what it was asked."""

    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, route: str, answer: Any, status: int = 200) -> None:
        self.routes[f"{method} /api/{route}"] = answer if callable(answer) else (lambda _r: (status, answer))

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        handler = self.routes.get(f"{request.method} {request.url.path}")
        if handler is None:
            return httpx.Response(404, json={"error": {"code": "not-found", "message": "no function serves this path"}})
        status, body = handler(request)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.seen[index].content)

    def __call__(self, *argv: str, tty: bool = False, time: FakeTime | None = None) -> Ran:
        return run_cli(httpx.MockTransport(self.handle), *argv, tty=tty, time=time)


@pytest.fixture
def app() -> ScriptedApp:
    return ScriptedApp()
