"""Simulated Dynamics and Marketo tenants for the local host and the end-to-end tests.

Both simulators are set up the way an admin would set up real tenants for this product: the Dataverse tables
carry every mapped column (with the mapping's choice options), the sync has an app registration and an
application user, plugin steps post to the local host's webhook; Marketo has the custom fields and objects the
mapping writes to, and a trigger campaign's webhook that calls the local host. Credentials and webhook secrets are
made up at start, held in memory only -- except when the simulators run as their own process
(``python -m local.simulators --state DIR``): :func:`provision` (``python -m local.tenants --provision DIR``)
builds the tenants here and writes them to ``DIR`` as the first snapshot, so they stay the same across restarts.
The users' ids are derived from their names, so a restarted organisation has the same ones.
"""

from __future__ import annotations

import argparse
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from local.simulators import persistence
from local.simulators.dataverse.schema import Column, Table
from local.simulators.dataverse.simulator import DataverseSimulator
from local.simulators.marketo.simulator import MarketoSimulator
from local.simulators.marketo.webhook import WebhookConfig
from shared.core.entities import MarketoObject
from shared.core.mapping import (
    DELETED_FLAG_FIELD,
    SYNC_FILTER_COLUMN,
    FieldMapping,
    FieldType,
    SyncMapping,
    load_mapping,
)
from shared.pipeline.connections import CONNECTION
from shared.pipeline.connections import WATCHED as CONNECTION_COLUMNS
from shared.pipeline.dataverse_side import sales_owners_synced
from shared.pipeline.marketo_side import MARKETO_DATA_TYPES
from shared.services import ROOT
from shared.settings import Settings
from shared.setup.registration import watched_columns

SYNC_CLIENT_ID = "5ad1c0de-0000-4000-8000-00000000c11e"
DEMO_CLIENT_ID = "de300000-0000-4000-8000-0000000ad310"  # an admin tool for the README walk-through, not the sync
TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
ORGANIZATION = "contoso"

_DATAVERSE_TYPES = {
    FieldType.TEXT: "String",
    FieldType.MEMO: "Memo",
    FieldType.INTEGER: "Integer",
    FieldType.BIGINT: "BigInt",
    FieldType.DECIMAL: "Decimal",
    FieldType.DOUBLE: "Double",
    FieldType.MONEY: "Money",
    FieldType.BOOLEAN: "Boolean",
    FieldType.DATE: "DateTime",
    FieldType.DATETIME: "DateTime",
    FieldType.CHOICE: "Picklist",
    FieldType.MULTI_CHOICE: "MultiSelectPicklist",
    FieldType.LOOKUP: "Lookup",
}
_LOOKUP_TARGETS = {"ownerid": "systemuser", "parentcustomerid": "account", "originatingleadid": "lead"}

Deliver = Callable[[str, Mapping[str, str], bytes], int]


_CONFIGURED = {
    "DATAVERSE_CLIENT_SECRET": "dataverse_client_secret",
    "MARKETO_CLIENT_ID": "marketo_client_id",
    "MARKETO_CLIENT_SECRET": "marketo_client_secret",
    "DATAVERSE_WEBHOOK_SECRET": "dataverse_webhook_secret",
    "MARKETO_WEBHOOK_SECRET": "marketo_webhook_secret",
}
"""App settings that name a credential the simulated tenants must share with the product."""


@dataclass
class Secrets:
    dataverse_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    marketo_client_id: str = field(default_factory=lambda: "mkto-" + secrets.token_hex(6))
    marketo_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    dataverse_webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    marketo_webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    demo_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def from_dict(cls, saved: Mapping[str, str]) -> Secrets:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in saved.items() if k in known})

    @classmethod
    def configured(cls, settings: Mapping[str, str]) -> Secrets:
        """Made up at start, except the ones the operator set: the product checks a webhook against the configured
        secret, so the simulated plug-in steps and the Marketo webhook must send that one, not an invented one."""
        return cls(**{name: settings[key] for key, name in _CONFIGURED.items() if settings.get(key)})


