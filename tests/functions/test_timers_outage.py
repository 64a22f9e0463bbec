"""The catch-up and Marketo feed timers while the service they read is down: the run that meets the outage opens
the service's circuit and returns with one WARNING (no traceback, so the Functions host counts no failure); while
the probe waits, runs are skipped with one INFO line and call nothing; the checkpoint never moves. The product
in-process on the simulated tenants, on a clock that moves only when the test says so."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from local.stack import IN_PROCESS_DATAVERSE, IN_PROCESS_MARKETO, LocalStack
from shared.pipeline.feeds import MARKETO_CHECKPOINT, delta_checkpoint
from tests.stacks import running_stack

FEEDS = "shared.pipeline.feeds"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Seen:
    """The hosts of every request the product sent to a simulator."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        self.hosts.append(request.url.host)

    def count(self, url: str) -> int:
        return self.hosts.count(httpx.URL(url).host)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def product(seen: Seen, clock: Clock) -> Iterator[LocalStack]:
    with running_stack(clock=clock, sleep=lambda seconds: None, observe=seen) as stack:
        yield stack


def _feed_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name in (FEEDS, "functions.timers") and r.levelno >= logging.INFO]


@pytest.mark.parametrize(
    ("timer", "service", "url", "checkpoint"),
    [
        ("marketo_feed", "marketo", IN_PROCESS_MARKETO, MARKETO_CHECKPOINT),
        ("dataverse_catchup", "dataverse", IN_PROCESS_DATAVERSE, delta_checkpoint("contact")),
    ],
)
def test_a_timer_rides_out_its_services_outage_without_failing_or_moving_its_checkpoint(
    product: LocalStack,
    seen: Seen,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    timer: str,
    service: str,
    url: str,
    checkpoint: str,
) -> None:
    store = product.services.store
    product.host.fire(timer)  # a first run, with the service up: the checkpoint is set
    before = store.get_checkpoint(checkpoint)
    assert before is not None
    tenants = product.tenants
    assert tenants is not None
    (tenants.marketo if service == "marketo" else tenants.dataverse).outage(3600)

    caplog.clear()
    with caplog.at_level(logging.INFO):
        product.host.fire(timer)  # meets the outage: returns normally
    (warning,) = _feed_records(caplog)
    assert warning.levelno == logging.WARNING
    assert (warning.exc_info, warning.exc_text) == (None, None)
    assert f"{service} unavailable" in warning.getMessage()
    circuit = product.services.circuits.get(service)
    assert circuit.is_open
    assert circuit.next_probe_at is not None
    after = store.get_checkpoint(checkpoint)
    assert after is not None
    assert after.value == before.value

    caplog.clear()
    calls = seen.count(url)
    clock.now += timedelta(seconds=10)  # the probe is 30 s out
    with caplog.at_level(logging.INFO):
        product.host.fire(timer)
    (skipped,) = _feed_records(caplog)
    assert (skipped.levelno, skipped.exc_info) == (logging.INFO, None)
    assert "skipped" in skipped.getMessage()
    assert f"{service} unavailable" in skipped.getMessage()
    assert seen.count(url) == calls  # nothing asked of the service
    assert product.services.circuits.get(service).failures == 1
    skipped_at = store.get_checkpoint(checkpoint)
    assert skipped_at is not None
    assert skipped_at.value == before.value


def test_a_timer_that_fails_for_another_reason_still_raises(
    product: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("shared.pipeline.feeds.catch_up_dataverse", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        product.host.fire("dataverse_catchup")
    assert not product.services.circuits.get("dataverse").is_open
