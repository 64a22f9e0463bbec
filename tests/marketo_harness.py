"""Shared fixtures for the Marketo client and simulator tests: each runs twice, in-process and over loopback.

One loopback server (a switchboard) serves every test of the session; each test plugs in its own simulator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.simulators.marketo.harness import (
    MODES,
    FakeClock,
    Harness,
    Mode,
    Switchboard,
    marketo_harness,
    shared_loopback,
)


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