def _column(f: FieldMapping) -> Column:
    """A custom column as a customiser would add it for a mapped field the table does not have."""
    return Column(
        f.dynamics,
        _DATAVERSE_TYPES[f.type],
        max_length=f.dynamics_max_length or (4000 if f.type is FieldType.TEXT else None),  # the Dataverse maximum
        options={o.value: o.label for o in f.options},
        target=_LOOKUP_TARGETS.get(f.dynamics, "account") if f.type is FieldType.LOOKUP else None,
        custom=True,
    )


def provision_dataverse(sim: DataverseSimulator, mapping: SyncMapping) -> None:
    """Every mapped column exists (what the customiser did): standard columns as Dataverse defines them (their
    recorded metadata: lengths, choices, requirement levels), the others added with the mapping's type and options."""
    for entity in mapping.entities:
        table: Table | None = sim.tables.get(entity.entity)
        if table is None:
            raise ValueError(f"the simulated organisation has no '{entity.entity}' table")
        for f in entity.fields:
            existing = table.columns.get(f.dynamics)
            if existing is None or existing.custom:
                table.columns[f.dynamics] = _column(f)
        if entity.sync_filter:
            table.columns[SYNC_FILTER_COLUMN] = Column(
                SYNC_FILTER_COLUMN, "Boolean", options={0: "No", 1: "Yes"}, custom=True
            )


def provision_marketo(sim: MarketoSimulator, mapping: SyncMapping) -> None:
    """Custom lead fields and custom objects the mapping writes to (created as an admin would, not counted)."""
    existing = {name.casefold() for name in sim.leads.fields}
    wanted: dict[str, dict[str, Any]] = {}
    for entity in mapping.entities:
        if entity.rule.marketo_object is MarketoObject.PERSON:
            for f in entity.fields:
                wanted.setdefault(
                    f.marketo, {"name": f.marketo, "displayName": f.marketo, "dataType": MARKETO_DATA_TYPES[f.type]}
                )
            for name, kind in ((entity.marketo_link_field, "string"), (DELETED_FLAG_FIELD, "boolean")):
                wanted.setdefault(name, {"name": name, "displayName": name, "dataType": kind})
        elif entity.rule.marketo_object is MarketoObject.CUSTOM_OBJECT:
            assert entity.custom_object is not None
            fields = {f.marketo: MARKETO_DATA_TYPES[f.type] for f in entity.fields}
            fields[entity.marketo_link_field] = "string"
            sim.define_custom_object(entity.custom_object, dedupe_fields=(entity.marketo_link_field,), fields=fields)
    missing = [spec for name, spec in wanted.items() if name.casefold() not in existing]
    if missing:
        sim.leads.create_fields(missing)


def register_webhooks(sim: DataverseSimulator, mapping: SyncMapping, url: str, header: str, secret: str) -> None:
    """Asynchronous post-operation steps for Create, Update (filtered to the watched columns, as the setup
    registers them) and Delete; with opportunities, the same on connections (their Delete with a pre-image)."""
    owners = sales_owners_synced(mapping)
    tables = [(entity.entity, sorted(watched_columns(entity, sales_owners=owners))) for entity in mapping.entities]
    if "opportunity" in mapping.by_entity:
        tables.append((CONNECTION, sorted(CONNECTION_COLUMNS)))
    for table, columns in tables:
        for message in ("Create", "Update", "Delete"):
            sim.register_webhook(
                url,
                entity=table,
                message=message,
                filtering_attributes=columns if message == "Update" else (),
                post_image=columns if message != "Delete" else None,
                pre_image=columns if message == "Delete" and table == CONNECTION else None,
                header=(header, secret),
            )


