"""The simulated tenants on disk, so they outlive their own process (``python -m local.simulators``).

One JSON file, ``DIR/simulators.json``, written atomically (a temporary file renamed over the old one) a moment
after any request that may have changed something (anything but GET/HEAD) and once more on SIGTERM/Ctrl-C;
read back on start. It is self-contained: the *schema* the admin set up (``python -m local.tenants --provision``
writes the first file from the mapping, as ``make run`` builds its in-process tenants) and the *state*:

- Dataverse schema: the tenant, the organisation, every custom column (the mapped ones the customiser added,
  with their options), the app registrations (client ids, secrets, application users).
- Dataverse state: every row of every table (users and plug-in registrations included), their row versions
  (ETags) and the change log with the organisation's version counter (so the product's delta links stay
  valid), column security grants, and the issued access tokens (a token the product holds keeps working across
  a restart until it expires on the wall clock). The plug-in steps' service endpoints are pointed at the
  product URL given at each start.
- Marketo schema: the API user's client id and secret, the custom object types, the Call Webhook step (its
  URL follows the product URL given at start, like the plug-in steps).
- Marketo state: lead fields (custom ones included), leads, the activity log behind the lead-changes feed, the
  id counters, standard and custom object records, and the issued access tokens.
- ``secrets`` and ``settings``: what the product needs to reach the tenants (credentials, webhook secrets and
  headers); ``DIR/settings.json`` adds the URLs.

Not persisted: planned faults and outages, webhook switches, call and throttle counters, the sliding service
protection window, Marketo's daily quota usage and its rate window, bulk import jobs, webhook posts not sent yet.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from local.simulators.dataverse.authority import AppRegistration, IssuedToken
from local.simulators.dataverse.schema import Column
from local.simulators.dataverse.simulator import DataverseSimulator
from local.simulators.marketo.fields import FieldDef
from local.simulators.marketo.objects import ObjectType, custom_object
from local.simulators.marketo.simulator import MarketoSimulator
from local.simulators.marketo.webhook import Sender, WebhookConfig

log = logging.getLogger("local.simulators")

SNAPSHOT = "simulators.json"
VERSION = 1
_SYSTEM_OBJECT_FIELDS = frozenset(f.name for f in custom_object("x", dedupe_fields=(), fields={}).fields)


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))  # a deep copy, and proof that it is plain JSON
    return copied


def repoint(url: str, product_url: str) -> str:
    """``url`` with the scheme, host and port of ``product_url`` (its path and query kept)."""
    old, new = urlsplit(url), urlsplit(product_url)
    return urlunsplit((new.scheme, new.netloc, old.path, old.query, old.fragment))


# --- Dataverse -------------------------------------------------------------------------------------------------


def dataverse_schema(sim: DataverseSimulator) -> dict[str, Any]:
    columns = {
        name: [asdict(column) for column in table.columns.values() if column.custom]
        for name, table in sim.tables.items()
    }
    apps = [
        {"client_id": a.client_id, "user_id": a.user_id, "secret": a.secret, "certificate": a.certificate_public_key}
        for a in sim.authority.apps.values()
    ]
    return _copy(
        {
            "tenant_id": sim.tenant_id,
            "organization_name": sim.organization_name,
            "organization_id": sim.organization_id,
            "columns": {name: found for name, found in columns.items() if found},
            "apps": apps,
        }
    )


def _column(saved: dict[str, Any]) -> Column:
    return Column(
        **saved
        | {
            "options": {int(k): v for k, v in saved["options"].items()},
            "states": {int(k): int(v) for k, v in saved["states"].items()},
            "targets": tuple(saved["targets"]),
        }
    )


def build_dataverse(schema: dict[str, Any], clock: Callable[[], float] = time.time) -> DataverseSimulator:
    sim = DataverseSimulator(
        tenant_id=schema["tenant_id"],
        organization_name=schema["organization_name"],
        organization_id=schema["organization_id"],
        clock=clock,
    )
    for table, columns in schema["columns"].items():
        for saved in columns:
            sim.tables[table].columns[saved["name"]] = _column(saved)
    for app in schema["apps"]:
        sim.authority.apps[app["client_id"]] = AppRegistration(
            app["client_id"], app["user_id"], app["secret"], app["certificate"]
        )
    return sim


def point_plugin_steps(sim: DataverseSimulator, product_url: str) -> None:
    with sim.org.lock:
        for endpoint in sim.org.state.rows.get("serviceendpoint", {}).values():
            endpoint["url"] = repoint(str(endpoint["url"]), product_url)
            endpoint["name"] = endpoint["url"]


def dataverse_state(sim: DataverseSimulator) -> dict[str, Any]:
    with sim.org.lock:
        state = sim.org.state
        snapshot = {
            "rows": state.rows,
            "versions": state.versions,
            "log": {table: [list(entry) for entry in entries] for table, entries in state.log.items()},
            "version": state.version,
            "grants": {user: {k: list(v) for k, v in grants.items()} for user, grants in sim.org.grants.items()},
            "tokens": {token: asdict(issued) for token, issued in sim.authority.tokens.items()},
            "issued": sim.authority.issued,
        }
        copied: dict[str, Any] = json.loads(json.dumps(snapshot))  # a deep copy under the lock, and proof of JSON
        return copied


def restore_dataverse(sim: DataverseSimulator, data: dict[str, Any]) -> None:
    """Put a saved organisation's rows, change log, grants and tokens back."""
    with sim.org.lock:
        state = sim.org.state
        for table, rows in data["rows"].items():
            if table not in sim.tables:  # a table this version of the simulator no longer has
                continue
            state.rows[table] = rows
            state.versions[table] = {k: int(v) for k, v in data["versions"].get(table, {}).items()}
            state.log[table] = [(int(v), str(i), str(kind)) for v, i, kind in data["log"].get(table, [])]
        state.version = max(state.version, int(data["version"]))
        sim.org.grants = {
            user: {k: (bool(r), bool(u), bool(c)) for k, (r, u, c) in grants.items()}
            for user, grants in data["grants"].items()
        }
        sim.authority.tokens.update({t: IssuedToken(**issued) for t, issued in data["tokens"].items()})
        sim.authority.issued = int(data["issued"])


