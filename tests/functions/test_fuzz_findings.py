"""What the fuzz tests found, one rule each, so the examples stay fixed however the strategies change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.core.json_text import MAX_DEPTH, JsonTextError, load_json
from shared.dataverse.context import ContextError, parse_context
from shared.errors import InvalidRequest
from shared.pipeline.fields import parse_request
from shared.pipeline.intake import from_marketo_webhook, marketo_changes

ROOT = Path(__file__).resolve().parents[2]
CONTEXT: dict[str, Any] = json.loads((ROOT / "tests/fixtures/dataverse/webhook_update_contact.json").read_text())
DEEP = b"[" * 10_000 + b"]" * 10_000


def _field(payload: Any) -> str | None:
    with pytest.raises(InvalidRequest) as refused:
        from_marketo_webhook(payload)
    return refused.value.field


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"leadId": 7, "changes": False}, "changes"),
        ({"leadId": 7, "changes": {"field": "email"}}, "changes"),
        ({"leadId": 7, "changes": ["email"]}, "changes[0]"),
        ({"leadId": 7, "changes": [{"field": 5, "newValue": "x"}]}, "changes[0].field"),
        ({"leadId": 7, "changes": [{"field": "email", "newValue": {"a": 1}}]}, "changes[0].newValue"),
        ({"leadId": 7, "changedAt": True}, "changedAt"),
        ({"leadId": 7, "changedAt": "x" * 65}, "changedAt"),
        ({"leadId": "\u0661\u0662\u0663"}, "leadId"),  # Arabic-Indic digits: str.isdigit() says yes
        ({"leadId": "\u00b2"}, "leadId"),
        ({"leadId": "9" * 4000}, "leadId"),
        ({"leadId": 2**31}, "leadId"),
        ({"leadId": 0}, "leadId"),
        ({"leadId": True}, "leadId"),
    ],
)  # fmt: skip
def test_a_marketo_call_is_refused_before_a_notification_is_built_from_a_bad_shape(payload: Any, field: str) -> None:
    assert _field(payload) == field


def test_a_marketo_call_in_the_template_shape_is_a_notification_with_its_changes() -> None:
    payload = {
        "leadId": " 0042 ",
        "changedAt": "2026-01-02T03:04:05Z",
        "changes": [{"field": "email", "newValue": "a"}],
    }
    note = from_marketo_webhook(payload)
    assert note.marketo_id == "42"
    assert note.dedupe_key is not None
    assert note.dedupe_key.startswith("42:2026-01-02T03:04:05Z:")  # and the digest of its changes
    assert marketo_changes(payload) == [("email", "a")]
    assert marketo_changes({"leadId": 42}) is None


@pytest.mark.parametrize(
    "body",
    [DEEP, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
     b'{"leadId": ' + b"9" * 5000 + b"}", b'{"leadId": "\\ud800"}', b'{"\\udfff": 1}', b"\xff\xfe{}"],
)  # fmt: skip
def test_json_text_no_caller_can_use_is_one_refusal_that_does_not_quote_it(body: bytes) -> None:
    with pytest.raises(JsonTextError) as refused:
        load_json(body)
    assert "ud800" not in str(refused.value)
    assert "9999" not in str(refused.value)


def test_json_text_at_the_depth_limit_and_a_nul_are_read() -> None:
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    assert load_json('{"a": "\\u0000\u00e9"}') == {"a": "\x00\u00e9"}


@pytest.mark.parametrize(
    "change",
    [
        {"InputParameters": [{"key": "\ud800", "value": None}]},
        {"PrimaryEntityName": "contact<x>"},
        {"PrimaryEntityName": "contact\x00"},
        {"MessageName": "Update Now"},
        {"Depth": 2**63},
        {"Stage": -1},
        {"OperationCreatedOn": "/Date(" + "9" * 5000 + ")/"},
    ],
)  # fmt: skip
def test_a_context_with_a_value_no_notification_may_carry_is_refused(change: dict[str, Any]) -> None:
    body = json.dumps({**CONTEXT, **change}).encode("utf-8", "surrogatepass")
    with pytest.raises(ContextError):
        parse_context(body)


def test_a_deeply_nested_context_is_refused() -> None:
    body = json.dumps(CONTEXT).encode().replace(b'"IsolationMode": 1', b'"IsolationMode": ' + DEEP)
    with pytest.raises(ContextError):
        parse_context(body)


@pytest.mark.parametrize(
    ("body", "field"),
    [(DEEP, "body"), (b'{"dynamics": "\\ud800", "marketo": "x"}', "body"),
     (json.dumps({"dynamics": "a" * 129, "marketo": "x"}).encode(), "dynamics")],
)  # fmt: skip
def test_a_field_add_request_that_cannot_be_read_is_refused_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_request(body)
    assert refused.value.field == field