@dataclass
class SimulatedTenants:
    mapping: SyncMapping
    secrets: Secrets = field(default_factory=Secrets)
    dataverse: DataverseSimulator = field(init=False)
    marketo: MarketoSimulator = field(init=False)
    sync_user_id: str = field(init=False)
    admin_user_id: str = field(init=False)
    demo_user_id: str = field(init=False)
    demo_client_id: str = DEMO_CLIENT_ID
    wall_clock: bool = False  # Dataverse token expiry and limits on time.time (survives a restart), not monotonic
    clock: Callable[[], float] | None = None
    """Both tenants' time in seconds since the epoch, when a test drives it (stamps, tokens, limits, faults)."""

    def __post_init__(self) -> None:
        if self.clock is not None:
            epoch = self.clock
            self.dataverse = DataverseSimulator(
                tenant_id=TENANT_ID,
                organization_name=ORGANIZATION,
                clock=epoch,
                now=lambda: datetime.fromtimestamp(epoch(), UTC),
            )
        else:
            self.dataverse = DataverseSimulator(
                tenant_id=TENANT_ID,
                organization_name=ORGANIZATION,
                clock=time.time if self.wall_clock else time.monotonic,
            )
        self.marketo = MarketoSimulator(
            client_id=self.secrets.marketo_client_id,
            client_secret=self.secrets.marketo_client_secret,
            clock=self.clock or time.time,
        )
        provision_dataverse(self.dataverse, self.mapping)
        provision_marketo(self.marketo, self.mapping)
        self.sync_user_id = self.dataverse.add_app(
            SYNC_CLIENT_ID, secret=self.secrets.dataverse_client_secret, user_id=_user_id("sync")
        )
        self.admin_user_id = self.dataverse.add_user("Dana Admin", user_id=_user_id("Dana Admin"))
        self.demo_user_id = self.dataverse.add_app(
            DEMO_CLIENT_ID, secret=self.secrets.demo_client_secret, user_id=_user_id("demo")
        )

    # --- Dana Admin, a person using Dynamics (her changes are human ones, with webhooks, not the sync's) -------

    def user_create(self, entity: str, **values: Any) -> str:
        return self.dataverse.user_create(entity, values, user_id=self.admin_user_id)

    def user_update(self, entity: str, record_id: str, **values: Any) -> None:
        self.dataverse.user_update(entity, record_id, values, user_id=self.admin_user_id)

    def user_delete(self, entity: str, record_id: str) -> None:
        self.dataverse.user_delete(entity, record_id, user_id=self.admin_user_id)

    def connect(
        self,
        function_base_url: str,
        *,
        dataverse_header: str = "x-sync-secret",
        marketo_header: str = "x-sync-secret",
        dataverse_sender: Deliver | None = None,
        marketo_sender: Callable[[str, Mapping[str, str], bytes], None] | None = None,
    ) -> None:
        """Point both tenants' webhooks at the function host (over HTTP, or through the given senders)."""
        base = function_base_url.rstrip("/")
        if dataverse_sender is not None:
            self.dataverse.sender = dataverse_sender
        register_webhooks(
            self.dataverse,
            self.mapping,
            f"{base}/api/dataverse/webhook",
            dataverse_header,
            self.secrets.dataverse_webhook_secret,
        )
        persons = {f.marketo for e in self.mapping.entities if e.rule.two_way for f in e.live_fields}
        config = WebhookConfig(
            f"{base}/api/marketo/webhook",
            SecretStr(self.secrets.marketo_webhook_secret),
            marketo_header,
            frozenset(persons),
        )
        self.marketo.configure_webhook(config, marketo_sender or _http_sender())

    def environment(self, dataverse_url: str, marketo_url: str) -> dict[str, str]:
        """The app settings that point the product at these tenants."""
        return {
            "SYNC_TARGET": "simulated",
            "DATAVERSE_URL": dataverse_url,
            "DATAVERSE_TENANT_ID": TENANT_ID,
            "DATAVERSE_CLIENT_ID": SYNC_CLIENT_ID,
            "DATAVERSE_CLIENT_SECRET": self.secrets.dataverse_client_secret,
            "DATAVERSE_AUTHORITY_HOST": "https://login.microsoftonline.com",
            "DATAVERSE_ORGANIZATION": f"{ORGANIZATION}.crm.dynamics.com",
            "MARKETO_BASE_URL": marketo_url,
            "MARKETO_IDENTITY_URL": marketo_url.rstrip("/") + "/identity",
            "MARKETO_CLIENT_ID": self.secrets.marketo_client_id,
            "MARKETO_CLIENT_SECRET": self.secrets.marketo_client_secret,
            "DATAVERSE_WEBHOOK_SECRET": self.secrets.dataverse_webhook_secret,
            "MARKETO_WEBHOOK_SECRET": self.secrets.marketo_webhook_secret,
        }


