"""A reconciler over both simulated tenants, wired by hand so a test can reach each seam.

The real clients talk to the simulators in-process (MSAL included), state lives in SQLite, the queue is a list.
Two small seams stand in for other instances and other users: :class:`RacingStore` loses the ETag race on the
link saves a test chooses, :class:`ScriptedDataverse` lets another user edit a record between the sync's read
and its write-back. Tests seed records, hand the reconciler notifications, then assert what the store, the
queue and the simulators hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from local.simulators.dataverse.simulator import DataverseSimulator
from local.simulators.marketo.simulator import MarketoSimulator
from local.tenants import SimulatedTenants
from shared.core.mapping import SyncMapping, load_mapping
from shared.dataverse.auth import BearerAuth, MsalTokenSource, confidential_client
from shared.dataverse.client import BatchResult, DataverseClient, RecordUpdate
from shared.errors import Conflict
from shared.marketo.client import MarketoClient
from shared.pipeline.notification import Kind, Notification, Source, parse_notification
from shared.pipeline.ports import LiveMapping
from shared.pipeline.reconcile import BatchReport, Reconciler
from shared.queueing import OutgoingMessage
from shared.services import ROOT, build_marketo
from shared.settings import Settings
from shared.store.base import StateStore
from shared.store.mapping import MappingRepository
from shared.store.model import Link
from shared.store.sqlite import SqliteRows

DATAVERSE = "https://contoso.crm.dynamics.com"
MARKETO = "https://123-abc-456.mktorest.com"
QUEUE = "sync-changes"
ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}
GRACE = {"firstname": "Grace", "lastname": "Hopper", "emailaddress1": "grace@example.com", "jobtitle": "Admiral"}


class MemoryQueue:
    """The changes queue as a list of what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, OutgoingMessage]] = []

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend((queue, m) for m in messages)

    def notes(self) -> list[Notification]:
        return [parse_notification(m.body) for _, m in self.sent]


class RacingStore(StateStore):
    """The SQLite store, except that the next ``n`` link saves lose their ETag race (another instance saved
    first): they raise :class:`Conflict` and store nothing."""

    def __init__(self) -> None:
        super().__init__(SqliteRows(":memory:"))
        self.losing = 0
        self.lost: list[Link] = []

    def lose_next_saves(self, n: int = 1) -> None:
        self.losing = n

    def save_link(self, link: Link) -> Link:
        if self.losing:
            self.losing -= 1
            self.lost.append(link)
            raise Conflict("the link changed since it was read")
        return super().save_link(link)


class ScriptedDataverse(DataverseClient):
    """The Dataverse client; ``meanwhile`` runs once, just before the next write-back is sent."""

    meanwhile: Callable[[], None] | None = None

    def update_many(self, entity: str, updates: Sequence[RecordUpdate], *, atomic: bool = False) -> list[BatchResult]:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return super().update_many(entity, updates, atomic=atomic)


@dataclass
class Stack:
    mapping: SyncMapping
    tenants: SimulatedTenants
    store: RacingStore
    queue: MemoryQueue
    dataverse: ScriptedDataverse
    marketo_client: MarketoClient
    mapping_changes: list[str] = field(default_factory=list)

    @property
    def dv(self) -> DataverseSimulator:
        return self.tenants.dataverse

    @property
    def mk(self) -> MarketoSimulator:
        return self.tenants.marketo

    def reconciler(self, mapping: SyncMapping | None = None) -> Reconciler:
        return Reconciler(
            mapping or self.mapping,
            self.store,
            self.dataverse,
            self.marketo_client,
            self.queue,
            QUEUE,
            live=self.live(),
        )

    def live(self) -> LiveMapping:
        """The mapping document in the store (seeded from the shipped mapping); each change it saves is noted in
        ``mapping_changes`` as the reload a process makes of its cached copy."""
        repository = MappingRepository(self.store, self.mapping.model_dump_json)

        def reload() -> SyncMapping:
            self.mapping_changes.append("reload")
            return repository.load().mapping

        return LiveMapping(repository, reload)

    # Dynamics and Marketo, as their users change them
    def create(self, entity: str, **values: Any) -> str:
        return self.dv.seed(entity, values)

    def update(self, entity: str, record_id: str, **values: Any) -> None:
        self.dv.user_update(entity, record_id, values, user_id=self.tenants.admin_user_id)

    def person(self, email: str) -> dict[str, Any]:
        (found,) = self.mk.find_leads("email", email)
        return found

    # notifications
    @staticmethod
    def changed(entity: str, record_id: str, *, kind: Kind = Kind.UPSERT, attempt: int = 0) -> Notification:
        return Notification(
            source=Source.DATAVERSE_WEBHOOK, entity=entity, dynamics_id=record_id, kind=kind, attempt=attempt
        )

    @staticmethod
    def changed_in_marketo(person_id: int) -> Notification:
        return Notification(source=Source.MARKETO_WEBHOOK, marketo_id=str(person_id))

    def sync(self, *notes: Notification, reconciler: Reconciler | None = None) -> BatchReport:
        return (reconciler or self.reconciler()).run(list(notes))

    def synced_person(self, entity: str, **values: Any) -> tuple[str, dict[str, Any]]:
        """A lead or contact created in Dynamics and synced: its id and its Marketo person."""
        record_id = self.create(entity, **values)
        report = self.sync(self.changed(entity, record_id))
        assert not report.errors, report.errors
        return record_id, self.person(str(values["emailaddress1"]))


def _route(tenants: SimulatedTenants) -> httpx.MockTransport:
    hosts: dict[str, Callable[[httpx.Request], httpx.Response]] = {
        "login.microsoftonline.com": tenants.dataverse,
        httpx.URL(DATAVERSE).host: tenants.dataverse,
        httpx.URL(MARKETO).host: tenants.marketo,
    }
    return httpx.MockTransport(lambda request: hosts[request.url.host](request))


@pytest.fixture
def stack() -> Stack:
    mapping = load_mapping((ROOT / "config" / "mapping.json").read_text())
    tenants = SimulatedTenants(mapping)
    settings = Settings.model_validate(tenants.environment(DATAVERSE, MARKETO))
    http = httpx.Client(transport=_route(tenants), timeout=10.0)
    secret = settings.dataverse_client_secret.get_secret_value()
    app = confidential_client(
        tenant_id=settings.dataverse_tenant_id,
        client_id=settings.dataverse_client_id,
        client_secret=secret,
        authority_host=settings.dataverse_authority_host,
        http_client=http,
    )
    dataverse = ScriptedDataverse(
        http, settings.dataverse_url, auth=BearerAuth(MsalTokenSource(app, settings.dataverse_url, secret=secret))
    )
    return Stack(mapping, tenants, RacingStore(), MemoryQueue(), dataverse, build_marketo(settings, http))
