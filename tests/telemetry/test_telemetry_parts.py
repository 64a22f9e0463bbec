"""The parts of telemetry on their own: the log formats and the correlation id, W3C context on messages,
dependency names, and turning Azure Monitor on only when it is configured."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from shared import logcontext, telemetry
from shared.pipeline.notification import Notification, Source, notification_message
from shared.queueing import OutgoingMessage
from shared.settings import Settings
from tests.telemetry.conftest import Spans


def _record(message: str = "hello %s", *args: Any, **extra: Any) -> logging.LogRecord:
    logcontext.install()
    logger = logging.getLogger("tests.telemetry.parts")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, args or ("world",), None, extra=extra)


def test_a_record_carries_the_bound_correlation_id_and_none_outside() -> None:
    with logcontext.bound("abc-123", trigger_name="marketo_feed"):
        inside = _record()
    outside = _record()
    assert (inside.correlation_id, inside.trigger_name) == ("abc-123", "marketo_feed")  # type: ignore[attr-defined]
    assert outside.correlation_id is None  # type: ignore[attr-defined]


def test_json_lines_have_the_message_the_id_and_the_extra_dimensions() -> None:
    with logcontext.bound("abc-123"):
        record = _record("decision %s", "lead", entity="lead", fields_written=2)
    line = json.loads(logcontext.JsonFormatter().format(record))
    assert line["message"] == "decision lead"
    assert line["correlation_id"] == "abc-123"
    assert (line["entity"], line["fields_written"]) == ("lead", 2)
    assert line["level"] == "INFO"
    assert line["time"].endswith("+00:00")


def test_the_text_format_shows_the_id_or_a_dash() -> None:
    with logcontext.bound("abc-123"):
        assert "[abc-123]: hello world" in logcontext.TextFormatter().format(_record())
    assert "[-]: hello world" in logcontext.TextFormatter().format(_record())


@pytest.mark.parametrize("value", ["", " ", "x" * 129, "a b", "tab\there", None, 12])
def test_what_is_not_an_id_is_not_taken_as_one(value: object) -> None:
    assert logcontext.usable_id(value) is None


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/data/v9.2/contacts(6f1c2c7e-2b0a-4c8e-9d3e-1f2a3b4c5d6e)", "/api/data/v9.2/contacts({id})"),
        ("/api/data/v9.2/accounts(accountnumber='ACME-1')", "/api/data/v9.2/accounts({id})"),
        ("/rest/v1/lead/12345.json", "/rest/v1/lead/{id}.json"),
        ("/rest/v1/leads/12345/merge.json", "/rest/v1/leads/{id}/merge.json"),
        ("/00000000-0000-0000-0000-0000000000aa/oauth2/v2.0/token", "/{id}/oauth2/v2.0/token"),
        ("/rest/v1/leads.json", "/rest/v1/leads.json"),
    ],
)
def test_a_dependency_is_named_by_its_operation_without_ids_or_key_values(path: str, name: str) -> None:
    assert telemetry.operation(path) == name


def test_a_sent_message_carries_the_producer_span_context_and_the_running_correlation_id(spans: Spans) -> None:
    sent: list[OutgoingMessage] = []

    class Sender:
        def send(self, queue: str, messages: Any) -> None:
            sent.extend(messages)

    note = Notification(source=Source.MARKETO_WEBHOOK, marketo_id="42")
    with logcontext.bound("corr-1"):
        message = notification_message(note)
        telemetry.traced_sender(Sender()).send("sync-changes", [message])
    (out,) = sent
    (producer,) = spans.named("sync-changes send")
    assert producer.kind is SpanKind.PRODUCER
    assert producer.context is not None
    parent = str(out.application_properties["traceparent"])
    assert parent == out.application_properties["Diagnostic-Id"]
    assert parent.startswith(f"00-{producer.context.trace_id:032x}-{producer.context.span_id:016x}-")
    assert out.correlation_id == "corr-1"
    assert json.loads(out.body)["correlation_id"] == "corr-1"  # the reconcile's logs find it in the body
    assert out.message_id == note.message_id  # the id Service Bus drops duplicates by is unchanged

    context = telemetry.context_of({b"traceparent": parent.encode()})  # as the SDK hands them back: bytes
    assert context is not None
    assert telemetry.context_of({"traceparent": "not a traceparent"}) is None
    assert telemetry.context_of(None) is None


def test_a_notification_keeps_its_own_correlation_id() -> None:
    note = Notification(source=Source.DATAVERSE_WEBHOOK, entity="lead", dynamics_id="a", correlation_id="dataverse")
    with logcontext.bound("trigger"):
        assert notification_message(note).correlation_id == "dataverse"


def test_azure_monitor_is_off_without_a_connection_string_and_on_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.monitor.opentelemetry as distro

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kw: calls.append(kw))
    monkeypatch.setattr(telemetry._Tracing, "configured", False)
    assert telemetry.configure(Settings()) is False
    assert calls == []

    monkeypatch.setattr(telemetry._Tracing, "configured", False)
    settings = Settings.model_validate(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=abc;Authorization=AAD",
            "AZURE_CLIENT_ID": "abc",
        }
    )
    assert telemetry.configure(settings) is True
    (options,) = calls
    assert options["connection_string"].startswith("InstrumentationKey=")
    assert options["instrumentation_options"]["httpx"] == {"enabled": False}  # ours name the dependencies
    assert "credential" in options
    assert telemetry.configure(settings) is False  # once per process
