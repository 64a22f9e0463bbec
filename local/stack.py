"""The whole product on one machine: simulated (or real) tenants, the local broker, SQLite state, the local host.

Used by ``python -m local`` (the README's first command) and by the end-to-end tests, which run the
very same stack in-process (``in_process=True``: HTTP between the parts goes through httpx transports instead of
loopback sockets, so a test is fast and needs no ports). With ``sims`` (the settings ``python -m local.simulators``
wrote) it runs against simulators in their own process instead, so either side can restart without the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import azure.functions as func
import httpx

from local.broker import LocalBroker
from local.host import Batching, LocalHost
from local.loopback import LoopbackServer
from local.tenants import Secrets, SimulatedTenants
from shared.core.mapping import load_mapping
from shared.queueing import DeadLettered, Pending, Settled, Settlement
from shared.services import ROOT, Services, build_dataverse, build_marketo, build_services, install
from shared.settings import Settings
from shared.store.sqlite import sqlite_store

IN_PROCESS_DATAVERSE = "https://contoso.crm.dynamics.com"
IN_PROCESS_MARKETO = "https://123-abc-456.mktorest.com"
IN_PROCESS_HOST = "http://functions.localhost"
ENTRA = "https://login.microsoftonline.com"  # MSAL insists on https; the simulated Entra answers under this name


class BrokerObserver:
    """The status view's QueueObserver and the admin's DeadLetterQueue over the local broker."""

    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker

    def pending(self, queue: str, limit: int = 1000) -> list[Pending]:
        return [
            Pending(
                str(d.message.application_properties.get("entity", "person")),
                d.enqueued_at,
                _text_or_none(d.message.application_properties.get("record")),
            )
            for d in self.broker.queue(queue).peek()[:limit]
        ]

    def dead_lettered(self, queue: str) -> int:
        return len(self.broker.queue(queue).dead_letters)

    def dead_letters(self, queue: str, *, after: int = 0, limit: int = 100) -> list[DeadLettered]:
        return self.broker.dead_letters(queue, after=after, limit=limit)

    def settle(self, queue: str, plan: Mapping[int, Settlement]) -> Settled:
        return self.broker.settle(queue, plan)


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def binding_settings(settings: Settings) -> dict[str, str]:
    """The app settings the function bindings name (``%SYNC_CHANGES_QUEUE%`` and friends)."""
    return {
        "SYNC_CHANGES_QUEUE": settings.changes_queue,
        "QUICK_SYNC_QUEUE": settings.quick_sync_queue,
        "FLOW_STEPS_QUEUE": settings.flow_steps_queue,
        "MARKETO_FEED_SCHEDULE": settings.marketo_feed_schedule,
        "DATAVERSE_CATCHUP_SCHEDULE": settings.dataverse_catchup_schedule,
        "QUICK_SYNC_SCHEDULE": settings.quick_sync_schedule,
        "PENDING_SWEEP_SCHEDULE": settings.pending_sweep_schedule,
        "HISTORY_PRUNE_SCHEDULE": settings.history_prune_schedule,
        "VERIFY_SWEEP_SCHEDULE": settings.verify_sweep_schedule,
    }


def _router(
    routes: Mapping[str, Callable[[httpx.Request], httpx.Response]],
    observe: Callable[[httpx.Request], None] | None = None,
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        handler = routes.get(request.url.host)
        if handler is None:
            return httpx.Response(502, json={"error": f"no in-process service at {request.url.host}"})
        if observe is not None:
            request.read()
            observe(request)
        return handler(request)

    return httpx.MockTransport(handle)


def _host(url: str) -> str:
    return str(urlparse(url).hostname)


class _Reroute(httpx.BaseTransport):
    """Real HTTP, with some hosts answered elsewhere (Entra's name -> the simulator's loopback address); ``observe``
    sees each request before it is sent."""

    def __init__(self, hosts: Mapping[str, str], observe: Callable[[httpx.Request], None] | None = None) -> None:
        self._hosts = {host: httpx.URL(target) for host, target in hosts.items()}
        self._inner = httpx.HTTPTransport()
        self._observe = observe

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._observe is not None:
            request.read()
            self._observe(request)
        target = self._hosts.get(request.url.host)
        if target is not None:
            request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@dataclass
class LocalStack:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    app: func.FunctionApp
    in_process: bool = False
    port: int = 0
    run_timers: bool = True
    retry_delay: float = 1.0
    batching: Batching | None = None  # None: as host.json says
    observe: Callable[[httpx.Request], None] | None = None  # sees every request to a simulator (or the tenants)
    overrides: Mapping[str, str] = field(default_factory=dict)
    state_path: str | None = None
    sims: Mapping[str, str] | None = None  # settings of external simulators (``python -m local.simulators``)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The product's time (marks, circuits, the sweep, scheduled messages): tests inject one they move."""
    sleep: Callable[[float], None] = time.sleep
    """How the clients wait between their own retries and for Marketo's rate limiter (tests skip the waits)."""
    monotonic: Callable[[], float] = time.monotonic
    """The clock ``sleep`` moves: the clients' retry budgets and Marketo's rate limiter read it (and the local
    broker's locks, retries and waits)."""
    run_job_nudges: bool = True
    """Pump ``QUICK_SYNC_QUEUE`` (a field added or a resync starts its job at once); False: the jobs run only when
    the Quick Sync timer fires (tests that step a job run by run)."""
    tenant_clock: Callable[[], float] | None = None
    """The simulated tenants' time (seconds since the epoch), when a test drives all time itself (the chaos suite)."""
    settings: Settings = field(init=False)
    tenants: SimulatedTenants | None = field(init=False, default=None)
    broker: LocalBroker = field(init=False)
    host: LocalHost = field(init=False)
    services: Services = field(init=False)
    http: httpx.Client = field(init=False)
    _servers: list[LoopbackServer] = field(init=False, default_factory=list)

    def start(self) -> LocalStack:
        base = Settings.model_validate(dict(self.overrides))
        self.broker = LocalBroker(wall=self.clock, clock=self.monotonic)
        live = base.target == "live"
        env: dict[str, str] = dict(self.overrides)
        if self.sims is not None:
            if self.in_process or live:
                raise ValueError("external simulators are reached over loopback: not in_process, not SYNC_TARGET=live")
            env = {**self.sims, **env}
        elif not live:
            mapping_path = Path(base.mapping_file)
            mapping = load_mapping((mapping_path if mapping_path.is_absolute() else ROOT / mapping_path).read_text())
            self.tenants = SimulatedTenants(mapping, Secrets.configured(self.overrides), clock=self.tenant_clock)
            if self.in_process:
                dataverse_url, marketo_url = IN_PROCESS_DATAVERSE, IN_PROCESS_MARKETO
            else:
                dv = LoopbackServer(self.tenants.dataverse).start()
                mk = LoopbackServer(self.tenants.marketo).start()
                self._servers += [dv, mk]
                dataverse_url, marketo_url = dv.url, mk.url
            env = {**self.tenants.environment(dataverse_url, marketo_url), **env}
        env.setdefault("STATE_STORE", "sqlite")
        self.settings = Settings.model_validate(env)
        store = sqlite_store(self.state_path or ":memory:")
        if live:
            real = build_services(self.settings)
            self.services = Services(self.settings, store, self.broker, real.dataverse, real.marketo)
        else:
            self.services = self._simulated_services(store)
        self._start_host()
        if self.tenants is not None:
            in_process = self.in_process
            self.tenants.connect(
                IN_PROCESS_HOST if in_process else self.host.url,
                dataverse_header=self.settings.dataverse_webhook_header,
                marketo_header=self.settings.marketo_webhook_header,
                dataverse_sender=self._deliver if in_process else None,
                marketo_sender=self._deliver_and_forget if in_process else None,
            )
        return self

    def _start_host(self) -> None:
        self.services.clock = self.clock
        self.services.observer = BrokerObserver(self.broker)
        install(self.services)
        self.host = LocalHost(
            self.app,
            self.broker,
            env=binding_settings(self.settings),
            port=self.port,
            run_timers=self.run_timers,
            retry_delay=self.retry_delay,
            batching=self.batching,
            functions_key=self.settings.local_functions_key.get_secret_value(),
            idle_queues=() if self.run_job_nudges else (self.settings.quick_sync_queue,),
        )
        self.host.start()

    def restart(self, *, keep_queue: bool) -> None:
        """The host process dies and a new one starts over the same state store and tenants: fresh services
        (clients, caches), and the queue's contents kept (Service Bus survives a host) or lost (``keep_queue``
        False: what a lost message, or a broker that never got it, leaves behind)."""
        self.host.stop()
        if not keep_queue:
            self.broker = LocalBroker(wall=self.clock, clock=self.monotonic)
        store = self.services.store
        if self.settings.target == "live":
            real = build_services(self.settings)
            self.services = Services(self.settings, store, self.broker, real.dataverse, real.marketo)
        else:
            self.services = self._simulated_services(store)
        self._start_host()

    def _simulated_services(self, store: Any) -> Services:
        s = self.settings
        if self.in_process:
            assert self.tenants is not None
            transport: httpx.BaseTransport = _router(
                {
                    _host(ENTRA): self.tenants.dataverse,
                    str(urlparse(IN_PROCESS_DATAVERSE).hostname): self.tenants.dataverse,
                    str(urlparse(IN_PROCESS_MARKETO).hostname): self.tenants.marketo,
                },
                self.observe,
            )
            self.http = httpx.Client(transport=transport, timeout=30.0)
        else:
            reroute = _Reroute({_host(ENTRA): s.dataverse_url}, self.observe)
            self.http = httpx.Client(transport=reroute, timeout=30.0)
        dataverse = build_dataverse(s, self.http, sleep=self.sleep, clock=self.monotonic)
        marketo = build_marketo(s, self.http, sleep=self.sleep, clock=self.monotonic, now=self.clock)
        return Services(s, store, self.broker, dataverse, marketo)

    def _deliver(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        """In-process webhook delivery: straight into the local host's HTTP handler."""
        request = httpx.Request("POST", url, headers=dict(headers), content=body)
        return self.host.handle_http(request).status_code

    def _deliver_and_forget(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        self._deliver(url, headers, body)  # Marketo ignores a webhook's answer

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until the changes queue is empty (scheduled retries count as pending)."""
        return self.broker.queue(self.settings.changes_queue).wait_idle(timeout)

    def stop(self) -> None:
        self.host.stop()
        for server in self._servers:
            server.stop()
        install(None)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
