"""Runs a FunctionApp's registered functions here: HTTP on loopback, Service Bus queues from the local broker,
timers on their NCRONTAB schedules.

Everything is discovered from the app's own bindings (``get_functions()``), so there is no second list of
routes, queues or schedules to drift: a ``%SETTING%`` in a binding is resolved from the environment the way the
Functions host resolves app settings.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
import httpx
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

from local.broker import Delivered, LocalBroker
from local.loopback import LoopbackServer, MiB, ServerLimits
from local.ncrontab import Schedule

log = logging.getLogger("localhost")
_SETTING = re.compile(r"^%([^%]+)%$")


def resolve(value: str, env: Mapping[str, str]) -> str:
    """``%NAME%`` -> the app setting NAME, as the Functions host does; anything else as is."""
    match = _SETTING.match(value)
    if not match:
        return value
    name = match.group(1)
    if name not in env:
        raise KeyError(f"binding refers to app setting '{name}', which is not set")
    return env[name]


@dataclass(frozen=True)
class HttpRoute:
    name: str
    route: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    arg: str
    call: Callable[..., Any]
    auth_level: str = "FUNCTION"  # the binding's authLevel: ANONYMOUS, FUNCTION or ADMIN

    @property
    def needs_key(self) -> bool:
        return self.auth_level != "ANONYMOUS"


@dataclass(frozen=True)
class QueueConsumer:
    name: str
    queue: str
    many: bool
    arg: str
    call: Callable[..., Any]


@dataclass(frozen=True)
class TimerJob:
    name: str
    schedule: Schedule
    arg: str
    call: Callable[..., Any]


@dataclass
class Discovered:
    http: list[HttpRoute] = field(default_factory=list)
    queues: list[QueueConsumer] = field(default_factory=list)
    timers: list[TimerJob] = field(default_factory=list)


def _route_pattern(route: str) -> re.Pattern[str]:
    parts = []
    for piece in route.strip("/").split("/"):
        m = re.fullmatch(r"\{(\w+)(?::[^}]*)?(\?)?\}", piece)
        parts.append(f"(?P<{m.group(1)}>[^/]+)" if m else re.escape(piece))
    return re.compile("^/api/" + "/".join(parts) + "/?$")


_REGISTERED: dict[int, tuple[func.FunctionApp, list[Any]]] = {}
_REGISTERED_LOCK = threading.Lock()


def registered_functions(app: func.FunctionApp) -> list[Any]:
    """``app.get_functions()``, once: the library refuses a second call on the same app ("not unique")."""
    with _REGISTERED_LOCK:
        cached = _REGISTERED.get(id(app))
        if cached is None or cached[0] is not app:
            cached = (app, list(app.get_functions()))
            _REGISTERED[id(app)] = cached
        return cached[1]


def discover(app: func.FunctionApp, env: Mapping[str, str]) -> Discovered:
    found = Discovered()
    for fn in registered_functions(app):
        name = fn.get_function_name()
        call = fn.get_user_function()
        trigger = json.loads(next(b for b in fn.get_raw_bindings() if '"direction": "IN"' in b and "Trigger" in b))
        kind = trigger["type"]
        if kind == "httpTrigger":
            route = trigger.get("route") or name
            methods = frozenset(m.upper() for m in (trigger.get("methods") or ["GET", "POST"]))
            level = str(trigger.get("authLevel") or "FUNCTION").upper()
            found.http.append(HttpRoute(name, route, methods, _route_pattern(route), trigger["name"], call, level))
        elif kind == "serviceBusTrigger":
            queue = resolve(trigger["queueName"], env)
            many = str(trigger.get("cardinality", "one")).lower() == "many"
            found.queues.append(QueueConsumer(name, queue, many, trigger["name"], call))
        elif kind == "timerTrigger":
            schedule = Schedule.parse(resolve(trigger["schedule"], env))
            found.timers.append(TimerJob(name, schedule, trigger["name"], call))
        else:
            raise ValueError(f"function '{name}': the local host does not run '{kind}' triggers")
    return found


def to_function_message(d: Delivered) -> ServiceBusMessage:
    m = d.message
    return ServiceBusMessage(
        body=m.body,
        message_id=m.message_id,
        correlation_id=m.correlation_id,
        subject=m.subject,
        content_type="application/json",
        application_properties=dict(m.application_properties),
        user_properties={},
        delivery_count=d.delivery_count,
        enqueued_time_utc=d.enqueued_at,
        sequence_number=d.sequence,
    )


@dataclass(frozen=True)
class Batching:
    """The Service Bus trigger's batching, as host.json sets it for the Functions host."""

    max_size: int = 300
    min_size: int = 1
    max_wait: float = 0.0
    concurrency: int = 1

    @classmethod
    def from_host_json(cls, path: Path) -> Batching:
        service_bus = json.loads(path.read_text()).get("extensions", {}).get("serviceBus", {})
        wait = str(service_bus.get("maxBatchWaitTime", "00:00:00"))
        hours, minutes, seconds = (float(part) for part in wait.split(":"))
        return cls(
            max_size=int(service_bus.get("maxMessageBatchSize", 1000)),
            min_size=int(service_bus.get("minMessageBatchSize", 1)),
            max_wait=hours * 3600 + minutes * 60 + seconds,
            # maxConcurrentCalls governs single-message dispatch; a batch trigger's listener hands over one
            # batch at a time (more instances, not more threads, is how batches scale out).
            concurrency=1,
        )


HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"

# --- HTTP guards -----------------------------------------------------------------------------------------------

HTTP_LIMITS = ServerLimits(max_body=4 * MiB, max_connections=64)
"""The local host's HTTP layer: bodies up to 4 MiB reach the functions (so the webhooks' own 1 MiB limit answers
in the product's words); larger ones get the HTTP layer's 413."""
KEY_SETTING = "LOCAL_FUNCTIONS_KEY"
SAFE_METHODS = frozenset({"GET", "HEAD"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
"""What an HTML form (or a "simple" cross-site fetch) can send without a CORS preflight."""
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


_HOST_HEADER = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")


def host_name(value: str) -> str | None:
    """The name a ``Host`` header gives (lower case, no port or trailing dot; an IPv6 address in brackets), or
    None when it is not a host[:port] at all."""
    match = _HOST_HEADER.fullmatch(value.strip())
    return match.group("name").lower().rstrip(".") if match else None


def is_loopback_name(name: str) -> bool:
    """localhost, any *.localhost (RFC 6761: never resolved elsewhere), or a loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def problem(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """The product's error shape, ``{"error": {"code", "message"}}``, for the host's own refusals."""
    return httpx.Response(status, headers=headers, json={"error": {"code": code, "message": message}})


def _origin(scheme: str, host: str, port: int | None) -> str:
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def own_origins(url: httpx.URL) -> frozenset[str]:
    """The origins a page served by this host can have: its URL's, and the loopback names at the same port."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return frozenset(_origin(url.scheme, name, url.port) for name in (host, *_LOOPBACK_NAMES))


def _normalised_origin(value: str) -> str | None:
    try:
        parts = urlsplit(value.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None  # "null" (a sandboxed frame, a file:// page) is nobody's own origin
    return _origin(parts.scheme.lower(), f"[{host}]" if ":" in host else host, port)


def is_cross_origin(request: httpx.Request) -> bool:
    """Did a page of another origin send this? Browsers send ``Origin`` with every POST; ``Sec-Fetch-Site`` tells
    too (``same-site`` counts: on loopback a site-mate is another port, that is another application)."""
    origin = request.headers.get("origin")
    if origin is not None and _normalised_origin(origin) not in own_origins(request.url):
        return True
    return request.headers.get("sec-fetch-site", "").strip().lower() in ("cross-site", "same-site")


def media_type(request: httpx.Request) -> str:
    value: str = request.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


class LocalHost:
    """Serves HTTP functions, pumps queues into queue functions, fires timers. ``start()`` / ``stop()``.

    ``functions_key`` (default: the ``LOCAL_FUNCTIONS_KEY`` of ``env``), when set, is required by every function
    whose ``authLevel`` is not anonymous, as the Functions host requires a function or host key in Azure.
    ``form_routes`` names the functions that take form bodies (none do today). ``host_names``: names besides the
    loopback ones this host answers to in the ``Host`` header (see :meth:`_host_refused`). ``idle_queues``: queues
    whose functions are not pumped (tests that drive the job runner through its timer idle the nudges' queue).
    """

    def __init__(
        self,
        app: func.FunctionApp,
        broker: LocalBroker,
        *,
        env: Mapping[str, str] | None = None,
        port: int = 0,
        batching: Batching | None = None,
        retry_delay: float = 1.0,
        run_timers: bool = True,
        functions_key: str | None = None,
        form_routes: Collection[str] = (),
        http_limits: ServerLimits | None = None,
        host_names: Collection[str] = (),
        idle_queues: Collection[str] = (),
    ) -> None:
        settings = env if env is not None else dict(os.environ)
        self.idle_queues = frozenset(idle_queues)
        self.broker = broker
        self.functions = discover(app, settings)
        self.functions_key = functions_key if functions_key is not None else settings.get(KEY_SETTING, "")
        self.form_routes = frozenset(form_routes)
        self.batching = batching or Batching.from_host_json(HOST_JSON)
        self.retry_delay = retry_delay
        self.run_timers = run_timers
        self.host_names = frozenset(n for n in map(host_name, host_names) if n)
        self._server = LoopbackServer(self.handle_http, port=port, limits=http_limits or HTTP_LIMITS)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.timer_runs: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def requires_key(self) -> bool:
        return bool(self.functions_key)

    # --- HTTP ----------------------------------------------------------------------------------------------------

    def handle_http(self, request: httpx.Request) -> httpx.Response:
        """Route to the function, after the refusals of :meth:`_guard`; 404 / 405 (with ``Allow``) as routing says.

        OPTIONS is routed like any method: no function lists it, so it gets 405 and no ``Access-Control-*``
        header, which is what the Functions host does for an app without CORS settings (it answers no preflight;
        the method simply matches no function). A browser's preflight therefore fails, as it would in Azure.
        """
        refused = self._host_refused(request)
        if refused is not None:
            return refused
        path = request.url.path
        matches = [(route, m) for route in self.functions.http if (m := route.pattern.match(path))]
        if not matches:
            return problem(404, "not-found", "no function serves this path")
        chosen = next(((route, m) for route, m in matches if request.method in route.methods), None)
        if chosen is None:
            allowed = ", ".join(sorted(frozenset().union(*(route.methods for route, _ in matches))))
            return problem(405, "method-not-allowed", f"this path takes {allowed}", {"Allow": allowed})
        route, match = chosen
        params = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        refused = self._guard(request, route, params)
        if refused is not None:
            return refused
        req = func.HttpRequest(
            request.method,
            str(request.url),
            headers=dict(request.headers),
            params=params,
            route_params=match.groupdict(),
            body=request.content,
        )
        try:
            response = route.call(**{route.arg: req})
        except Exception as exc:  # the Functions host answers 500 too; the log says why
            log.exception("function %s failed", route.name)
            message = f"function '{route.name}' failed with an unexpected {type(exc).__name__}; see the host log"
            return problem(500, "internal", message)
        headers = dict(response.headers)
        if response.mimetype and "content-type" not in {k.lower() for k in headers}:
            headers["content-type"] = response.mimetype
        return httpx.Response(response.status_code, headers=headers, content=response.get_body())

    def _host_refused(self, request: httpx.Request) -> httpx.Response | None:
        """DNS rebinding: a page of ``evil.example`` whose name is made to resolve to 127.0.0.1 is same-origin with
        this host as far as the browser knows, so it could read every answer; its requests still say
        ``Host: evil.example``. Only loopback names and addresses (any port), this host's own address and its
        ``host_names`` are served; anything else gets 421 before any routing (not even a 404 is given away).
        In-process requests name ``functions.localhost``, a loopback name."""
        name = host_name(request.headers.get("host", ""))
        own = host_name(self._server.url.split("://", 1)[-1])
        if name is not None and (is_loopback_name(name) or name == own or name in self.host_names):
            return None
        message = "this host answers only to localhost, 127.0.0.1, [::1] and its own name in the Host header"
        return problem(421, "host-not-allowed", message)

    def _guard(self, request: httpx.Request, route: HttpRoute, params: Mapping[str, str]) -> httpx.Response | None:
        """What a developer's machine needs before a function runs, since any web page can reach 127.0.0.1
        (a ``Host`` that is not this host's was refused before: :meth:`_host_refused`).

        A write from another origin's page: 403 (a plain ``<form method=post>`` needs no CORS to be sent). No or
        a wrong key for a keyed function, when a key is configured: 401. A form or text body to a keyed function
        that does not take one: 415 (the admin endpoints read JSON or nothing; these are the bodies a cross-site
        form can send). Anonymous functions (the webhooks check their own shared secret) need no key.
        """
        write = request.method not in SAFE_METHODS
        if write and is_cross_origin(request):
            message = "a write from another origin's page is refused (this host allows no cross-origin requests)"
            return problem(403, "cross-origin-refused", message)
        if route.needs_key and self.functions_key:
            given = request.headers.get("x-functions-key") or params.get("code") or ""
            if not hmac.compare_digest(given.encode(), self.functions_key.encode()):
                message = "this function needs the host's key: the x-functions-key header or ?code="
                return problem(401, "unauthorized", message)
        if write and route.needs_key and route.name not in self.form_routes and media_type(request) in FORM_TYPES:
            message = "form and text/plain bodies are refused here; send application/json (or no body)"
            return problem(415, "unsupported-media-type", message)
        return None

    # --- queues ------------------------------------------------------------------------------------------------

    def _pump(self, consumer: QueueConsumer) -> None:
        queue = self.broker.queue(consumer.queue)
        while not self._stop.is_set():
            b = self.batching
            if consumer.many:
                delivered = queue.receive_batch(b.max_size, b.min_size, b.max_wait, timeout=0.2, stop=self._stop)
            else:
                delivered = queue.receive(1, timeout=0.2, stop=self._stop)
            if not delivered:
                continue
            messages = [to_function_message(d) for d in delivered]
            try:
                consumer.call(**{consumer.arg: messages if consumer.many else messages[0]})
            except Exception as exc:  # like the Functions host: abandon the batch; Service Bus redelivers it
                log.warning("function %s failed, %d message(s) abandoned: %s", consumer.name, len(delivered), exc)
                queue.abandon(delivered, reason=f"{type(exc).__name__}: {exc}", retry_delay=self.retry_delay)
            else:
                queue.complete(delivered)

    # --- timers ------------------------------------------------------------------------------------------------

    def fire(self, name: str, *, past_due: bool = False) -> None:
        """Run one timer function now (the README's 'run it now' and the tests use this)."""
        job = next(t for t in self.functions.timers if t.name == name)
        job.call(**{job.arg: TimerRequest(past_due=past_due)})
        self.timer_runs[name] = self.timer_runs.get(name, 0) + 1

    def _tick(self, job: TimerJob) -> None:
        next_at = job.schedule.next_after(datetime.now(UTC))
        while not self._stop.is_set():
            wait = (next_at - datetime.now(UTC)).total_seconds()
            if wait > 0:
                self._stop.wait(min(wait, 0.5))
                continue
            try:
                self.fire(job.name)
            except Exception:
                log.exception("timer %s failed", job.name)
            next_at = job.schedule.next_after(datetime.now(UTC))

    # --- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> LocalHost:
        self._server.start()
        for consumer in self.functions.queues:
            if consumer.queue in self.idle_queues:
                continue  # its messages wait on the broker: a test drives that function itself
            for n in range(self.batching.concurrency):
                self._spawn(f"queue:{consumer.name}:{n}", self._pump, consumer)
        if self.run_timers:
            for job in self.functions.timers:
                self._spawn(f"timer:{job.name}", self._tick, job)
        return self

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for consumer in self.functions.queues:
            self.broker.queue(consumer.queue).wake()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.stop()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
