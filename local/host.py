"""Runs a FunctionApp's registered functions here: HTTP on loopback, Service Bus queues from the local broker,
timers on their NCRONTAB schedules.

Everything is discovered from the app's own bindings (``get_functions()``), so there is no second list of
routes, queues or schedules to drift: a ``%SETTING%`` in a binding is resolved from the environment the way the
Functions host resolves app settings.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
import httpx
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

from local.broker import Delivered, LocalBroker
from local.loopback import LoopbackServer
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
            found.http.append(HttpRoute(name, route, methods, _route_pattern(route), trigger["name"], call))
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


class LocalHost:
    """Serves HTTP functions, pumps queues into queue functions, fires timers. ``start()`` / ``stop()``."""

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
    ) -> None:
        self.broker = broker
        self.functions = discover(app, env if env is not None else dict(os.environ))
        self.batching = batching or Batching.from_host_json(HOST_JSON)
        self.retry_delay = retry_delay
        self.run_timers = run_timers
        self._server = LoopbackServer(self.handle_http, port=port)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.timer_runs: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self._server.url

    # --- HTTP ----------------------------------------------------------------------------------------------------

    def handle_http(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        matched_path = False
        for route in self.functions.http:
            match = route.pattern.match(path)
            if not match:
                continue
            matched_path = True
            if request.method not in route.methods:
                continue
            req = func.HttpRequest(
                request.method,
                str(request.url),
                headers=dict(request.headers),
                params=dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)),
                route_params=match.groupdict(),
                body=request.content,
            )
            try:
                response = route.call(**{route.arg: req})
            except Exception as exc:  # the Functions host answers 500 too; the log says why
                log.exception("function %s failed", route.name)
                return httpx.Response(500, json={"error": f"function '{route.name}' failed: {type(exc).__name__}"})
            headers = dict(response.headers)
            if response.mimetype and "content-type" not in {k.lower() for k in headers}:
                headers["content-type"] = response.mimetype
            return httpx.Response(response.status_code, headers=headers, content=response.get_body())
        if matched_path:
            return httpx.Response(405, json={"error": f"method {request.method} not allowed on {path}"})
        return httpx.Response(404, json={"error": f"no function serves {path}"})

    # --- queues ------------------------------------------------------------------------------------------------

    def _pump(self, consumer: QueueConsumer) -> None:
        queue = self.broker.queue(consumer.queue)
        while not self._stop.is_set():
            b = self.batching
            if consumer.many:
                delivered = queue.receive_batch(b.max_size, b.min_size, b.max_wait, timeout=0.2)
            else:
                delivered = queue.receive(1, timeout=0.2)
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
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.stop()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
