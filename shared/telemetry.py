"""Telemetry: one trace per change, from the trigger through the queue to the reconcile and its writes.

- **Traces** (OpenTelemetry). Each trigger opens a span (:func:`traced_http`, :func:`traced_messages`,
  :func:`traced_timer`) and binds its correlation id for the logs (``shared.logcontext``). Messages sent to the
  changes queue go out under a producer span (:class:`TracedSender`) that writes its W3C trace context on each
  message, as the ``traceparent`` and ``Diagnostic-Id`` application properties (what the Azure Service Bus SDK and
  the Functions host read); the reconcile's consumer span continues that trace. Dataverse, Entra ID and Marketo
  calls are client spans (:class:`TracedTransport`, put on the clients by the composition root), which Application
  Insights shows as dependencies named service + method + path, ids replaced by ``{id}``, no query string.
- **Decisions**: each reconcile decision is one log record (:func:`log_decisions`) whose extra attributes
  (entity, record id, action, winner, fields written) become custom dimensions; never a field value.
- **Export**: :func:`configure` (called once from ``function_app.py``) turns on ``azure-monitor-opentelemetry``
  when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (the infrastructure sets it in Azure); otherwise nothing is
  exported and the spans cost next to nothing (OpenTelemetry's no-op tracer). docs/telemetry.md has the queries.

Nothing here records a body, a header value, a query string, a token or a field value.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import logcontext
from shared.queueing import OutgoingMessage, QueueSender

if TYPE_CHECKING:
    from shared.core.policy import Decision
    from shared.pipeline.notification import Notification
    from shared.settings import Settings

log = logging.getLogger(__name__)
decisions_log = logging.getLogger("shared.decisions")

TRACER_NAME = "dynamics-marketo-sync"
TRACEPARENT = "traceparent"
DIAGNOSTIC_ID = "Diagnostic-Id"  # the Service Bus SDK's name for the same W3C value
CORRELATION_HEADERS = ("x-ms-correlation-request-id", "x-correlation-id", "x-request-id")
PROPAGATOR = TraceContextTextMapPropagator()

R = TypeVar("R")


class _Tracing:
    provider: TracerProvider | None = None  # tests install an SDK provider; None: the global one
    configured = False
    lock = threading.Lock()


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Record spans with ``provider`` (a test's in-memory one); ``None`` goes back to the global provider."""
    _Tracing.provider = provider


def tracer() -> Tracer:
    provider = _Tracing.provider or trace.get_tracer_provider()
    return provider.get_tracer(TRACER_NAME)


def configure(settings: Settings) -> bool:
    """Once per process: the correlation id on every log record; Azure Monitor export when a connection string is
    set (True when it was turned on)."""
    with _Tracing.lock:
        logcontext.install()
        if _Tracing.configured:
            return False
        _Tracing.configured = True
        connection = settings.applicationinsights_connection_string.get_secret_value()
        if not connection:
            return False
        from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415 - heavy, only when exporting

        options: dict[str, Any] = {
            "connection_string": connection,
            # Our own client spans name the dependency by service and operation and drop query strings.
            "instrumentation_options": {"httpx": {"enabled": False}, "urllib3": {"enabled": False}},
            "enable_live_metrics": False,
        }
        if "authorization=aad" in settings.applicationinsights_authentication_string.lower():
            from azure.identity import ManagedIdentityCredential  # noqa: PLC0415 - only for Entra-authenticated export

            client_id = settings.azure_client_id or None
            options["credential"] = ManagedIdentityCredential(client_id=client_id)
        configure_azure_monitor(**options)
        log.info("telemetry: exporting traces and logs to Application Insights")
        return True


# --- Trace context on messages ------------------------------------------------------------------------------


