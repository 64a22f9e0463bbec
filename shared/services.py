"""The composition root: builds the clients, store, queue and mapping once per process from the settings.

Functions call :func:`services` and hand the pipeline the ports it uses (the store, a client, the mapping, the
changes queue); they never build a client themselves or know which host runs them. The local host and the tests
:func:`install` their own (simulators, the local broker, SQLite); in Azure the same code builds the real ones
from app settings on first use. Nothing under ``shared.pipeline`` imports this module.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from shared.core.circuit import ProbeSchedule
from shared.core.mapping import SyncMapping
from shared.dataverse.auth import BearerAuth, MsalTokenSource, confidential_client
from shared.dataverse.budget import LEDGER as DATAVERSE_LEDGER
from shared.dataverse.budget import BudgetGate, DataverseLimits
from shared.dataverse.client import DataverseClient
from shared.dataverse.concurrency import ConcurrencyGate
from shared.errors import SyncError
from shared.marketo.budget import BudgetLimits, Lane, Ledger
from shared.marketo.caller import utcnow
from shared.marketo.client import MarketoClient
from shared.marketo.lanes import LaneLimiter
from shared.marketo.limiter import Limiter, RateLimiter
from shared.pipeline.circuit import Circuits
from shared.pipeline.notification import Notification
from shared.pipeline.pending import MarkingQueue, PendingWork
from shared.pipeline.ports import ChangesQueue, LiveMapping
from shared.pipeline.reconcile import Reconciler
from shared.pipeline.reconcile.carry import CarryRule, busy, flowing, fresh
from shared.queueing import QueueObserver, QueueSender, ServiceBusObserver, ServiceBusQueueSender
from shared.settings import Settings, get_settings
from shared.store.base import StateStore
from shared.store.budget import StoreLedger
from shared.store.mapping import MappingRepository
from shared.store.sqlite import sqlite_store
from shared.store.tables import TableRows, table_store
from shared.telemetry import trace_client, traced_sender

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: StateStore
    queue: QueueSender
    dataverse: DataverseClient
    marketo: MarketoClient
    observer: QueueObserver | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # the local host injects its own
    marketo_backfill: MarketoClient | None = None
    """The Marketo client of the job runners (Quick Sync, resyncs, bulk imports, sweeps): the backfill lane of
    the shared budget. Built with ``marketo``'s live lane on creation unless given (docs/budgets.md)."""
    dataverse_backfill: DataverseClient | None = None
    """The Dataverse client of the job runners: the backfill lane of Dataverse's shared budget (``dataverse`` gets
    the live lane on creation unless given)."""
    _mapping: SyncMapping | None = field(default=None, repr=False)
    _mapping_etag: str | None = field(default=None, repr=False)
    _mapping_checked: float = field(default=0.0, repr=False)
    _sync_user_id: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.marketo_backfill is None:
            self.marketo, self.marketo_backfill = marketo_lanes(self.settings, self.store, self.marketo)
        if self.dataverse_backfill is None:
            self.dataverse, self.dataverse_backfill = dataverse_lanes(self.settings, self.store, self.dataverse)

    @property
    def backfill(self) -> MarketoClient:
        """``marketo_backfill``, never None (set on creation)."""
        assert self.marketo_backfill is not None
        return self.marketo_backfill

    @property
    def dataverse_jobs(self) -> DataverseClient:
        """``dataverse_backfill``, never None (set on creation): what Quick Sync, initial syncs and resyncs read
        Dataverse with, behind live traffic."""
        assert self.dataverse_backfill is not None
        return self.dataverse_backfill

    @property
    def mapping(self) -> SyncMapping:
        """The mapping stored in the state store (seeded from ``SYNC_MAPPING_FILE`` on first use).

        Instances re-check the stored document's ETag every ``SYNC_MAPPING_REFRESH_SECONDS``, so a field added
        or removed through one instance's mapping endpoints reaches every instance without a restart.
        """
        now = self.clock().timestamp()  # the product's time (a test's, when it drives time)
        if self._mapping is None or not 0 <= now - self._mapping_checked < self.settings.mapping_refresh_seconds:
            with self._lock:
                if (
                    self._mapping is None
                    or not 0 <= now - self._mapping_checked < self.settings.mapping_refresh_seconds
                ):
                    self._refresh_mapping()
                    self._mapping_checked = now
        assert self._mapping is not None
        return self._mapping

    @property
    def mappings(self) -> MappingRepository:
        """The stored mapping document: every change to the mapping goes through it."""
        return MappingRepository(self.store, lambda: mapping_file_text(self.settings))

    @property
    def live_mapping(self) -> LiveMapping:
        """The mapping document for code that edits it: its changes refresh this process's copy at once."""
        return LiveMapping(self.mappings, self.reload_mapping)

    @property
    def changes(self) -> ChangesQueue:
        """The queue notifications wait on for the reconcile function (``SYNC_CHANGES_QUEUE``): every intake
        sends through it, so each record is marked pending in the store before its message is sent."""
        return MarkingQueue(traced_sender(self.queue), self.settings.changes_queue, self.pending)

    @property
    def pending(self) -> PendingWork:
        """The pending marks: what was accepted and is not reconciled yet (docs/durability.md)."""
        return PendingWork(self.store, self.clock, timedelta(seconds=self.settings.pending_grace_seconds))

    def carry_rule(self, messages: int, notes: Sequence[Notification]) -> CarryRule | None:
        """How a reconcile batch of ``messages`` messages, read as ``notes``, may hold records back for a fuller
        Marketo call (shared/pipeline/reconcile/carry.py); None when ``SYNC_CARRY_BUSY_MESSAGES`` is 0."""
        size = self.settings.carry_busy_messages
        if size <= 0:
            return None
        return CarryRule(
            busy(messages, flowing(notes), size),
            self.clock(),
            timedelta(seconds=self.settings.carry_max_seconds),
            fresh=fresh(notes) > 0,
        )

    @property
    def circuits(self) -> Circuits:
        """Marketo's and Dataverse's circuits, shared by every instance through the store."""
        schedule = ProbeSchedule(
            timedelta(seconds=self.settings.circuit_probe_base_seconds),
            timedelta(seconds=self.settings.circuit_probe_max_seconds),
        )
        return Circuits(self.store, self.clock, schedule)

    def _refresh_mapping(self) -> None:
        if self._mapping is not None and self._mapping_etag is not None and self.mappings.etag() == self._mapping_etag:
            return
        stored = self.mappings.load()
        self._mapping, self._mapping_etag = stored.mapping, stored.etag

    def reload_mapping(self) -> SyncMapping:
        with self._lock:
            self._mapping_etag = None
            self._refresh_mapping()
            self._mapping_checked = self.clock().timestamp()
            assert self._mapping is not None
            return self._mapping

    @property
    def sync_user_id(self) -> str:
        """The Dataverse application user the sync writes as (its own changes must not echo back)."""
        if self._sync_user_id is None:
            configured = self.settings.dataverse_sync_user_id
            self._sync_user_id = (configured or self.dataverse.whoami().user_id).lower()
        return self._sync_user_id

    def known_sync_user_id(self) -> str | None:
        """The sync user's id, or None when Dataverse cannot be asked right now: the echo filter is then off and
        the reconcile still recognises the echo by its values (only a cheap filter is lost)."""
        try:
            return self.sync_user_id
        except SyncError as exc:
            log.warning("sync user unknown, echo filter off for now: %s", exc)
            return None

    def reconciler(self) -> Reconciler:
        return Reconciler(
            self.mapping,
            self.store,
            self.dataverse,
            self.marketo,
            traced_sender(self.queue),
            self.settings.changes_queue,
            live=self.live_mapping,
            clock=self.clock,
            pause_delay=timedelta(seconds=self.settings.pause_recheck_seconds),
            pending=self.pending,
            circuits=self.circuits,
        )


