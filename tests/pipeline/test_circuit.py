"""Circuits, as rules: when a service's outage opens one, how long it waits before each probe, what closes it,
and which failures count as an outage at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.circuit import Circuit, ProbeSchedule, failed, succeeded
from shared.errors import QuotaExhausted, RetryLater, Throttled
from shared.pipeline.circuit import outage_of
from shared.store.tables import STORE_UNAVAILABLE

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCHEDULE = ProbeSchedule(timedelta(seconds=30), timedelta(minutes=15))


@pytest.mark.parametrize(
    ("failures", "delay_s"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 900), (7, 900), (60, 900)],
)
def test_the_probe_delay_doubles_per_failure_up_to_the_cap(failures: int, delay_s: int) -> None:
    assert SCHEDULE.delay(failures) == timedelta(seconds=delay_s)


def test_a_first_failure_opens_the_circuit_and_blocks_until_the_probe() -> None:
    opened = failed(Circuit("marketo"), T0, "503", SCHEDULE)
    assert (opened.open_since, opened.failures, opened.next_probe_at) == (T0, 1, T0 + timedelta(seconds=30))
    assert opened.blocks(T0 + timedelta(seconds=29))
    assert not opened.blocks(T0 + timedelta(seconds=30))
    assert opened.probe_due(T0 + timedelta(seconds=30))


def test_a_failed_probe_keeps_it_open_since_the_first_failure_and_waits_longer() -> None:
    opened = failed(Circuit("marketo"), T0, "503", SCHEDULE)
    probe_at = T0 + timedelta(seconds=30)
    again = failed(opened, probe_at, "503", SCHEDULE)
    assert (again.open_since, again.failures, again.next_probe_at) == (T0, 2, probe_at + timedelta(seconds=60))


def test_a_batch_failing_while_the_probe_waits_changes_nothing() -> None:
    opened = failed(Circuit("marketo"), T0, "503", SCHEDULE)
    assert failed(opened, T0 + timedelta(seconds=5), "503", SCHEDULE) == opened


def test_a_spent_quota_waits_for_its_reset() -> None:
    resets = T0 + timedelta(hours=7)
    opened = failed(Circuit("marketo"), T0, "607", SCHEDULE, resets_at=resets)
    assert opened.next_probe_at == resets


def test_a_retry_after_is_a_floor_for_the_probe() -> None:
    opened = failed(Circuit("dataverse"), T0, "429", SCHEDULE, retry_after=300)
    assert opened.next_probe_at == T0 + timedelta(seconds=300)


def test_a_success_closes_the_circuit() -> None:
    opened = failed(failed(Circuit("marketo"), T0, "503", SCHEDULE), T0 + timedelta(minutes=1), "503", SCHEDULE)
    closed = succeeded(opened)
    assert not closed.is_open
    assert not closed.blocks(T0)
    assert closed == Circuit("marketo")


def test_the_circuit_survives_its_document_form() -> None:
    opened = failed(Circuit("marketo"), T0, "503", SCHEDULE)
    assert Circuit.from_doc(opened.as_doc()) == opened
    assert Circuit.from_doc(Circuit("dataverse").as_doc()) == Circuit("dataverse")


def _raised_by(module: str, exc: Exception) -> Exception:
    """``exc`` as raised by code of ``module`` (a client's, the store's)."""
    scope: dict[str, object] = {"__name__": module, "exc": exc}
    exec("def boom():\n    raise exc\n", scope)  # noqa: S102 - a frame whose module is ``module``
    try:
        scope["boom"]()  # type: ignore[operator]
    except Exception as raised:
        return raised
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("module", "exc", "service"),
    [
        ("shared.marketo.caller", RetryLater("503"), "marketo"),
        ("shared.marketo.caller", Throttled("606"), "marketo"),
        ("shared.marketo.caller", QuotaExhausted("607", resets_at=T0), "marketo"),
        ("shared.dataverse.session", Throttled("429", retry_after=5), "dataverse"),
        ("shared.store.tables", RetryLater("down", code=STORE_UNAVAILABLE), None),  # the store: redelivered
        ("shared.dataverse.session", RetryLater("down", code=STORE_UNAVAILABLE), None),
        ("shared.pipeline.reconcile.persons", RetryLater("?"), None),  # not a client's: not an outage
        ("shared.marketo.caller", ValueError("bug"), None),
    ],
)
def test_only_a_clients_transient_or_quota_failure_is_an_outage(
    module: str, exc: Exception, service: str | None
) -> None:
    outage = outage_of(_raised_by(module, exc))
    assert (outage.service if outage else None) == service
    if isinstance(exc, QuotaExhausted) and outage is not None:
        assert outage.resets_at == T0
