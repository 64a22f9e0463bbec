"""host.json agrees with itself and with the queues it consumes (the reasons are in docs/host-json.md)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from tests.infra import bicep

HOST_JSON = bicep.INFRA.parent / "host.json"


@pytest.fixture(scope="module")
def host() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(HOST_JSON.read_text(encoding="utf-8"))
    return parsed


@pytest.fixture(scope="module")
def service_bus(host: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = host["extensions"]["serviceBus"]
    return settings


def hms(value: str) -> timedelta:
    hours, minutes, seconds = value.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def iso_minutes(value: str) -> timedelta:
    match = re.fullmatch(r"PT(\d+)M", value)
    assert match, value
    return timedelta(minutes=int(match.group(1)))


def queue_lock_durations() -> list[timedelta]:
    return [
        iso_minutes(q.properties["lockDuration"])
        for q in bicep.resources_of_type("Microsoft.ServiceBus/namespaces/queues")
    ]


def test_version_and_extension_bundle(host: dict[str, Any]) -> None:
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}


def test_function_timeout_leaves_room_for_an_eight_minute_timer_budget(host: dict[str, Any]) -> None:
    assert hms(host["functionTimeout"]) == timedelta(minutes=10)


def test_batches_fill_several_marketo_calls_of_300_records(service_bus: dict[str, Any]) -> None:
    """The reconcile splits a batch into 300-record Marketo calls per object; a batch spanning several object
    types must still fill them, so it holds a multiple of 300."""
    assert service_bus["maxMessageBatchSize"] >= 300
    assert service_bus["maxMessageBatchSize"] % 300 == 0
    assert 1 <= service_bus["minMessageBatchSize"] < service_bus["maxMessageBatchSize"]


def test_batch_wait_is_at_most_half_the_lock(service_bus: dict[str, Any]) -> None:
    """Microsoft: the longest allowed wait is 50% of the entity's lock duration, or locks are lost."""
    wait = hms(service_bus["maxBatchWaitTime"])
    assert all(wait <= lock / 2 for lock in queue_lock_durations())


def test_single_message_lock_renewal_covers_the_longest_run(host: dict[str, Any], service_bus: dict[str, Any]) -> None:
    assert hms(service_bus["maxAutoLockRenewalDuration"]) >= hms(host["functionTimeout"])


def test_messages_are_settled_by_the_host_and_not_prefetched(service_bus: dict[str, Any]) -> None:
    assert service_bus["autoCompleteMessages"] is True
    assert service_bus["prefetchCount"] == 0


def test_concurrency_per_instance_stays_under_marketos_shared_limit(service_bus: dict[str, Any]) -> None:
    assert 1 <= service_bus["maxConcurrentCalls"] <= 10


def test_sampling_never_drops_requests_or_exceptions(host: dict[str, Any]) -> None:
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert sampling["isEnabled"] is True
    assert {"Request", "Exception"} <= set(sampling["excludedTypes"].split(";"))
