"""The two webhooks fuzzed: recorded payloads mutated field by field, with random secrets, organisations and
content types, called through the FunctionApp's own functions with real ``azure.functions.HttpRequest`` objects.

For every request: no 5xx, a JSON ``{"error": {"code", "message"}}`` body for a 4xx, nothing on the queue (and no
row written, so no pending work marked) unless the answer is 202, no sent value and no secret in the answer, and
no exception escapes. A 202 is only for a body whose identities are intact.

Examples: 400 per webhook, derandomized, so CI sees the same requests on every run. ``FUZZ_EXAMPLES=2000``
runs 2,000 per endpoint from a fresh seed (Hypothesis prints how to reproduce a failure it finds).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.stack import LocalStack
from shared.pipeline.notification import parse_notification
from shared.store.model import Link
from tests.functions.fuzz_requests import (
    MARKER,
    Mutated,
    Watch,
    answered,
    bodies,
    fuzz_settings,
    headers,
    request,
    watch,
)

ROOT = Path(__file__).resolve().parents[2]
CONTEXT: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "dataverse" / "webhook_update_contact.json").read_text()
)
LINKED_LEAD = 1001
MARKETO_CALL: dict[str, Any] = {  # the template local/simulators/marketo/webhook.py posts
    "leadId": LINKED_LEAD,
    "email": "ann@example.com",
    "event": "changed",
    "source": "Web form fill",
    "changedAt": "2026-01-02T03:04:05Z",
    "changes": [{"field": "firstName", "newValue": "Ann", "oldValue": "An"}],
}
IDENTITIES = {"MessageName", "PrimaryEntityName", "PrimaryEntityId", "InitiatingUserId", "UserId", "CorrelationId"}
"""What the notification is built from: any mutation of these must be refused (or the call ignored)."""


@pytest.fixture(scope="module")
def fuzzed(module_stack: LocalStack) -> Watch:
    assert module_stack.tenants is not None
    secrets = module_stack.tenants.secrets
    s = module_stack.services
    s.store.save_link(Link("lead", "0d7c1d0e-0000-4000-8000-000000001001", str(LINKED_LEAD)))
    return watch(s, [secrets.dataverse_webhook_secret, secrets.marketo_webhook_secret])


def _dataverse_headers(stack: LocalStack) -> dict[str, str]:
    assert stack.tenants is not None
    return {
        stack.settings.dataverse_webhook_header: stack.tenants.secrets.dataverse_webhook_secret,
        "x-ms-dynamics-organization": stack.settings.dataverse_organization,
        "content-type": "application/json",
    }


def _valid_unless_refused(mutated: Mutated) -> bool:
    """Could this mutated context still be accepted? Not if it touched an identity, or holds what no parse takes."""
    if mutated.raw_kinds() & {"number", "deep", "surrogate"}:
        return False
    return not any(path[0] in IDENTITIES for path, _ in mutated.touched)


@fuzz_settings(400)
@given(data=st.data())
def test_the_dataverse_webhook_answers_any_request_with_a_4xx_or_a_202_for_a_whole_context(
    app_functions: dict[str, Any], module_stack: LocalStack, fuzzed: Watch, data: st.DataObject
) -> None:
    call = app_functions["dataverse_webhook"].get_user_function()
    head = data.draw(headers(_dataverse_headers(module_stack)), "headers")
    body, mutated = data.draw(bodies(CONTEXT), "body")
    params = data.draw(st.sampled_from([{}, {}, {"code": MARKER}]), "params")
    before = len(fuzzed.sender.sent)
    status = answered(call, request("POST", "dataverse/webhook", body=body, head=head, params=params), fuzzed)
    if status == 202:
        assert mutated is not None, "a body that is no context was queued"
        assert _valid_unless_refused(mutated), "a broken context was queued"
        ((_, message),) = fuzzed.sender.sent[before:]
        note = parse_notification(message.body)
        assert (note.entity, note.dynamics_id) == ("contact", CONTEXT["PrimaryEntityId"])


def _marketo_valid(body: bytes) -> bool:
    """The webhook's contract, written out separately from the code that enforces it."""
    try:
        payload = json.loads(body)
        json.dumps(payload, ensure_ascii=False).encode()
    except (ValueError, RecursionError, UnicodeError):
        return False
    if not isinstance(payload, dict):
        return False
    lead = payload.get("leadId", payload.get("id"))
    text = lead.strip() if isinstance(lead, str) else str(lead) if type(lead) is int else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and 0 < int(text) < 2**31):
        return False
    changes = payload.get("changes")
    if changes is not None and not (
        isinstance(changes, list)
        and all(
            isinstance(c, dict)
            and isinstance(c.get("field"), str)
            and 0 < len(c["field"]) <= 255
            and (c.get("newValue") is None or isinstance(c.get("newValue"), str | int | float))
            for c in changes
        )
    ):
        return False
    stamp = payload.get("changedAt") if payload.get("changedAt") is not None else payload.get("timestamp")
    return stamp in (None, "") or (isinstance(stamp, str) and len(stamp) <= 64) or type(stamp) is int


@fuzz_settings(400)
@given(data=st.data())
def test_the_marketo_webhook_queues_only_a_call_that_keeps_its_contract(
    app_functions: dict[str, Any], module_stack: LocalStack, fuzzed: Watch, data: st.DataObject
) -> None:
    assert module_stack.tenants is not None
    call = app_functions["marketo_webhook"].get_user_function()
    base_head = {module_stack.settings.marketo_webhook_header: module_stack.tenants.secrets.marketo_webhook_secret}
    head = data.draw(headers(base_head), "headers")
    base = data.draw(st.sampled_from([MARKETO_CALL, {"leadId": str(LINKED_LEAD)}, {"id": LINKED_LEAD}]), "base")
    body, _ = data.draw(bodies(base), "body")
    before = len(fuzzed.sender.sent)
    status = answered(call, request("POST", "marketo/webhook", body=body, head=head), fuzzed)
    if status == 202:
        assert _marketo_valid(body), "a call outside the contract was queued"
        ((_, message),) = fuzzed.sender.sent[before:]
        assert parse_notification(message.body).marketo_id == str(LINKED_LEAD)