def trace_properties() -> dict[str, str]:
    """The running span's W3C context, as message application properties (empty when nothing is recorded)."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    parent = carrier.get(TRACEPARENT)
    return {TRACEPARENT: parent, DIAGNOSTIC_ID: parent} if parent else {}


def context_of(properties: Mapping[Any, Any] | None) -> Context | None:
    """The trace context a received message carries, or None."""
    if not properties:
        return None
    found = {logcontext.usable_id(k) or "": v for k, v in properties.items()}
    parent = logcontext.usable_id(found.get(TRACEPARENT) or found.get(DIAGNOSTIC_ID))
    if parent is None:
        return None
    extracted = PROPAGATOR.extract({TRACEPARENT: parent}, context=Context())
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


class TracedSender:
    """A queue sender whose sends are producer spans, each message carrying the span's trace context and the
    running correlation id (when it has none of its own)."""

    def __init__(self, inner: QueueSender) -> None:
        self.inner = inner

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        attributes: dict[str, Any] = {
            "messaging.system": "servicebus",
            "messaging.operation": "publish",
            "messaging.destination.name": queue,
            "messaging.batch.message_count": len(messages),
        }
        with tracer().start_as_current_span(f"{queue} send", kind=SpanKind.PRODUCER, attributes=attributes):
            carried = trace_properties()
            correlation = logcontext.correlation_id()
            stamped = [
                replace(
                    m,
                    correlation_id=m.correlation_id or correlation,
                    application_properties={**m.application_properties, **carried},
                )
                for m in messages
            ]
            self.inner.send(queue, stamped)


def traced_sender(sender: QueueSender) -> QueueSender:
    return sender if isinstance(sender, TracedSender) else TracedSender(sender)


# --- Trigger edges ---------------------------------------------------------------------------------------------


@contextmanager
def _trigger(
    name: str,
    trigger_name: str,
    kind: SpanKind,
    *,
    parent: Context | None,
    correlation: str | None,
    attributes: Mapping[str, Any],
    links: Sequence[Link] = (),
) -> Iterator[trace.Span]:
    """A trigger's span, started from ``parent`` only (never from whatever ran before on this thread), with its
    correlation id bound for the logs."""
    with (
        logcontext.bound(correlation, trigger_name=trigger_name),
        tracer().start_as_current_span(
            name, context=parent or Context(), kind=kind, attributes=dict(attributes), links=list(links)
        ) as span,
    ):
        if correlation is not None:
            span.set_attribute("sync.correlation_id", correlation)
        yield span


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """The trigger's input: the one argument, however the host passes it (by position or by binding name)."""
    return args[0] if args else next(iter(kwargs.values()), None)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return logcontext.usable_id(value) if value is not None else None


def traced_http(handler: Callable[..., R]) -> Callable[..., R]:
    """Put under ``@bp.route`` (above ``@answers_errors``): the request is a server span, child of the caller's
    ``traceparent`` if it sent one; the correlation id is the caller's (Dataverse's ``x-ms-correlation-request-id``)
    or a new one."""

    @functools.wraps(handler)
    def traced(*args: Any, **kwargs: Any) -> R:
        req = _argument(args, kwargs)
        url = urlsplit(str(getattr(req, "url", "")))
        headers = getattr(req, "headers", None)
        parent_header = _header(headers, TRACEPARENT)
        parent = PROPAGATOR.extract({TRACEPARENT: parent_header}, context=Context()) if parent_header else None
        correlation = (
            next((c for name in CORRELATION_HEADERS if (c := _header(headers, name))), None)
            or logcontext.new_correlation_id()
        )
        method = str(getattr(req, "method", "") or "").upper()
        attributes = {
            "http.request.method": method,
            "http.method": method,
            "url.path": url.path,
            "http.route": url.path,
            "http.url": f"{url.scheme}://{url.netloc}{url.path}" if url.netloc else url.path,
        }
        with _trigger(
            f"{method} {url.path}", handler.__name__, SpanKind.SERVER,
            parent=parent, correlation=correlation, attributes=attributes,
        ) as span:  # fmt: skip
            response = handler(*args, **kwargs)
            status = getattr(response, "status_code", None)
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("http.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            return response

    return traced


def traced_messages(handler: Callable[..., R]) -> Callable[..., R]:
    """Put under ``@bp.service_bus_queue_trigger``: the batch is a consumer span, child of the first message's
    trace context and linked to every other one; the correlation id is bound when the batch has one."""

    @functools.wraps(handler)
    def traced(*args: Any, **kwargs: Any) -> R:
        messages = _argument(args, kwargs)
        listed = list(messages) if isinstance(messages, list | tuple) else [messages]
        contexts = [c for m in listed if (c := context_of(getattr(m, "application_properties", None)))]
        links: list[Link] = []
        seen: set[int] = set()
        for other in contexts[1:]:
            span_context = trace.get_current_span(other).get_span_context()
            if span_context.span_id not in seen:
                seen.add(span_context.span_id)
                links.append(Link(span_context))
        correlations = {cid for m in listed if (cid := logcontext.usable_id(getattr(m, "correlation_id", None)))}
        attributes = {
            "messaging.system": "servicebus",
            "messaging.operation": "process",
            "messaging.batch.message_count": len(listed),
        }
        with _trigger(
            handler.__name__, handler.__name__, SpanKind.CONSUMER,
            parent=contexts[0] if contexts else None,
            correlation=next(iter(correlations)) if len(correlations) == 1 else None,
            attributes=attributes, links=links[:64],
        ):  # fmt: skip
            return handler(*args, **kwargs)

    return traced


def traced_timer(handler: Callable[..., R]) -> Callable[..., R]:
    """Put under ``@bp.timer_trigger``: each run is a root span with a new correlation id."""

    @functools.wraps(handler)
    def traced(*args: Any, **kwargs: Any) -> R:
        with _trigger(
            f"timer {handler.__name__}", handler.__name__, SpanKind.INTERNAL,
            parent=None, correlation=logcontext.new_correlation_id(), attributes={"sync.timer": handler.__name__},
        ):  # fmt: skip
            return handler(*args, **kwargs)

    return traced


# --- Dependencies: the HTTP calls to Dataverse, Entra ID and Marketo ----------------------------------------------

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEYS = re.compile(r"\([^)]*\)")  # contacts(<guid>), accounts(accountnumber='...'): ids or alternate-key values
_NUMBER = re.compile(r"(?<=/)\d+(?=(?:\.json)?(?:/|$))")  # Marketo's /lead/123.json, /leads/123/...


def operation(path: str) -> str:
    """A request path with every id and key value as ``{id}``: a low-cardinality operation name, no data."""
    return _NUMBER.sub("{id}", _KEYS.sub("({id})", _GUID.sub("{id}", path)))


def _endpoint(url: httpx.URL | str) -> str:
    parsed = httpx.URL(url) if isinstance(url, str) else url
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.host.lower()}:{port}"