# --- Marketo ---------------------------------------------------------------------------------------------------


def _records(kind: ObjectType) -> dict[str, Any]:
    return {"records": [[key, record] for key, record in kind.records.items()], "next_id": kind._next_id}


def marketo_schema(sim: MarketoSimulator) -> dict[str, Any]:
    hook = sim.webhook
    return _copy(
        {
            "client_id": sim.identity._client_id,
            "client_secret": sim.identity._client_secret,
            "custom_objects": [
                {
                    "name": kind.name,
                    "display_name": kind.display_name,
                    "dedupe_fields": list(kind.dedupe_fields),
                    "fields": {f.name: f.data_type for f in kind.fields if f.name not in _SYSTEM_OBJECT_FIELDS},
                }
                for kind in sim.custom_objects.values()
            ],
            "webhook": None
            if hook is None
            else {
                "url": hook.url,
                "secret": hook.secret.get_secret_value(),
                "header": hook.header,
                "fields": None if hook.fields is None else sorted(hook.fields),
            },
        }
    )


def build_marketo(schema: dict[str, Any], product_url: str | None, sender: Sender | None) -> MarketoSimulator:
    sim = MarketoSimulator(client_id=schema["client_id"], client_secret=schema["client_secret"])
    for kind in schema["custom_objects"]:
        sim.custom_objects[kind["name"]] = custom_object(
            kind["name"], dedupe_fields=kind["dedupe_fields"], fields=kind["fields"], display_name=kind["display_name"]
        )
    hook = schema["webhook"]
    if hook is not None:
        url = hook["url"] if product_url is None else repoint(hook["url"], product_url)
        fields = None if hook["fields"] is None else frozenset(hook["fields"])
        sim.configure_webhook(WebhookConfig(url, SecretStr(hook["secret"]), hook["header"], fields), sender)
    return sim


