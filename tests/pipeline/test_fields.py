"""Field management requests as values: what a request may ask, the Quick Sync window, and every refusal typed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import InvalidRequest, NotPossible, Refused
from shared.pipeline import fields
from shared.pipeline.fields import parse_instant


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


def _parsed(body: Any) -> fields.AddFieldRequest:
    return fields.parse_request(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("body", "refusal", "code", "field"),
    [
        (
            {"dynamics": "new_x", "marketo": "x", "create_dynamics_column": True},
            NotPossible,
            "dynamics-column-creation-refused",
            None,
        ),
        (
            {"dynamics": "new_x", "marketo": "x", "create_in_dynamics": True},
            NotPossible,
            "dynamics-column-creation-refused",
            None,
        ),
        ({"dynamics": "new_x"}, InvalidRequest, "bad-request", "marketo"),
        ({"dynamics": "New X", "marketo": "x"}, InvalidRequest, "bad-request", "dynamics"),
        ({"dynamics": "new_x", "marketo": "x", "unknown": 1}, InvalidRequest, "bad-request", "body"),
        ({"dynamics": "new_x", "marketo": "x", "quick_sync": {"page_size": 0}}, InvalidRequest, "bad-request",
         "quick_sync.page_size"),
        ([1, 2], InvalidRequest, "bad-request", "body"),
    ],
)  # fmt: skip
def test_requests_that_cannot_be_used_are_refused_naming_the_field(
    body: Any, refusal: type[Refused], code: str, field: str | None
) -> None:
    with pytest.raises(refusal) as refused:
        _parsed(body)
    assert refused.value.code == code
    if isinstance(refused.value, InvalidRequest):
        assert refused.value.field == field


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="not JSON"):
        fields.parse_request(b"{nope")


def test_a_refusal_never_repeats_what_the_caller_sent() -> None:
    with pytest.raises(InvalidRequest) as unknown_key:
        _parsed({"dynamics": "new_x", "marketo": "x", "<img src=x>": 1})
    assert "<img" not in unknown_key.value.message
    assert "the keys are dynamics, marketo" in unknown_key.value.message
    options = fields.QuickSyncOptions(modified_from="<img src=x>")
    with pytest.raises(InvalidRequest) as bad_date:
        fields.quick_sync_window(options)
    assert "<img" not in bad_date.value.message
    assert bad_date.value.field == "quick_sync.modified_from"


def test_a_request_that_asks_not_to_create_a_dynamics_column_is_fine() -> None:
    parsed = _parsed({"dynamics": "new_x", "marketo": "x", "create_dynamics_column": False})
    assert isinstance(parsed, fields.AddFieldRequest)


def test_a_backwards_date_range_is_refused() -> None:
    options = fields.QuickSyncOptions(modified_from="2024-02-01", modified_to="2024-01-01")
    with pytest.raises(InvalidRequest, match="after"):
        fields.quick_sync_window(options)


def test_the_window_is_inclusive_of_the_last_day() -> None:
    options = fields.QuickSyncOptions(modified_from="2024-01-01", modified_to="2024-01-31")
    assert fields.quick_sync_window(options) == ("2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z")
