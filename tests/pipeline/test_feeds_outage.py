"""The timers' guard while the service they read is unavailable (``feeds.while_available``): skipped while the
circuit waits for its probe, the circuit told when a run meets an outage, anything else raised. Rules over a real
store, on an injected clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from shared.core.circuit import ProbeSchedule
from shared.errors import QuotaExhausted, RetryLater, Throttled
from shared.marketo.lanes import DAILY_RESERVE
from shared.pipeline.circuit import DATAVERSE, MARKETO, Circuits, Outage, outage_of
from shared.pipeline.feeds import Unavailable, while_available
from shared.store.sqlite import sqlite_store
from shared.store.tables import STORE_UNAVAILABLE

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FEEDS = "shared.pipeline.feeds"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def circuits(clock: Clock) -> Circuits:
    return Circuits(sqlite_store(), clock, ProbeSchedule(timedelta(seconds=30), timedelta(minutes=15)))


def _raising(module: str, exc: Exception) -> Callable[[], object]:
    """A callable that raises ``exc`` from code of ``module`` (a client's, the store's), as a timer run would."""
    scope: dict[str, object] = {"__name__": module, "exc": exc}
    exec("def run():\n    raise exc\n", scope)  # noqa: S102 - a frame whose module is ``module``
    return cast(Callable[[], object], scope["run"])


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == FEEDS]


def test_a_healthy_run_returns_its_result(circuits: Circuits) -> None:
    assert while_available(circuits, MARKETO, "Marketo feed", lambda: 42) == 42


@pytest.mark.parametrize(
    ("module", "service", "exc"),
    [
        ("shared.marketo.client", MARKETO, RetryLater("Marketo 503", retry_after=90)),
        ("shared.marketo.caller", MARKETO, Throttled("606 rate limited")),
        ("shared.dataverse.client", DATAVERSE, RetryLater("Dataverse 503")),
        ("shared.marketo.client", MARKETO, QuotaExhausted("607", resets_at=T0 + timedelta(hours=5))),
    ],
)
def test_a_run_that_meets_an_outage_opens_the_circuit_and_logs_one_warning_without_a_traceback(
    circuits: Circuits, caplog: pytest.LogCaptureFixture, module: str, service: str, exc: Exception
) -> None:
    with caplog.at_level(logging.INFO, logger=FEEDS):
        result = while_available(circuits, service, "a timer", _raising(module, exc))
    assert isinstance(result, Unavailable)
    assert (result.service, result.skipped) == (service, False)
    circuit = circuits.get(service)
    assert circuit.is_open
    assert result.next_probe_at == circuit.next_probe_at
    if isinstance(exc, QuotaExhausted):
        assert circuit.next_probe_at == T0 + timedelta(hours=5)
    if isinstance(exc, RetryLater) and exc.retry_after:
        assert circuit.next_probe_at == T0 + timedelta(seconds=90)
    (record,) = _records(caplog)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert f"{service} unavailable" in record.getMessage()


def test_while_the_probe_waits_the_run_is_skipped_with_one_info_line(
    circuits: Circuits, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    circuits.failed(Outage(MARKETO, "RetryLater: Marketo 503"))
    ran: list[int] = []
    with caplog.at_level(logging.INFO, logger=FEEDS):
        result = while_available(circuits, MARKETO, "Marketo feed", lambda: ran.append(1))
    assert ran == []
    assert isinstance(result, Unavailable)
    assert (result.skipped, result.next_probe_at) == (True, T0 + timedelta(seconds=30))
    (record,) = _records(caplog)
    assert (record.levelno, record.exc_info) == (logging.INFO, None)
    assert "Marketo feed skipped: marketo unavailable" in record.getMessage()
    assert circuits.get(MARKETO).failures == 1  # a skip changes nothing


def test_the_other_services_circuit_does_not_hold_the_run(circuits: Circuits) -> None:
    circuits.failed(Outage(DATAVERSE, "503"))
    assert while_available(circuits, MARKETO, "Marketo feed", lambda: "ran") == "ran"


def test_once_the_probe_is_due_a_failed_run_waits_longer(circuits: Circuits, clock: Clock) -> None:
    circuits.failed(Outage(MARKETO, "503"))
    clock.now += timedelta(seconds=30)
    result = while_available(circuits, MARKETO, "Marketo feed", _raising("shared.marketo.client", RetryLater("503")))
    assert isinstance(result, Unavailable)
    assert (circuits.get(MARKETO).failures, result.next_probe_at) == (2, clock.now + timedelta(seconds=60))


def test_a_run_that_gets_through_once_the_probe_is_due_closes_the_circuit(circuits: Circuits, clock: Clock) -> None:
    """With no pending work nothing else would probe: the timer's own run is the probe (found by chaos seed 60)."""
    circuits.failed(Outage(MARKETO, "503"))
    clock.now += timedelta(seconds=30)
    assert while_available(circuits, MARKETO, "Marketo feed", lambda: "ran") == "ran"
    assert not circuits.get(MARKETO).is_open


@pytest.mark.parametrize(
    ("module", "exc"),
    [
        ("shared.marketo.client", ValueError("a bug")),
        ("shared.pipeline.feeds", RetryLater("raised by no client")),
        ("shared.store.tables", RetryLater("the store is down", code=STORE_UNAVAILABLE)),
    ],
)
def test_anything_but_a_clients_outage_still_raises_and_leaves_the_circuit_closed(
    circuits: Circuits, module: str, exc: Exception
) -> None:
    with pytest.raises(type(exc)):
        while_available(circuits, MARKETO, "Marketo feed", _raising(module, exc))
    assert not circuits.get(MARKETO).is_open


def test_a_backfill_at_the_daily_reserve_waits_without_opening_the_circuit(circuits: Circuits) -> None:
    """The backfill lane's daily reserve (shared/marketo/lanes.py) is no outage: Marketo still answers and live
    changes go on, so the verification sweep just waits for the quota's reset and the circuit stays closed."""
    reset = T0 + timedelta(hours=6)
    reserve = QuotaExhausted("only the live reserve is left", code=DAILY_RESERVE, resets_at=reset)
    result = while_available(circuits, MARKETO, "verification sweep", _raising("shared.marketo.lanes", reserve))
    assert result == Unavailable(MARKETO, str(reserve), False, reset)
    assert not circuits.get(MARKETO).is_open
    assert outage_of(reserve) is None
