"""Field management as values: type derivation from Dataverse metadata, the built field, request parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.mapping import FieldState, FieldType, LookupPart
from shared.pipeline import fields
from shared.pipeline.fields import ColumnFacts, build_field, derive_type, parse_instant
from shared.pipeline.quicksync import JobState, QuickSyncJob, range_filter
from shared.pipeline.webhooks import Reply
from shared.store.model import Checkpoint

CHOICES = {1: "Bronze", 2: "Silver"}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (ColumnFacts("String", 100), FieldType.TEXT),
        (ColumnFacts("Memo"), FieldType.MEMO),
        (ColumnFacts("Integer"), FieldType.INTEGER),
        (ColumnFacts("BigInt"), FieldType.BIGINT),
        (ColumnFacts("Decimal"), FieldType.DECIMAL),
        (ColumnFacts("Double"), FieldType.DOUBLE),
        (ColumnFacts("Money"), FieldType.MONEY),
        (ColumnFacts("Boolean", options={0: "No", 1: "Yes"}), FieldType.BOOLEAN),
        (ColumnFacts("DateTime"), FieldType.DATETIME),
        (ColumnFacts("DateTime", date_only=True), FieldType.DATE),
        (ColumnFacts("Picklist", options=CHOICES), FieldType.CHOICE),
        (ColumnFacts("State", options=CHOICES), FieldType.CHOICE),
        (ColumnFacts("Status", options=CHOICES), FieldType.CHOICE),
        (ColumnFacts("MultiSelectPicklist", options=CHOICES), FieldType.MULTI_CHOICE),
        (ColumnFacts("Virtual", options=CHOICES), FieldType.MULTI_CHOICE),
        (ColumnFacts("Lookup"), FieldType.LOOKUP),
        (ColumnFacts("Customer"), FieldType.LOOKUP),
        (ColumnFacts("Owner"), FieldType.LOOKUP),
    ],
)
def test_value_type_follows_the_dataverse_attribute_type(facts: ColumnFacts, expected: FieldType) -> None:
    assert derive_type(facts) is expected


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (ColumnFacts("Uniqueidentifier"), "columns of type Uniqueidentifier cannot be synced"),
        (ColumnFacts("PartyList"), "columns of type PartyList cannot be synced"),
        (ColumnFacts("EntityName"), "columns of type EntityName cannot be synced"),
        (ColumnFacts("Image"), "columns of type Image cannot be synced"),
        (ColumnFacts("Virtual"), "columns of type Virtual cannot be synced unless they are multi-select choices"),
    ],
)
def test_unsupported_types_are_named(facts: ColumnFacts, reason: str) -> None:
    assert derive_type(facts) == reason
    assert not isinstance(derive_type(facts), FieldType)


@pytest.mark.parametrize(
    ("facts", "extra", "expected"),
    [
        (
            ColumnFacts("String", 80),
            {"marketo_length": 255},
            {"type": "text", "dynamics_max_length": 80, "max_length": 255},
        ),
        (ColumnFacts("Memo", None), {}, {"type": "memo"}),
        (
            ColumnFacts("Picklist", options={3: "Gold", 1: "Bronze"}),
            {},
            {"type": "choice", "options": [{"value": 1, "label": "Bronze"}, {"value": 3, "label": "Gold"}]},
        ),
        (ColumnFacts("Lookup"), {"lookup_part": LookupPart.NAME}, {"type": "lookup", "lookup_part": "name"}),
        (ColumnFacts("Money"), {"one_way": True}, {"type": "money", "one_way": True}),
        (ColumnFacts("DateTime", date_only=True), {}, {"type": "date"}),
    ],
)
def test_the_built_field_carries_metadata_and_waits_for_its_quick_sync(
    facts: ColumnFacts, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    built = build_field(facts, dynamics="new_x", marketo="x", **extra)
    assert not isinstance(built, str)
    assert built.state is FieldState.AWAITING_QUICK_SYNC
    dumped = built.model_dump(mode="json", exclude_defaults=True)
    assert {k: dumped[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("facts", "extra", "problem"),
    [
        (ColumnFacts("Picklist", options={}), {}, "choice field needs its option metadata"),
        (ColumnFacts("Picklist", options={1: "A", 2: "a"}), {}, "option labels must be unique"),
        (ColumnFacts("MultiSelectPicklist", options={1: "A;B"}), {}, "cannot contain ';'"),
        (ColumnFacts("Picklist", options={1: ""}), {}, "at least 1 character"),
        (ColumnFacts("String", 10), {"lookup_part": LookupPart.ID}, "lookup_part is only for lookup columns"),
        (ColumnFacts("Uniqueidentifier"), {}, "cannot be synced"),
    ],
)
def test_metadata_that_does_not_fit_is_refused_with_the_reason(
    facts: ColumnFacts, extra: dict[str, Any], problem: str
) -> None:
    built = build_field(facts, dynamics="new_x", marketo="x", **extra)
    assert isinstance(built, str)
    assert problem in built


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("2024-03-01", False, "2024-03-01T00:00:00Z"),
        ("2024-03-01", True, "2024-03-01T23:59:59Z"),
        ("2024-03-01T10:20:30Z", False, "2024-03-01T10:20:30Z"),
        ("2024-03-01T10:20:30+02:00", True, "2024-03-01T08:20:30Z"),
        ("2024-03-01T10:20:30", False, "2024-03-01T10:20:30Z"),  # naive: UTC
    ],
)
def test_range_bounds_are_utc_instants(text: str, end_of_day: bool, expected: str) -> None:
    assert parse_instant(text, end_of_day=end_of_day) == expected


def test_range_filter_on_modifiedon() -> None:
    assert range_filter(None, None) is None
    assert range_filter("2024-01-01T00:00:00Z", None) == "modifiedon ge 2024-01-01T00:00:00Z"
    both = range_filter("2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z")
    assert both == "modifiedon ge 2024-01-01T00:00:00Z and modifiedon le 2024-01-31T23:59:59Z"


def _parsed(body: Any) -> Any:
    return fields.parse_request(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"dynamics": "new_x", "marketo": "x", "create_dynamics_column": True},
            422,
            "dynamics-column-creation-refused",
        ),
        ({"dynamics": "new_x", "marketo": "x", "create_in_dynamics": True}, 422, "dynamics-column-creation-refused"),
        ({"dynamics": "new_x"}, 400, "bad-request"),
        ({"dynamics": "New X", "marketo": "x"}, 400, "bad-request"),
        ({"dynamics": "new_x", "marketo": "x", "unknown": 1}, 400, "bad-request"),
        ({"dynamics": "new_x", "marketo": "x", "quick_sync": {"page_size": 0}}, 400, "bad-request"),
        ([1, 2], 400, "bad-request"),
    ],
)
def test_requests_that_cannot_be_used_are_refused(body: Any, status: int, code: str) -> None:
    reply = _parsed(body)
    assert isinstance(reply, Reply)
    assert (reply.status, reply.body["error"]["code"]) == (status, code)


def test_a_request_that_asks_not_to_create_a_dynamics_column_is_fine() -> None:
    parsed = _parsed({"dynamics": "new_x", "marketo": "x", "create_dynamics_column": False})
    assert isinstance(parsed, fields.AddFieldRequest)


def test_a_backwards_date_range_is_refused() -> None:
    options = fields.QuickSyncOptions(modified_from="2024-02-01", modified_to="2024-01-01")
    reply = fields.quick_sync_window(options)
    assert isinstance(reply, Reply)
    assert reply.status == 400
    assert "after" in reply.body["error"]["message"]


def test_a_job_survives_the_trip_through_its_checkpoint() -> None:
    job = QuickSyncJob(
        id="j1",
        entity="lead",
        column="new_x",
        marketo_field="x",
        state=JobState.RUNNING,
        created_at="2024-01-01T00:00:00Z",
        next_link="https://org/api/data/v9.2/leads?$skiptoken=abc",
        pages=3,
        records_done=12,
    )
    checkpoint = Checkpoint(job.checkpoint_name, json.dumps(job.to_doc()), datetime.now(UTC), "etag-1")
    again = QuickSyncJob.from_checkpoint(checkpoint)
    assert again == job
    assert again.etag == "etag-1"
    public = again.public()
    assert "next_link" not in public
    assert public["resumable"] is True
    assert public["state"] == "running"