def mapping_file_text(settings: Settings) -> str:
    """The mapping the app ships with (``SYNC_MAPPING_FILE``): seeds the stored document on first start."""
    path = Path(settings.mapping_file)
    return (path if path.is_absolute() else ROOT / path).read_text()


def load_stored_mapping(store: StateStore, settings: Settings) -> SyncMapping:
    return MappingRepository(store, lambda: mapping_file_text(settings)).load().mapping


def budget_limits(settings: Settings) -> BudgetLimits:
    return BudgetLimits(
        calls_per_window=settings.marketo_calls_per_20s,
        headroom=settings.marketo_headroom,
        max_concurrency=settings.marketo_max_concurrency,
        live_reserve=settings.marketo_live_reserve_percent / 100.0,
        daily_quota=settings.marketo_daily_quota,
        daily_reserve=settings.marketo_daily_reserve_percent / 100.0,
    )


MARKETO_LEASES: dict[str, Any] = {"max_chunk": 5, "max_lease": 20}
"""A lease: up to 5 Marketo calls at once, up to 20 in all while the window has room to spare (docs/budgets.md)."""


def marketo_lanes(settings: Settings, store: StateStore, client: MarketoClient) -> tuple[MarketoClient, MarketoClient]:
    """The live and the backfill client over one connection and token, each drawing from its lane of the budget
    all instances share through the state store (``MARKETO_BUDGET=shared``), with ``client``'s own fixed-share
    limiter as the fallback while the store is unreachable. ``MARKETO_BUDGET=process``: both use that share."""
    if settings.marketo_budget != "shared":
        return client, client
    # Grants are stamped on the wall clock, which every instance shares; a test's injected clock is kept (it
    # is what the test's sleep moves), the real monotonic one is not comparable across machines.
    clock = time.time if client.clock is time.monotonic else client.clock
    if isinstance(client.limiter, LaneLimiter):  # the live client of services built before: its budget
        live, ledger, fallback = client, client.limiter.ledger, client.limiter.fallback
    else:
        ledger, fallback = StoreLedger(store, budget_limits(settings)), client.limiter
        lane = LaneLimiter(ledger, Lane.LIVE, fallback=fallback, clock=clock, sleep=client.wait, **MARKETO_LEASES)
        live = client.with_limiter(lane)
    backfill = LaneLimiter(
        ledger,
        Lane.BACKFILL,
        fallback=fallback,
        clock=clock,
        sleep=client.wait,
        usage_reader=live.usage_today,
        **MARKETO_LEASES,
    )
    return live, client.with_limiter(backfill)