def configured_mapping(settings: Settings) -> SyncMapping:
    path = Path(settings.mapping_file)
    return load_mapping((path if path.is_absolute() else ROOT / path).read_text(encoding="utf-8"))


_URLS = frozenset({"DATAVERSE_URL", "MARKETO_BASE_URL", "MARKETO_IDENTITY_URL"})


def provision(directory: Path, product_url: str) -> Path:
    """Set up the tenants ``python -m local.simulators --state DIR`` serves: built here exactly as ``make run``
    builds its own (the configured mapping, webhook headers and secrets, from the environment or ``.env`` as the
    product reads them; the Dataverse clock on wall time so token expiry survives a restart), plug-in steps and
    the Marketo webhook posting to ``product_url``, written to ``DIR/simulators.json`` as the first snapshot."""
    settings = Settings()
    env = {k: v.get_secret_value() for k, v in _configured_secrets(settings).items() if v.get_secret_value()}
    tenants = SimulatedTenants(configured_mapping(settings), Secrets.configured(env), wall_clock=True)
    tenants.connect(
        product_url,
        dataverse_header=settings.dataverse_webhook_header,
        marketo_header=settings.marketo_webhook_header,
    )
    product_settings = {
        **{k: v for k, v in tenants.environment("", "").items() if k not in _URLS},
        "DATAVERSE_WEBHOOK_HEADER": settings.dataverse_webhook_header,
        "MARKETO_WEBHOOK_HEADER": settings.marketo_webhook_header,
        "DEMO_CLIENT_ID": tenants.demo_client_id,
        "DEMO_CLIENT_SECRET": tenants.secrets.demo_client_secret,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / persistence.SNAPSHOT
    extra = {"secrets": vars(tenants.secrets), "settings": product_settings}
    persistence.write_json(path, persistence.snapshot(tenants.dataverse, tenants.marketo, extra))
    return path


def _configured_secrets(settings: Settings) -> dict[str, SecretStr]:
    return {
        "DATAVERSE_CLIENT_SECRET": settings.dataverse_client_secret,
        "MARKETO_CLIENT_SECRET": settings.marketo_client_secret,
        "MARKETO_CLIENT_ID": SecretStr(settings.marketo_client_id),
        "DATAVERSE_WEBHOOK_SECRET": settings.dataverse_webhook_secret,
        "MARKETO_WEBHOOK_SECRET": settings.marketo_webhook_secret,
    }


def _user_id(name: str) -> str:
    return str(uuid.uuid5(uuid.UUID(TENANT_ID), f"systemuser:{name}"))


def _http_sender() -> Callable[[str, Mapping[str, str], bytes], None]:
    client = httpx.Client(timeout=30.0)

    def send(url: str, headers: Mapping[str, str], body: bytes) -> None:
        # Marketo's webhooks are fire-and-forget: the lead-changes feed is the reliable path.
        with suppress(httpx.TransportError):
            client.post(url, headers=dict(headers), content=body)

    return send


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m local.tenants", description="Provision the simulated tenants for python -m local.simulators"
    )
    parser.add_argument("--provision", required=True, type=Path, metavar="DIR", help="the simulators' directory")
    parser.add_argument("--product-url", default="http://127.0.0.1:7071", help="where their webhooks post")
    args = parser.parse_args(argv)
    print(f"provisioned {provision(args.provision, args.product_url)}")


if __name__ == "__main__":
    main()
