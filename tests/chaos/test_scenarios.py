"""The chaos suite in ``make test``: 500 seeded scenarios (``CHAOS_SCENARIOS`` to change it), in chunks so that
pytest-xdist can spread them over the cores. Each must converge with every rule holding (local/chaos/oracle.py);
a failure prints its seed and the command that replays it. ``make chaos N=5000`` runs more and prints the table."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from local.chaos.report import failures
from local.chaos.runner import run_many

SCENARIOS = int(os.environ.get("CHAOS_SCENARIOS", "500"))
CHUNK = 25


@pytest.fixture(autouse=True)
def _quiet_log() -> Iterator[None]:
    """Hours of simulated outage log thousands of retries; the verdict is what matters here."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("first", range(0, SCENARIOS, CHUNK), ids=lambda first: f"seeds-{first}-{first + CHUNK - 1}")
def test_every_scenario_converges_with_every_rule_holding(first: int) -> None:
    outcomes = run_many(range(first, min(first + CHUNK, SCENARIOS)))
    report = failures(outcomes)
    assert not report, report