def dataverse_budget_limits(settings: Settings) -> DataverseLimits:
    return DataverseLimits(
        calls_per_window=settings.dataverse_requests_per_5min,
        max_concurrency=settings.dataverse_concurrency,
        execution_seconds=settings.dataverse_execution_seconds_per_5min,
        live_reserve=settings.dataverse_live_reserve_percent / 100.0,
    )


def dataverse_lanes(
    settings: Settings, store: StateStore, client: DataverseClient
) -> tuple[DataverseClient, DataverseClient]:
    """The live and the backfill Dataverse client over one connection and token, each drawing from its lane of
    the budget every instance shares through the state store (``DATAVERSE_BUDGET=shared``), with a fixed
    per-process share as the fallback while the store is unreachable. ``local``: both keep the client's gate."""
    gate = getattr(client, "gate", None)
    if settings.dataverse_budget != "shared" or not isinstance(gate, ConcurrencyGate):
        return client, client
    # Each process's own gate: DATAVERSE_MAX_CONCURRENCY, no longer divided by the callers (the budget holds the sum),
    # one for both lanes; the backfill's requests leave the live reserve's share of it to live requests.
    per_process = max(1, min(settings.dataverse_max_concurrency, settings.dataverse_concurrency))
    keep = math.ceil(per_process * settings.dataverse_live_reserve_percent / 100)
    if isinstance(gate, BudgetGate):  # the live client of services built before: its budget and process gate
        live, ledger, fallback, process = client, gate.lane.ledger, gate.lane.fallback, gate.process
    else:
        ledger = StoreLedger(store, dataverse_budget_limits(settings), name=DATAVERSE_LEDGER)
        fallback = dataverse_fallback(settings)
        process = ConcurrencyGate(per_process)
        live_lane = _dataverse_lane(client, ledger, Lane.LIVE, fallback)
        live = client.with_gate(BudgetGate(live_lane, per_process, process=process))
    backfill_lane = _dataverse_lane(client, ledger, Lane.BACKFILL, fallback)
    backfill = BudgetGate(backfill_lane, per_process, process=process, keep=keep)
    return live, client.with_gate(backfill)


def _dataverse_lane(client: DataverseClient, ledger: Ledger, lane: Lane, fallback: Limiter) -> LaneLimiter:
    # Leases of up to 100 requests (16 at once, the per-process gate's default): the ledger grants the extra ones
    # only while the 5-minute window has room to spare. The wall clock, as for Marketo's (see marketo_lanes).
    clock = time.time if client.clock is time.monotonic else client.clock
    return LaneLimiter(
        ledger,
        lane,
        fallback=fallback,
        clock=clock,
        sleep=client.sleep,
        max_chunk=16,
        max_lease=100,
        linger=1.0,
        service="Dataverse",
    )


