"""One trace per change, through the local host: the webhook, the enqueue, the reconcile and its calls to
Dataverse and Marketo; each decision a structured log record; no secret, token or field value in any of it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from local.stack import LocalStack
from shared import logcontext
from tests import log_guard
from tests.e2e.conftest import World
from tests.stacks import running_stack
from tests.telemetry.conftest import Spans

ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}
VALUES = ("Ada", "Lovelace", "ada@example.com", "Engineer", "Chief Scientist")


@pytest.fixture
def world() -> Iterator[World]:
    with running_stack() as stack:
        yield World(stack)


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def _everything(span: ReadableSpan) -> str:
    """A span as an exporter sees it: name, attributes, events and links, as text."""
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    links = [dict(link.attributes or {}) for link in span.links]
    return json.dumps([span.name, dict(span.attributes or {}), events, links], default=str)


def _webhook_trace(spans: Spans) -> list[ReadableSpan]:
    (webhook,) = spans.named("POST /api/dataverse/webhook")
    return spans.trace_of(webhook)


def test_a_dynamics_change_is_one_trace_from_the_webhook_to_the_marketo_write(world: World, spans: Spans) -> None:
    world.create("contact", **ADA)
    world.settle()

    trace = _webhook_trace(spans)
    (webhook,) = [s for s in trace if s.kind is SpanKind.SERVER]
    (enqueue,) = [s for s in trace if s.kind is SpanKind.PRODUCER and _parent(s) == _id(webhook)]
    consumers = [s for s in trace if s.kind is SpanKind.CONSUMER]
    assert [c.name for c in consumers] == ["reconcile"]
    (reconcile,) = consumers
    assert _parent(reconcile) == _id(enqueue)  # the consumer continues the trace the message carried
    assert enqueue.attributes is not None
    assert enqueue.attributes["messaging.destination.name"] == "sync-changes"
    assert webhook.attributes is not None
    assert webhook.attributes["http.status_code"] == 202

    below = [s for s in trace if s.kind is SpanKind.CLIENT and _parent(s) == _id(reconcile)]
    names = {s.name for s in below}
    assert any(n.startswith("Dataverse GET /api/data/v9.2/contacts") for n in names), names
    assert any(n.startswith("Marketo POST /rest/v1/leads.json") for n in names), names
    for span in below:  # a dependency: service, operation, the URL without its query string
        attributes = dict(span.attributes or {})
        assert "?" not in str(attributes["http.url"])
        assert isinstance(attributes["http.status_code"], int)
        assert attributes["peer.service"] in ("Dataverse", "Entra ID", "Marketo")


def test_the_correlation_id_travels_from_the_webhook_to_the_reconcile(world: World, spans: Spans) -> None:
    world.create("contact", **ADA)
    world.settle()
    trace = _webhook_trace(spans)
    (webhook,) = [s for s in trace if s.kind is SpanKind.SERVER]
    (reconcile,) = [s for s in trace if s.kind is SpanKind.CONSUMER]
    assert webhook.attributes is not None
    assert reconcile.attributes is not None
    correlation = webhook.attributes["sync.correlation_id"]
    assert correlation
    assert reconcile.attributes["sync.correlation_id"] == correlation


def test_each_decision_is_a_log_record_with_dimensions_and_no_field_value(
    world: World, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shared.decisions")
    contact = world.create("contact", **ADA)
    world.settle()
    person = world.person(email="ada@example.com")
    world.mk.change_lead(person["id"], title="Chief Scientist")  # the Marketo webhook: a new correlation id
    world.settle()

    records = [r for r in caplog.records if r.name == "shared.decisions"]
    mine = [r for r in records if getattr(r, "record_id", None) == contact]
    assert len(mine) >= 2, [r.getMessage() for r in records]
    for record in mine:
        assert record.entity == "contact"  # type: ignore[attr-defined]
        assert record.action  # type: ignore[attr-defined]
        assert isinstance(record.fields_written, int)  # type: ignore[attr-defined]
        assert record.correlation_id  # type: ignore[attr-defined]
        assert hasattr(record, "winner")
        line = logcontext.JsonFormatter().format(record)
        assert not [v for v in VALUES if v in line], line
    first, *_, last = mine
    assert first.fields_written > 0  # type: ignore[attr-defined]
    assert first.correlation_id != last.correlation_id  # type: ignore[attr-defined]  # two changes, two ids


def test_every_log_record_of_a_reconcile_carries_its_correlation_id(
    world: World, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world.create("contact", **ADA)
    world.settle()
    reconciled = [r for r in caplog.records if r.name == "functions.sync" and "reconciled" in r.getMessage()]
    assert reconciled
    assert all(getattr(r, "trigger_name", None) == "reconcile" for r in reconciled)
    assert all(getattr(r, "correlation_id", None) for r in reconciled)


def test_no_secret_token_or_field_value_reaches_a_span(world: World, spans: Spans) -> None:
    world.create("contact", **ADA)
    world.settle()
    person = world.person(email="ada@example.com")
    world.mk.change_lead(person["id"], title="Chief Scientist")
    world.settle()
    world.call("GET", "status")
    assert len(spans.all()) > 5
    text = "\n".join(_everything(s) for s in spans.all())
    stack: LocalStack = world.stack
    secrets = [
        stack.settings.marketo_client_secret.get_secret_value(),
        stack.settings.dataverse_client_secret.get_secret_value(),
        stack.settings.dataverse_webhook_secret.get_secret_value(),
        stack.settings.marketo_webhook_secret.get_secret_value(),
    ]
    assert not [s for s in secrets if s and s in text]
    assert log_guard.GUARD._found(text) == set()  # every client secret and access token the simulators know
    assert not [v for v in VALUES if v in text]
    assert "Bearer" not in text
    assert "client_secret" not in text


def test_a_timer_run_is_a_root_span_with_its_own_correlation_id(world: World, spans: Spans) -> None:
    world.fire("pending_sweep")
    (run,) = spans.named("timer pending_sweep")
    attributes: dict[str, Any] = dict(run.attributes or {})
    assert run.parent is None
    assert attributes["sync.correlation_id"]
