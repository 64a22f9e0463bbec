"""Which handler answers a Web API path under ``/api/data/v9.2/``.

Resource paths as the Web API addresses them: ``<entityset>``, ``<entityset>(<id>)``, ``<entityset>(<id>)/<property>``,
``<entityset>(<id>)/Microsoft.Dynamics.CRM.<Operation>``, unbound functions (``WhoAmI``, ``WhoAmI()``),
``$batch`` and ``EntityDefinitions...``. Keys may be written with or without braces or quotes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from local.simulators.dataverse import actions, delta, errors, metadata, query, records
from local.simulators.dataverse.rows import Caller, Organisation
from local.simulators.dataverse.schema import Table
from local.simulators.dataverse.wire import API, Prefer

_ROUTE = re.compile(r"^(?P<set>[\w$]+)(?:\((?P<key>[^)]*)\))?(?:/(?P<rest>.*))?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
CRM = "Microsoft.Dynamics.CRM."


def route_label(request: httpx.Request) -> str:
    """A short name for a call (``GET leads``, ``PATCH leads()``, ``GET WhoAmI``), for counting calls."""
    match = _ROUTE.match(request.url.path[len(API) :])
    if match is None:
        return f"{request.method} ?"
    label = match.group("set") + ("()" if match.group("key") is not None else "")
    if match.group("rest"):
        label += "/" + match.group("rest").split("/")[-1].split("(")[0].removeprefix(CRM)
    return f"{request.method} {label}"


def record_key(key: str) -> str:
    key = key.strip().strip("'").strip("{}")
    if not _GUID.match(key):
        raise errors.ApiError(400, "0x80060888", f"Bad Request - Error in query syntax: key '{key}' is not a GUID.")
    return key.lower()


class Router:
    def __init__(
        self,
        org: Organisation,
        *,
        check: Callable[[Table, Mapping[str, Any]], None],
        batch: Callable[[httpx.Request], httpx.Response],
        business_unit_id: str,
        organization_id: str,
    ) -> None:
        self.org = org
        self.check = check
        self.batch = batch
        self.business_unit_id = business_unit_id
        self.organization_id = organization_id

    def dispatch(self, request: httpx.Request, caller: Caller) -> httpx.Response:
        """Answer one request (raising ``ApiError`` for refusals); the caller holds the organisation's lock."""
        tail = request.url.path[len(API) :]
        match = _ROUTE.match(tail)
        if match is None:
            raise errors.segment_not_found(tail)
        name, key, rest = match.group("set"), match.group("key"), match.group("rest")
        if name == "$batch":
            if request.method != "POST":
                raise errors.not_allowed(request.method, "$batch")
            return self.batch(request)
        if name == "EntityDefinitions":
            return metadata.handle(self.org, request, key, rest)
        function = actions.unbound(
            self.org,
            request,
            caller,
            name.removeprefix(CRM),
            business_unit_id=self.business_unit_id,
            organization_id=self.organization_id,
        )
        if function is not None:
            return function
        table = self.org.by_set(name)
        if table is None:
            raise errors.segment_not_found(name)
        prefer = Prefer.parse(request.headers.get("prefer"))
        if request.method == "GET":
            self.org.check_read(caller, table)
        if key is None:
            if rest:
                return self._bound(request, caller, table, None, rest)
            if request.method == "GET":
                if delta.wants_changes(request, prefer):
                    return delta.changes(self.org, request, table, caller, prefer)
                return query.query(self.org, request, table, caller, prefer)
            if request.method == "POST":
                return records.create(self.org, request, table, caller, prefer, self.check)
            raise errors.not_allowed(request.method, f"the entity set '{table.entity_set}'")
        record_id = record_key(key)
        if rest:
            return self._bound(request, caller, table, record_id, rest)
        if request.method == "GET":
            return records.retrieve(self.org, request, table, record_id, caller, prefer)
        if request.method == "PATCH":
            return records.upsert(self.org, request, table, record_id, caller, prefer, self.check)
        if request.method == "DELETE":
            return records.delete(self.org, request, table, record_id, caller)
        raise errors.not_allowed(request.method, f"a {table.logical_name} record")

    def _bound(
        self, request: httpx.Request, caller: Caller, table: Table, record_id: str | None, rest: str
    ) -> httpx.Response:
        operation = rest.removeprefix(CRM).removesuffix("()")
        if record_id is None:
            raise errors.segment_not_found(rest)
        if table.logical_name == "systemuser" and operation == "RetrievePrincipalAttributePrivileges":
            return actions.principal_attribute_privileges(self.org, request, record_id)
        if table.logical_name == "lead" and operation == "QualifyLead":
            if request.method != "POST":
                raise errors.not_allowed(request.method, "the action QualifyLead")
            return actions.qualify_lead(self.org, request, caller, record_id)
        if rest.startswith(CRM):
            raise errors.segment_not_found(rest)
        return records.property_value(self.org, request, table, record_id, rest, caller, self.check)