def dataverse_fallback(settings: Settings) -> RateLimiter:
    """A fixed share (1 / ``MARKETO_CALLERS``) of Dataverse's per-user limits: what a process keeps to while the
    state store is unreachable."""
    instances = max(1, settings.api_callers)
    return RateLimiter(
        calls_per_window=max(1, settings.dataverse_requests_per_5min // instances),
        window=300.0,
        headroom=0.0,
        max_concurrency=max(1, settings.dataverse_concurrency // instances),
    )


def marketo_limiter(
    settings: Settings, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
) -> RateLimiter:
    """A fixed share of Marketo's per-instance limits (1 / ``MARKETO_CALLERS``): the fallback of the shared budget
    while the state store is unreachable, and the whole limiter with ``MARKETO_BUDGET=process``."""
    instances = max(1, settings.api_callers)
    return RateLimiter(
        calls_per_window=max(1, math.floor(settings.marketo_calls_per_20s / instances)),
        headroom=settings.marketo_headroom,
        max_concurrency=max(1, settings.marketo_max_concurrency // instances),
        clock=clock,
        sleep=sleep,
    )


def build_store(settings: Settings) -> StateStore:
    if settings.state_store == "sqlite":
        path = Path(settings.state_sqlite_path)
        return sqlite_store(path if path.is_absolute() else ROOT / path)
    connection = settings.state_table_connection_string.get_secret_value()
    if connection:
        return table_store(TableRows.from_connection_string(connection))
    return table_store(TableRows.from_endpoint(settings.state_table_endpoint, _azure_credential(settings)))


def _azure_credential(settings: Settings) -> Any:
    if settings.azure_client_id:  # the user-assigned identity the infrastructure gives the app
        return ManagedIdentityCredential(client_id=settings.azure_client_id)
    return DefaultAzureCredential()


def build_dataverse(
    settings: Settings,
    http: httpx.Client,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DataverseClient:
    """The Dataverse client for a real tenant: MSAL client credentials, one app per process. ``sleep`` and
    ``clock`` pace its retries and measure their budget (a test that skips the waits moves the clock)."""
    secret = settings.dataverse_client_secret.get_secret_value()
    trace_client(http, {settings.dataverse_url: "Dataverse", settings.dataverse_authority_host: "Entra ID"})
    tokens = MsalTokenSource(
        confidential_client(
            tenant_id=settings.dataverse_tenant_id,
            client_id=settings.dataverse_client_id,
            client_secret=secret,
            authority_host=settings.dataverse_authority_host,
            http_client=http,
        ),
        settings.dataverse_url,
        secret=secret,
    )
    return DataverseClient(
        http,
        settings.dataverse_url,
        auth=BearerAuth(tokens),
        # Dataverse allows 52 concurrent requests per user, across every instance the app scales out to.
        max_concurrency=max(1, min(settings.dataverse_max_concurrency, 52 // max(1, settings.api_callers))),
        max_url_length=30_000,  # Dataverse accepts 32,768 characters: ~300 ids per read_by_ids request
        sleep=sleep,
        clock=clock,
    )


def build_marketo(
    settings: Settings,
    http: httpx.Client,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utcnow,
) -> MarketoClient:
    """``sleep`` and ``clock`` pace its retries and its rate limiter (the local host's tests skip the waits); ``now``
    is what a quota reset is reckoned from."""
    identity_url = settings.marketo_identity_url or settings.marketo_base_url.rstrip("/") + "/identity"
    trace_client(http, {settings.marketo_base_url: "Marketo", identity_url: "Marketo"})
    return MarketoClient(
        http,
        base_url=settings.marketo_base_url,
        identity_url=identity_url,
        client_id=settings.marketo_client_id,
        client_secret=settings.marketo_client_secret,
        limiter=marketo_limiter(settings, clock=clock, sleep=sleep),
        sleep=sleep,
        clock=clock,
        now=now,
    )


def build_services(settings: Settings) -> Services:
    """Real clients for a real tenant (``SYNC_TARGET=live``), as in Azure."""
    http = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    queue = ServiceBusQueueSender(settings.service_bus_namespace, _azure_credential(settings))
    return Services(
        settings,
        build_store(settings),
        queue,
        build_dataverse(settings, http),
        build_marketo(settings, http),
        observer=ServiceBusObserver(queue.client),
    )


class _Current:
    services: Services | None = None
    lock = threading.Lock()


def services() -> Services:
    current = _Current.services
    if current is None:
        with _Current.lock:
            if _Current.services is None:
                _Current.services = build_services(get_settings())
            current = _Current.services
    return current


def install(built: Services | None) -> None:
    """Use these services for this process (the local host, tests); ``None`` forgets them."""
    with _Current.lock:
        _Current.services = built
