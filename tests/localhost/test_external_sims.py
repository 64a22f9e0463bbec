"""The simulators as their own process (``python -m local.simulators --state DIR``) and the product against them
(``python -m local --sims DIR``): the product is SIGKILLed and restarted against the same tenants and store, and
the simulators themselves restart with their records and credentials. Real processes and sockets, so every wait
is a bounded poll with a deadline (no fixed sleep); the whole test stays well under 20 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from local.loopback import free_port
from local.simulators.persistence import build, marketo_state, snapshot
from local.tenants import provision

ROOT = Path(__file__).parents[2]
DEADLINE = 30.0  # generous: two cold Python starts on a loaded 2-core machine
T = TypeVar("T")


def until(what: str, check: Callable[[], T | None], deadline: float = DEADLINE) -> T:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    end = time.monotonic() + deadline
    while True:
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what} after {deadline} s")
        time.sleep(0.05)


def _environment() -> dict[str, str]:
    """This environment without any tenant setting that would point a child elsewhere."""
    prefixes = ("DATAVERSE_", "MARKETO_", "SYNC_TARGET", "LOCAL_FUNCTIONS_KEY")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


class Processes:
    def __init__(self, state: Path, logs: Path) -> None:
        self.state, self.logs = state, logs
        self.ports = {"product": free_port(), "dataverse": free_port(), "marketo": free_port()}
        self.started: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own modules, with this interpreter
            [sys.executable, "-m", *args], cwd=ROOT, env=_environment(), stdout=log, stderr=subprocess.STDOUT
        )
        self.started.append(process)
        return process

    def simulators(self) -> subprocess.Popen[bytes]:
        (self.state / "settings.json").unlink(missing_ok=True)
        process = self._spawn(
            "simulators",
            "local.simulators",
            "--state",
            str(self.state),
            "--dataverse-port",
            str(self.ports["dataverse"]),
            "--marketo-port",
            str(self.ports["marketo"]),
            "--product-url",
            f"http://127.0.0.1:{self.ports['product']}",
        )
        until("the simulators' settings file", (self.state / "settings.json").exists)
        return process

    def product(self) -> subprocess.Popen[bytes]:
        process = self._spawn("product", "local", "--sims", str(self.state), "--no-timers")
        url = f"http://127.0.0.1:{self.ports['product']}/api/status"
        until("the product's local host", lambda: httpx.get(url, timeout=2).status_code == 200)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Processes(tmp_path / "sims", logs)
    try:
        yield running
    finally:
        running.stop_all()


class Tenants:
    """Raw calls to both simulators, as the README's curl lines make them."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.s = settings
        self.http = httpx.Client(timeout=10)
        self.dv, self.mk = settings["DATAVERSE_URL"], settings["MARKETO_BASE_URL"]

    def dataverse_token(self) -> dict[str, str]:
        token = self.http.post(
            f"{self.dv}/{self.s['DATAVERSE_TENANT_ID']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.s["DEMO_CLIENT_ID"],
                "client_secret": self.s["DEMO_CLIENT_SECRET"],
                "scope": f"{self.dv}/.default",
            },
        ).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def lead(self, email: str) -> dict[str, Any] | None:
        token = self.http.get(
            f"{self.mk}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": self.s["MARKETO_CLIENT_ID"],
                "client_secret": self.s["MARKETO_CLIENT_SECRET"],
            },
        ).json()["access_token"]
        found = self.http.get(
            f"{self.mk}/rest/v1/leads.json",
            params={"filterType": "email", "filterValues": email, "fields": "email,title"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["result"]
        return found[0] if found else None


def test_the_product_is_killed_and_restarted_against_the_same_simulated_tenants(processes: Processes) -> None:
    simulators = processes.simulators()
    settings = json.loads((processes.state / "settings.json").read_text())
    tenants = Tenants(settings)
    product = processes.product()

    created = tenants.http.post(
        f"{tenants.dv}/api/data/v9.2/contacts",
        headers=tenants.dataverse_token(),
        json={"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"},
    )
    assert created.status_code == 204
    contact = created.headers["OData-EntityId"]
    assert until("Ada in Marketo", lambda: tenants.lead("ada@example.com"))["title"] == "Engineer"

    product.send_signal(signal.SIGKILL)
    product.wait(timeout=10)
    processes.product()  # the same tenants, the same SQLite store under the same directory
    changed = tenants.http.patch(contact, headers=tenants.dataverse_token(), json={"jobtitle": "Countess"})
    assert changed.status_code == 204
    until("the new title in Marketo", lambda: (tenants.lead("ada@example.com") or {}).get("title") == "Countess")
    assert (processes.state / "state.sqlite").exists()

    simulators.send_signal(signal.SIGTERM)  # saved on the way out, and back with the same records and credentials
    assert simulators.wait(timeout=10) == 0
    processes.simulators()
    assert json.loads((processes.state / "settings.json").read_text()) == settings
    again = tenants.http.get(contact + "?$select=jobtitle", headers=tenants.dataverse_token())
    assert again.json()["jobtitle"] == "Countess"
    assert (tenants.lead("ada@example.com") or {}).get("title") == "Countess"


def test_a_snapshot_rebuilds_both_tenants_with_their_records_tokens_and_change_log(tmp_path: Path) -> None:
    path = provision(tmp_path, "http://127.0.0.1:9")
    first_data = json.loads(path.read_text())
    first, first_mk = build(first_data, "http://127.0.0.1:9", None)
    first.sender = lambda url, headers, body: 200
    users = {row["fullname"]: row["systemuserid"] for row in first.rows("systemuser")}
    grace = {"lastname": "Hopper", "emailaddress1": "grace@example.com"}
    first.user_create("contact", grace, user_id=users["Dana Admin"])
    assert first_mk.leads.create_fields([{"name": "later", "displayName": "Later", "dataType": "string"}])
    secrets = first_data["secrets"]
    mk_token = first_mk(
        httpx.Request(
            "GET",
            "https://123-abc-456.mktorest.com/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": secrets["marketo_client_id"],
                "client_secret": secrets["marketo_client_secret"],
            },
        )
    ).json()["access_token"]
    dv_token = first(
        httpx.Request(
            "POST",
            f"https://login.microsoftonline.com/{first.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": first_data["settings"]["DEMO_CLIENT_ID"],
                "client_secret": secrets["demo_client_secret"],
                "scope": "https://x.example/.default",
            },
        )
    ).json()["access_token"]
    saved = json.loads(json.dumps(snapshot(first, first_mk, {})))  # the file is plain JSON

    second, second_mk = build(saved, "http://127.0.0.1:10", None)
    assert second.rows("contact") == first.rows("contact")
    assert second.tables["contact"].columns == first.tables["contact"].columns  # the custom columns too
    assert second.org.state.log["contact"] == first.org.state.log["contact"]
    assert second.org.state.version == first.org.state.version
    assert second.authority.token_info(dv_token) is not None
    assert second_mk.identity.check(mk_token) is None
    assert "later" in second_mk.leads.fields
    assert set(second_mk.custom_objects) == set(first_mk.custom_objects)
    assert marketo_state(second_mk) == saved["marketo"]["state"]
    endpoints = {row["url"] for row in second.rows("serviceendpoint")}
    assert endpoints == {"http://127.0.0.1:10/api/dataverse/webhook"}  # pointed at the product URL of this start
    assert second_mk.webhook is not None
    assert second_mk.webhook.url == "http://127.0.0.1:10/api/marketo/webhook"
