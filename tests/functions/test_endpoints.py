"""The HTTP functions end to end: bad input gets a 4xx that names the problem and never repeats what was sent;
a queue that cannot take a change is a 503 with Retry-After. One product serves the module (``module_stack``,
tests/conftest.py): every test here is refused, or undoes what it changed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.stack import IN_PROCESS_HOST, LocalStack
from shared.errors import RetryLater
from shared.queueing import OutgoingMessage

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = json.loads((ROOT / "tests" / "fixtures" / "dataverse" / "webhook_update_contact.json").read_text())
MARKER = "<img src=x onerror=alert(1)>"
ORGANIZATION = "contoso.crm.dynamics.com"


def call(stack: LocalStack, method: str, path: str, **kw: Any) -> httpx.Response:
    return stack.host.handle_http(httpx.Request(method, f"{IN_PROCESS_HOST}/api/{path}", **kw))


def dataverse_headers(stack: LocalStack, **extra: str) -> dict[str, str]:
    assert stack.tenants is not None
    secret = stack.tenants.secrets.dataverse_webhook_secret
    return {"x-sync-secret": secret, "x-ms-dynamics-organization": ORGANIZATION, **extra}


def marketo_headers(stack: LocalStack) -> dict[str, str]:
    assert stack.tenants is not None
    return {"x-sync-secret": stack.tenants.secrets.marketo_webhook_secret}


def refused(response: httpx.Response) -> tuple[int, str]:
    assert MARKER not in response.text
    assert MARKER.encode() not in response.content
    return response.status_code, response.json()["error"]["code"]


def test_a_bad_dataverse_context_is_refused_without_quoting_it(module_stack: LocalStack) -> None:
    context = {**CONTEXT, "PrimaryEntityId": MARKER}
    response = call(module_stack, "POST", "dataverse/webhook", headers=dataverse_headers(module_stack), json=context)
    assert refused(response) == (400, "bad-context")


def test_another_organization_is_refused_without_quoting_it(module_stack: LocalStack) -> None:
    headers = dataverse_headers(module_stack, **{"x-ms-dynamics-organization": MARKER})
    response = call(module_stack, "POST", "dataverse/webhook", headers=headers, json=CONTEXT)
    assert refused(response) == (403, "wrong-organization")


def test_a_wrong_secret_is_refused_and_the_right_one_never_shown(module_stack: LocalStack) -> None:
    response = call(module_stack, "POST", "marketo/webhook", headers={"x-sync-secret": MARKER}, content=b"{}")
    assert refused(response) == (401, "unauthorized")
    assert module_stack.tenants is not None
    assert module_stack.tenants.secrets.marketo_webhook_secret not in response.text


@pytest.mark.parametrize(
    ("payload", "code"),
    [({"leadId": MARKER}, "bad-payload"), ({"id": MARKER}, "bad-payload"), (MARKER, "bad-json")],
)
def test_a_bad_marketo_call_is_refused_without_quoting_it(module_stack: LocalStack, payload: Any, code: str) -> None:
    content = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    response = call(module_stack, "POST", "marketo/webhook", headers=marketo_headers(module_stack), content=content)
    assert refused(response) == (400, code)


@pytest.mark.parametrize(
    ("method", "path", "kw", "expected"),
    [
        ("POST", "mapping/lead/fields", {"json": {"dynamics": "new_x", "marketo": "x",
                                                  "quick_sync": {"modified_from": MARKER}}}, (400, "bad-request")),
        ("POST", "mapping/lead/fields", {"json": {"dynamics": "new_x", "marketo": "x", MARKER: 1}},
         (400, "bad-request")),
        ("POST", "mapping/lead/fields", {"json": {"dynamics": MARKER, "marketo": "x"}}, (400, "bad-request")),
        ("POST", "mapping/nosuchentity/fields", {"json": {"dynamics": "new_x", "marketo": "x"}}, (404, "not-found")),
        ("DELETE", "mapping/lead/fields/nosuchcolumn", {}, (404, "not-found")),
        ("GET", "errors", {"params": {"status": MARKER}}, (400, "bad-query")),
        ("GET", "errors", {"params": {"limit": MARKER}}, (400, "bad-query")),
        ("POST", "errors/nosuchid/retry", {}, (404, "not-found")),
        ("GET", "errors", {"params": {"direction": MARKER}}, (400, "bad-query")),
        ("GET", "errors", {"params": {"since": MARKER}}, (400, "bad-query")),
        ("GET", "errors", {"params": {"until": MARKER}}, (400, "bad-query")),
        ("GET", "errors", {"params": {"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}},
         (400, "bad-query")),
        ("GET", "errors.csv", {"params": {"status": MARKER}}, (400, "bad-query")),
        ("POST", "errors/retry", {"params": {"since": MARKER}}, (400, "bad-query")),
        ("GET", "errors/nosuchid", {}, (404, "not-found")),
        ("GET", f"errors/{MARKER}", {}, (404, "not-found")),
        ("POST", "errors/nosuchid/ignore", {}, (404, "not-found")),
        ("POST", "errors/nosuchid/resolve", {}, (404, "not-found")),
        ("POST", "marketo/persons/not-digits/sync-to-dynamics", {}, (400, "bad-id")),
        ("POST", "sync/pause", {"params": {"entity": MARKER}}, (404, "not-found")),
    ],
)  # fmt: skip
def test_admin_endpoints_refuse_bad_input_with_a_4xx_that_does_not_quote_it(
    module_stack: LocalStack, method: str, path: str, kw: dict[str, Any], expected: tuple[int, str]
) -> None:
    assert refused(call(module_stack, method, path, **kw)) == expected


def test_an_invalid_query_names_the_parameter(module_stack: LocalStack) -> None:
    response = call(module_stack, "GET", "errors", params={"status": "closed"})
    assert response.json()["error"]["field"] == "status"
    assert "open, retrying, resolved, ignored" in response.json()["error"]["message"]


class _Unavailable:
    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        raise RetryLater("Service Bus is not answering")


def test_a_queue_that_cannot_take_the_change_is_a_503_with_retry_after(
    module_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module_stack.services, "queue", _Unavailable())
    response = call(module_stack, "POST", "dataverse/webhook", headers=dataverse_headers(module_stack), json=CONTEXT)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "queue-unavailable"
