"""The one Dataverse request loop every operation goes through, and the tables it knows by name.

Synchronous ``httpx.Client`` underneath (authentication is its ``httpx.Auth``, see :mod:`shared.dataverse.auth`).
A request takes a slot from the shared :class:`ConcurrencyGate` (or the tenant's budget through it), is sent, then classified by
:func:`shared.dataverse.faults.classify`; throttling, 5xx and timeouts are retried with backoff and jitter inside
the :class:`Backoff` time budget (``Retry-After`` is a floor), everything else is raised as the typed error the
caller must act on. Non-idempotent requests (creates) are retried only when the service certainly did not run them
(429, connection refused). Reads, writes and metadata (:mod:`~shared.dataverse.reads`,
:mod:`~shared.dataverse.writes`, :mod:`~shared.dataverse.metadata`) build on this and nothing else.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from shared.dataverse.concurrency import ConcurrencyGate
from shared.dataverse.faults import Action, Fault, classify, transport_fault
from shared.errors import StopSync
from shared.http.backoff import Backoff


@dataclass(frozen=True, slots=True)
class EntityInfo:
    logical_name: str
    entity_set_name: str
    primary_id_attribute: str
    primary_name_attribute: str | None = None


STANDARD_ENTITIES: Mapping[str, EntityInfo] = {
    info.logical_name: info
    for info in (
        EntityInfo("lead", "leads", "leadid", "fullname"),
        EntityInfo("contact", "contacts", "contactid", "fullname"),
        EntityInfo("account", "accounts", "accountid", "name"),
        EntityInfo("systemuser", "systemusers", "systemuserid", "fullname"),
        EntityInfo("opportunity", "opportunities", "opportunityid", "name"),
        EntityInfo("team", "teams", "teamid", "name"),
    )
}


@dataclass(frozen=True, slots=True)
class WhoAmI:
    user_id: str
    business_unit_id: str
    organization_id: str


def odata_literal(value: str) -> str:
    """A string as an OData literal (quotes doubled), for keys and filters."""
    return "'" + value.replace("'", "''") + "'"


class DataverseSession:
    def __init__(
        self,
        http: httpx.Client,
        org_url: str,
        *,
        auth: httpx.Auth | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        max_concurrency: int = 16,
        gate: ConcurrencyGate | None = None,
        api_version: str = "v9.2",
        max_url_length: int = 4096,
        entities: Mapping[str, EntityInfo] | None = None,
    ) -> None:
        self._http = http
        self.org_url = org_url.rstrip("/")
        self.service_root = f"{self.org_url}/api/data/{api_version}/"
        self._auth = auth
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self.gate = gate or ConcurrencyGate(max_concurrency)
        self._max_url_length = max_url_length
        self._entities: dict[str, EntityInfo] = dict(STANDARD_ENTITIES)
        self._entities.update(entities or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.org_url!r})"

    @property
    def clock(self) -> Callable[[], float]:
        """What the retries' time budget is measured with (a test's injected clock, or ``time.monotonic``)."""
        return self._clock

    @property
    def sleep(self) -> Callable[[float], None]:
        return self._sleep

    def with_gate(self, gate: ConcurrencyGate) -> Self:
        """The same client (connection, token, known tables) sending through ``gate``: the composition root gives
        the reconcile the live lane of the shared budget and the job runner the backfill lane."""
        twin = copy.copy(self)
        twin.gate = gate
        return twin

    # --- the one request loop ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.service_root + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send with retries; return the 2xx/3xx response or raise the typed error."""
        all_headers = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
        all_headers.update(headers or {})
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            request = self._http.build_request(
                method, self._url(path), params=params, json=json, content=content, headers=all_headers
            )
            fault: Fault | None
            try:
                with self.gate.slot():
                    response = self._http.send(request, auth=self._auth) if self._auth else self._http.send(request)
                    response.read()
            except httpx.TransportError as exc:
                fault = transport_fault(exc)
                sent_for_sure = not isinstance(exc, httpx.ConnectError)
            else:
                self.gate.observe_hint(response.headers.get("x-ms-dop-hint"))
                fault = classify(response)
                if fault is None:
                    return response
                sent_for_sure = fault.action is not Action.THROTTLED
                if fault.action is Action.THROTTLED:
                    self.gate.throttled(fault.retry_after)
            if not fault.action.retryable or (sent_for_sure and not idempotent):
                raise fault.error()
            delay = self._backoff.delay(attempt, retry_after=fault.retry_after, rand=self._rand)
            if not self._backoff.allows(attempt, self._clock() - started, delay):
                raise fault.error()
            self._sleep(delay)

    def _get_json(self, path: str, *, params: Mapping[str, str] | None = None, prefer: str | None = None) -> Any:
        response = self.request("GET", path, params=params, headers={"Prefer": prefer} if prefer else None)
        try:
            return response.json()
        except ValueError:
            raise StopSync(
                f"Dataverse answered {path.split('?', maxsplit=1)[0]} with a body that is not JSON"
            ) from None

    # --- entities ---------------------------------------------------------------------------------------------

    def entity(self, logical_name: str) -> EntityInfo:
        """Entity set and primary id of a table (standard ones known; others read from metadata once)."""
        known = self._entities.get(logical_name)
        if known is not None:
            return known
        row = self._get_json(
            f"EntityDefinitions(LogicalName={odata_literal(logical_name)})",
            params={"$select": "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute"},
        )
        info = EntityInfo(
            str(row["LogicalName"]),
            str(row["EntitySetName"]),
            str(row["PrimaryIdAttribute"]),
            row.get("PrimaryNameAttribute"),
        )
        self._entities[logical_name] = info
        return info

    def entity_set_name(self, logical_name: str) -> str:
        return self.entity(logical_name).entity_set_name

    def whoami(self) -> WhoAmI:
        body = self._get_json("WhoAmI")
        return WhoAmI(str(body["UserId"]).lower(), str(body["BusinessUnitId"]).lower(), str(body["OrganizationId"]))