class TracedTransport(httpx.BaseTransport):
    """Every request is a client span: ``<service> <METHOD> <path with ids as {id}>``, the status code, the URL
    without its query string. Bodies, headers and query strings are never recorded."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.services: dict[str, str] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        service = self.services.get(_endpoint(url), url.host)
        path = operation(url.path)
        attributes = {
            "peer.service": service,
            "server.address": url.host,
            "http.request.method": request.method,
            "http.method": request.method,
            "url.full": f"{url.scheme}://{url.netloc.decode()}{path}",
            "http.url": f"{url.scheme}://{url.netloc.decode()}{path}",
        }
        with tracer().start_as_current_span(
            f"{service} {request.method} {path}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            response = self.inner.handle_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            span.set_attribute("http.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_status(Status(StatusCode.ERROR))
            return response

    def close(self) -> None:
        self.inner.close()


def trace_client(client: httpx.Client, services: Mapping[str, str]) -> httpx.Client:
    """Make ``client``'s calls client spans, named by service: ``services`` maps a base URL to its name (one
    client may serve several services; tracing it again only adds names)."""
    transport = client._transport  # httpx keeps the client's own transport here (mounts are not used)
    if not isinstance(transport, TracedTransport):
        transport = TracedTransport(transport)
        client._transport = transport
    transport.services.update({_endpoint(url): name for url, name in services.items() if url})
    return client


# --- Decisions -----------------------------------------------------------------------------------------------------


def decision_dimensions(entity: str, record_id: str, decision: Decision) -> dict[str, Any]:
    """A decision's custom dimensions: what was decided and how much was written, never a value."""
    winners = sorted({f.winner.value for f in decision.collisions if f.winner is not None})
    return {
        "entity": entity,
        "record_id": record_id,
        "action": decision.action.value,
        "reason": decision.reason,
        "winner": ",".join(winners) or None,
        "fields_written": len(decision.marketo_writes) + len(decision.dynamics_writes),
        "fields_to_marketo": len(decision.marketo_writes),
        "fields_to_dynamics": len(decision.dynamics_writes),
        "collisions": len(decision.collisions),
        "field_errors": len(decision.errors),
    }


def log_decisions(decisions: Iterable[tuple[str, str, Decision]], notes: Sequence[Notification]) -> None:
    """One structured log record per decision, with the correlation id of the notification that caused it: at INFO
    when it wrote, collided or failed (naming the fields, never their values), at DEBUG when there was nothing to do."""
    by_record = {n.dynamics_id: n.correlation_id for n in notes if n.dynamics_id and n.correlation_id}
    batch = {n.correlation_id for n in notes if n.correlation_id}
    fallback = next(iter(batch)) if len(batch) == 1 else logcontext.correlation_id()
    for entity, record_id, decision in decisions:
        dimensions = decision_dimensions(entity, record_id, decision)
        summary = decision.summary()
        fields = {k: summary[k] for k in ("to_marketo", "to_dynamics", "collisions", "errors") if summary[k]}
        level = logging.INFO if fields else logging.DEBUG
        with logcontext.bound(by_record.get(record_id.lower(), fallback)):
            decisions_log.log(
                level,
                "decision %s %s: %s, %d field(s) written%s%s",
                entity,
                record_id,
                dimensions["action"],
                dimensions["fields_written"],
                f", collision won by {dimensions['winner']}" if dimensions["winner"] else "",
                f" {fields}" if fields else "",
                extra=dimensions,
            )