def marketo_state(sim: MarketoSimulator) -> dict[str, Any]:
    with sim._lock:
        leads = sim.leads
        snapshot = {
            "fields": [asdict(f) for f in leads.fields.values()],
            "leads": [[lead_id, lead] for lead_id, lead in leads.leads.items()],
            "activities": leads.activities,
            "times": leads._times,
            "next_lead": leads._next_lead,
            "next_field": leads._next_field,
            "objects": {name: _records(kind) for name, kind in sim.objects.items()},
            "custom_objects": {name: _records(kind) for name, kind in sim.custom_objects.items()},
            "tokens": dict(sim.identity._tokens),
            "current_token": sim.identity._current,
        }
        copied: dict[str, Any] = json.loads(json.dumps(snapshot))
        return copied


def _restore_records(kind: ObjectType | None, data: dict[str, Any]) -> None:
    if kind is None:  # a custom object the mapping no longer defines
        return
    kind.records = dict(data["records"])
    kind._next_id = int(data["next_id"])


def restore_marketo(sim: MarketoSimulator, data: dict[str, Any]) -> None:
    with sim._lock:
        leads = sim.leads
        leads.fields = {f["name"]: FieldDef(**f) for f in data["fields"]}
        leads.leads = {int(lead_id): lead for lead_id, lead in data["leads"]}
        leads.activities = data["activities"]
        leads._times = [float(t) for t in data["times"]]
        leads._next_lead = int(data["next_lead"])
        leads._next_field = int(data["next_field"])
        for name, saved in data["objects"].items():
            _restore_records(sim.objects.get(name), saved)
        for name, saved in data["custom_objects"].items():
            _restore_records(sim.custom_objects.get(name), saved)
        with sim.identity._lock:
            sim.identity._tokens = {token: float(expiry) for token, expiry in data["tokens"].items()}
            sim.identity._current = data["current_token"]


# --- the file --------------------------------------------------------------------------------------------------


def load(directory: Path) -> dict[str, Any] | None:
    path = directory / SNAPSHOT
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != VERSION:
        raise ValueError(f"{path} was written by another version of the simulators ({data.get('version')!r})")
    return data


def write_json(path: Path, data: object) -> None:
    """Atomically: a reader (or a crash) sees the old file or the new one, never half of one."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def snapshot(dataverse: DataverseSimulator, marketo: MarketoSimulator, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": VERSION,
        **extra,
        "dataverse": {"schema": dataverse_schema(dataverse), "state": dataverse_state(dataverse)},
        "marketo": {"schema": marketo_schema(marketo), "state": marketo_state(marketo)},
    }


def build(
    data: dict[str, Any], product_url: str, marketo_sender: Sender | None
) -> tuple[DataverseSimulator, MarketoSimulator]:
    """Both tenants from a snapshot, their webhooks pointed at ``product_url``."""
    dataverse = build_dataverse(data["dataverse"]["schema"])
    restore_dataverse(dataverse, data["dataverse"]["state"])
    point_plugin_steps(dataverse, product_url)
    marketo = build_marketo(data["marketo"]["schema"], product_url, marketo_sender)
    restore_marketo(marketo, data["marketo"]["state"])
    return dataverse, marketo


class Snapshots:
    """Saves both simulators to ``DIR/simulators.json`` when :meth:`touch` has been called since the last save."""

    def __init__(
        self,
        directory: Path,
        dataverse: DataverseSimulator,
        marketo: MarketoSimulator,
        extra: dict[str, Any],
        *,
        interval: float = 0.2,
    ) -> None:
        self.directory = directory
        self.dataverse = dataverse
        self.marketo = marketo
        self.extra = extra
        self.interval = interval
        self.saves = 0
        self._dirty = threading.Event()
        self._stopped = threading.Event()
        self._save_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="simulator-snapshots", daemon=True)

    def touch(self) -> None:
        self._dirty.set()

    def save(self) -> None:
        with self._save_lock:
            self._dirty.clear()
            write_json(self.directory / SNAPSHOT, snapshot(self.dataverse, self.marketo, self.extra))
            self.saves += 1

    def start(self) -> Snapshots:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.is_set():
            if self._dirty.wait(0.5) and not self._stopped.wait(self.interval):
                try:
                    self.save()
                except Exception:  # a failed save must not end the saving: the next change tries again
                    log.exception("could not save the simulators' state to %s", self.directory)
                    self._dirty.set()

    def stop(self) -> None:
        """Stop the saver and save once more (SIGTERM, Ctrl-C)."""
        self._stopped.set()
        self._thread.join(timeout=5)
        self.save()
