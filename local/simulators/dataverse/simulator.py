"""A faithful, in-memory Dataverse organisation as an ``httpx`` handler (``Request -> Response``).

Serves the Entra-like authority MSAL needs, the Web API under ``/api/data/v9.2/`` (queries with ``$select``,
``$filter``, ``$top``, paging, annotations, change tracking; create/update/delete with ETags and If-Match;
``$batch`` with change sets; WhoAmI; metadata; column security; QualifyLead) with Dataverse's error bodies,
service protection limits and headers, and posts RemoteExecutionContexts to registered webhooks after each write,
like a registered asynchronous plugin step.

Thread-safe: one lock guards the organisation's state; webhook deliveries are made after the lock is released
(and only for committed changes: a rolled-back change set sends nothing).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import html
import json
import math
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import unquote, urlencode

import httpx

from local.simulators.dataverse.authority import AppRegistration, Authority
from local.simulators.dataverse.odata import FilterError, compile_filter
from local.simulators.dataverse.schema import (
    REGISTRATION_TABLES,
    SDK_MESSAGES,
    Column,
    Table,
    default_tables,
    metadata_id,
)
from local.simulators.dataverse.webhooks import Delivery, Sender, deliver, http_sender
from shared.dataverse.batch import boundary_of, parse_http_message, split_multipart
from shared.dataverse.context import dumps_context, render_context
from shared.dataverse.values import EntityRef, option

API = "/api/data/v9.2/"
_ROUTE = re.compile(r"^(?P<set>[\w$]+)(?:\((?P<key>[^)]*)\))?(?:/(?P<rest>.*))?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_BIND = re.compile(r"^/?(?P<set>\w+)\((?P<id>[0-9a-fA-F-]{36})\)$")
# Navigation properties of polymorphic lookups: the name a body binds through -> the lookup column it sets.
_NAVIGATION = {
    ("sdkmessageprocessingstep", "eventhandler_serviceendpoint"): "eventhandler",
    ("sdkmessageprocessingstep", "eventhandler_plugintype"): "eventhandler",
}
WINDOW_SECONDS = 300.0
_QUERY_SAFE = "$,()'"  # Dataverse writes $skiptoken / $select literally in links
EXECUTION_TIME_LIMIT_MS = 1_200_000


class ApiError(Exception):
    """Raised inside the simulator; becomes a Dataverse-shaped error response."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> httpx.Response:
        return httpx.Response(
            self.status,
            headers={"OData-Version": "4.0", **self.headers},
            json={"error": {"code": self.code, "message": self.message}},
        )


@dataclass(slots=True)
class InjectedFault:
    """One planned failure. ``kind``: ``status`` (answer ``status``), ``timeout`` (hang ``delay`` s, then time out)."""

    kind: str = "status"
    status: int = 503
    code: str = "0x80040216"
    message: str = "An unexpected error occurred."
    retry_after: float | None = None
    path_contains: str | None = None
    method: str | None = None
    times: int = 1
    delay: float = 0.3

    def matches(self, request: httpx.Request) -> bool:
        if self.method and request.method != self.method:
            return False
        return not self.path_contains or self.path_contains in unquote(str(request.url))


@dataclass(slots=True)
class _State:
    rows: dict[str, dict[str, dict[str, Any]]]
    versions: dict[str, dict[str, int]]
    log: dict[str, list[tuple[int, str, str]]]
    version: int


@dataclass(slots=True)
class _Caller:
    user_id: str
    depth: int = 1


@dataclass(slots=True)
class _Prefer:
    max_page_size: int = 5000
    track_changes: bool = False
    annotations: bool = False
    return_representation: bool = False
    continue_on_error: bool = False

    @classmethod
    def parse(cls, header: str | None) -> _Prefer:
        prefer = cls()
        for raw in (header or "").split(","):
            item = raw.strip()
            if item.startswith("odata.maxpagesize="):
                with contextlib.suppress(ValueError):
                    prefer.max_page_size = max(1, min(5000, int(item.split("=", 1)[1])))
            elif item == "odata.track-changes":
                prefer.track_changes = True
            elif item.startswith("odata.include-annotations"):
                prefer.annotations = True
            elif item == "return=representation":
                prefer.return_representation = True
            elif item == "odata.continue-on-error":
                prefer.continue_on_error = True
        return prefer


def _now_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DataverseSimulator:
    """Call it with an ``httpx.Request``; configure it and inspect it through its methods and attributes."""

    def __init__(
        self,
        *,
        tenant_id: str = "00000000-0000-0000-0000-0000000000aa",
        authority_host: str = "https://login.microsoftonline.com",
        organization_name: str = "contoso",
        organization_id: str = "4ef5b371-e89e-e711-8122-000d3aa2331c",
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        webhook_urls: Iterable[str] = (),
        sender: Sender | None = None,
        max_context_bytes: int = 256 * 1024,
        request_limit: int = 6000,
        concurrency_limit: int = 52,
        dop_hint: int | None = 8,
        token_lifetime: float = 3599,
    ) -> None:
        self.tables: dict[str, Table] = default_tables()
        self._by_set = {t.entity_set: t for t in self.tables.values()}
        self.organization_name = organization_name
        self.organization_id = organization_id
        self.business_unit_id = str(uuid.uuid5(uuid.UUID(organization_id), "root-business-unit"))
        self._clock = clock
        self._now = now
        self.authority = Authority(tenant_id=tenant_id, host=authority_host, clock=clock, token_lifetime=token_lifetime)
        self.webhook_urls = list(webhook_urls)
        self.sender: Sender = sender or http_sender
        self.max_context_bytes = max_context_bytes
        self.request_limit = request_limit
        self.concurrency_limit = concurrency_limit
        self.dop_hint = dop_hint
        self.throttle_retry_after = 2.0

        self._state = _State(
            {t: {} for t in self.tables}, {t: {} for t in self.tables}, {t: [] for t in self.tables}, 1000
        )
        self._lock = threading.RLock()
        self._limits_lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._in_flight: Counter[str] = Counter()
        self._column_grants: dict[str, dict[str, tuple[bool, bool, bool]]] = {}
        self._faults: list[InjectedFault] = []
        self._pending: threading.local = threading.local()
        self.calls: Counter[str] = Counter()
        self.deliveries: list[Delivery] = []
        self.peak_in_flight = 0
        self._seed_sdk_messages()

    # --- configuration and direct access (what a human in the UI would do) ----------------------------------------

    def _seed_sdk_messages(self) -> None:
        """Every organisation has its SDK messages and, per table, a filter for each message a step may use."""
        for message in SDK_MESSAGES:
            message_id = self.seed("sdkmessage", {"name": message}, record_id=metadata_id("sdkmessage", message))
            for table in self.tables.values():
                if table.logical_name in REGISTRATION_TABLES:
                    continue
                if message == "QualifyLead" and table.logical_name != "lead":
                    continue
                self.seed(
                    "sdkmessagefilter",
                    {
                        "name": f"{message} of {table.logical_name}",
                        "primaryobjecttypecode": table.logical_name,
                        "secondaryobjecttypecode": "none",
                        "iscustomprocessingstepallowed": True,
                        "_sdkmessageid_value": message_id,
                    },
                    record_id=metadata_id("sdkmessagefilter", message, table.logical_name),
                )

    def sdk_message_id(self, message: str) -> str:
        return metadata_id("sdkmessage", message)

    def sdk_message_filter_id(self, message: str, entity: str) -> str:
        return metadata_id("sdkmessagefilter", message, entity)

    @property
    def tenant_id(self) -> str:
        return self.authority.tenant_id

    def add_user(self, fullname: str, *, user_id: str | None = None, application_id: str | None = None) -> str:
        first, _, last = fullname.partition(" ")
        values: dict[str, Any] = {"firstname": first, "lastname": last or first, "isdisabled": False}
        if application_id:
            values["applicationid"] = application_id
        return self.seed("systemuser", values, record_id=user_id)

    def add_app(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        certificate_public_key: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Register an Entra app and its Dataverse application user; returns the user's systemuserid."""
        user = self.add_user(f"# {client_id[:8]}", user_id=user_id, application_id=client_id)
        self.authority.apps[client_id] = AppRegistration(client_id, user, secret, certificate_public_key)
        return user

    def grant_column(
        self, user_id: str, entity: str, column: str, *, read: bool = True, update: bool = True, create: bool = True
    ) -> None:
        """Give a user a field security profile entry for a secured column."""
        self._column_grants.setdefault(user_id.lower(), {})[metadata_id(entity, column)] = (read, update, create)

    def inject(self, fault: InjectedFault | None = None, /, **kwargs: Any) -> InjectedFault:
        """Plan a failure for the next matching API request(s)."""
        planned = fault or InjectedFault(**kwargs)
        with self._lock:
            self._faults.append(planned)
        return planned

    def expire_tokens(self) -> None:
        self.authority.revoke_all()

    def register_webhook(
        self,
        url: str,
        *,
        entity: str,
        message: str,
        filtering_attributes: Iterable[str] = (),
        pre_image: Iterable[str] | None = None,
        post_image: Iterable[str] | None = None,
        header: tuple[str, str] | None = None,
        key: str | None = None,
    ) -> str:
        """Register like the Plugin Registration Tool would: service endpoint, step and images; returns the step id."""
        endpoint: dict[str, Any] = {"name": url, "url": url, "contract": 8, "messageformat": 2}
        if header:
            endpoint |= {
                "authtype": 5,
                "authvalue": f'<settings><setting name="{header[0]}" value="{header[1]}" /></settings>',
            }
        elif key:
            endpoint |= {"authtype": 4, "authvalue": key}
        endpoint_id = self.seed("serviceendpoint", endpoint)
        step = {
            "name": f"{message} of {entity}",
            "filteringattributes": ",".join(filtering_attributes),
            "mode": 1,
            "stage": 40,
            "rank": 1,
            "asyncautodelete": False,
            "supporteddeployment": 0,
            "_sdkmessageid_value": self.sdk_message_id(message),
            "_sdkmessagefilterid_value": self.sdk_message_filter_id(message, entity),
            "_eventhandler_value": endpoint_id,
        }
        step_id = self.seed("sdkmessageprocessingstep", step)
        for image_type, attributes in ((0, pre_image), (1, post_image)):
            if attributes is not None:
                self.seed(
                    "sdkmessageprocessingstepimage",
                    {
                        "name": "PreImage" if image_type == 0 else "PostImage",
                        "entityalias": "PreImage" if image_type == 0 else "PostImage",
                        "messagepropertyname": "Id" if message == "Create" else "Target",
                        "imagetype": image_type,
                        "attributes": ",".join(attributes),
                        "_sdkmessageprocessingstepid_value": step_id,
                    },
                )
        return step_id

    def seed(self, entity: str, values: Mapping[str, Any], *, record_id: str | None = None) -> str:
        """Put a row in place without side effects (no webhook): test setup."""
        with self._lock:
            table = self.tables[entity]
            row_id = (record_id or str(uuid.uuid4())).lower()
            row = self._new_row(table, row_id, dict(values), None)
            self._commit(table, row_id, row, "upsert")
        return row_id

    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._state.rows[entity].get(record_id.lower())
            return copy.deepcopy(row) if row is not None else None

    def rows(self, entity: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._state.rows[entity].values()))

    def etag(self, entity: str, record_id: str) -> str:
        with self._lock:
            return f'W/"{self._state.versions[entity][record_id.lower()]}"'

    def user_create(self, entity: str, values: Mapping[str, Any], *, user_id: str) -> str:
        """A person creates a record (fires webhooks as that user)."""
        return str(self._as_user(user_id, lambda caller: self._create(self.tables[entity], dict(values), caller)))

    def user_update(self, entity: str, record_id: str, values: Mapping[str, Any], *, user_id: str) -> None:
        self._as_user(
            user_id, lambda caller: self._update(self.tables[entity], record_id.lower(), dict(values), caller, "*")
        )

    def user_delete(self, entity: str, record_id: str, *, user_id: str) -> None:
        self._as_user(user_id, lambda caller: self._delete(self.tables[entity], record_id.lower(), caller))

    def _as_user(self, user_id: str, action: Callable[[_Caller], Any]) -> Any:
        self._pending.items = []
        try:
            with self._lock:
                result = action(_Caller(user_id.lower()))
        finally:
            self._flush()
        return result

    # --- the handler --------------------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith(API) and self.authority.handles(path):
            with self._lock:
                self.calls[f"{request.method} {path.rsplit('/', 1)[-1]}"] += 1
            return self.authority(request)
        if not path.startswith(API):
            return ApiError(404, "0x80060888", f"Resource not found for the segment '{path}'.").response()
        self._pending.items = []
        try:
            return self._api(request)
        finally:
            self._flush()

    def _api(self, request: httpx.Request) -> httpx.Response:
        fault = self._take_fault(request)
        if fault is not None:
            if fault.kind == "timeout":
                time.sleep(fault.delay)
                raise httpx.ReadTimeout("simulated timeout", request=request)
            headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after is not None else {}
            return ApiError(fault.status, fault.code, fault.message, headers).response()

        caller = self._authenticate(request)
        if isinstance(caller, httpx.Response):
            return caller
        limited = self._admit(caller.user_id)
        if isinstance(limited, httpx.Response):
            return limited
        try:
            with self._lock:
                self.calls[self._route_label(request)] += 1
                try:
                    response = self._dispatch(request, caller)
                except ApiError as error:
                    response = error.response()
        finally:
            with self._limits_lock:
                self._in_flight[caller.user_id] -= 1
        for key, value in self._limit_headers(caller.user_id).items():
            response.headers[key] = value
        return response

    def _take_fault(self, request: httpx.Request) -> InjectedFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.matches(request):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _authenticate(self, request: httpx.Request) -> _Caller | httpx.Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        issued = self.authority.token_info(token) if token else None
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        if issued is None or issued.audience.rstrip("/") != origin.rstrip("/"):
            www = (
                f"Bearer authorization_uri={self.authority.host}/{self.tenant_id}/oauth2/authorize, "
                f"resource_id={origin}"
            )
            return httpx.Response(401, headers={"WWW-Authenticate": www})
        with self._lock:
            user = self._state.rows["systemuser"].get(issued.user_id)
        if user is None or user.get("isdisabled"):
            return ApiError(
                403,
                "0x8004d24b",
                f"The user with SystemUserId={issued.user_id} is disabled or not in the organization.",
            ).response()
        return _Caller(issued.user_id)

    def _admit(self, user_id: str) -> httpx.Response | None:
        now = self._clock()
        with self._limits_lock:
            window = self._windows.setdefault(user_id, deque())
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            if len(window) >= self.request_limit:
                wait = max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
                return ApiError(
                    429,
                    "0x80072322",
                    f"Number of requests exceeded the limit of {self.request_limit} over time window of 300 seconds.",
                    {"Retry-After": str(wait)},
                ).response()
            if self._in_flight[user_id] >= self.concurrency_limit:
                return ApiError(
                    429,
                    "0x80072326",
                    f"Number of concurrent requests exceeded the limit of {self.concurrency_limit}.",
                    {"Retry-After": str(int(self.throttle_retry_after))},
                ).response()
            window.append(now)
            self._in_flight[user_id] += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight[user_id])
        return None

    def _limit_headers(self, user_id: str) -> dict[str, str]:
        with self._limits_lock:
            used = len(self._windows.get(user_id, ()))
        headers = {
            "x-ms-ratelimit-burst-remaining-xrm-requests": str(max(0, self.request_limit - used)),
            "x-ms-ratelimit-time-remaining-xrm-requests": f"{EXECUTION_TIME_LIMIT_MS - 10 * used:.2f}",
            "x-ms-service-request-id": str(uuid.uuid4()),
        }
        if self.dop_hint is not None:
            headers["x-ms-dop-hint"] = str(self.dop_hint)
        return headers

    def _route_label(self, request: httpx.Request) -> str:
        match = _ROUTE.match(request.url.path[len(API) :])
        if match is None:
            return f"{request.method} ?"
        label = match.group("set") + ("()" if match.group("key") is not None else "")
        if match.group("rest"):
            label += "/" + match.group("rest").split("/")[-1].split("(")[0].removeprefix("Microsoft.Dynamics.CRM.")
        return f"{request.method} {label}"

    # --- routing -------------------------------------------------------------------------------------------------

    def _dispatch(self, request: httpx.Request, caller: _Caller) -> httpx.Response:
        tail = request.url.path[len(API) :]
        match = _ROUTE.match(tail)
        if match is None:
            raise ApiError(404, "0x80060888", f"Resource not found for the segment '{tail}'.")
        name, key, rest = match.group("set"), match.group("key"), match.group("rest")
        method = request.method
        if name == "WhoAmI" and method == "GET":
            return self._json(200, self._whoami(request, caller))
        if name == "$batch" and method == "POST":
            return self._batch(request, caller)
        if name == "EntityDefinitions":
            return self._metadata(request, key, rest)
        table = self._by_set.get(name)
        if table is None:
            raise ApiError(404, "0x80060888", f"Resource not found for the segment '{name}'.")
        record_id = self._key(key) if key is not None else None
        if rest:
            return self._bound(request, caller, table, record_id, rest)
        prefer = _Prefer.parse(request.headers.get("prefer"))
        if record_id is None:
            if method == "GET":
                return self._query(request, table, caller, prefer)
            if method == "POST":
                new_id = self._create(table, self._body(request), caller)
                return self._write_response(request, table, new_id, caller, prefer, created=True)
        else:
            if method == "GET":
                row = self._state.rows[table.logical_name].get(record_id)
                if row is None:
                    raise self._not_found(table, record_id)
                select = self._select(table, request.url.params.get("$select"))
                return self._json(200, self._present(table, row, select, caller, prefer.annotations))
            if method == "PATCH":
                body = self._body(request)
                if_match = request.headers.get("if-match")
                if if_match is None and record_id not in self._state.rows[table.logical_name]:
                    self._create(table, {**body, table.primary_id: record_id}, caller)
                else:
                    self._update(table, record_id, body, caller, if_match)
                return self._write_response(request, table, record_id, caller, prefer, created=False)
            if method == "DELETE":
                self._delete(table, record_id, caller, request.headers.get("if-match"))
                return httpx.Response(204, headers={"OData-Version": "4.0"})
        raise ApiError(405, "0x80060888", f"The HTTP method '{method}' is not allowed here.")

    def _key(self, key: str) -> str:
        key = key.strip("'")
        if not _GUID.match(key):
            raise ApiError(400, "0x80060888", f"Bad Request - Error in query syntax: key '{key}' is not a GUID.")
        return key.lower()

    def _body(self, request: httpx.Request) -> dict[str, Any]:
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            raise ApiError(400, "0x80040216", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "0x80040216", "The request body must be a JSON object.")
        return body

    def _json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return httpx.Response(
            status,
            headers={"OData-Version": "4.0", **(headers or {})},
            content=json.dumps(body).encode(),
        )

    def _base(self, request: httpx.Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc.decode()}{API}"

    def _not_found(self, table: Table, record_id: str) -> ApiError:
        return ApiError(404, "0x80040217", f"{table.logical_name} With Id = {record_id} Does Not Exist")

    # --- reads ---------------------------------------------------------------------------------------------------

    def _select(self, table: Table, raw: str | None) -> list[str] | None:
        if not raw:
            return None
        names = [n.strip() for n in raw.split(",") if n.strip()]
        for name in names:
            column = name[1:-6] if name.startswith("_") and name.endswith("_value") else name
            if column not in table.columns:
                raise ApiError(
                    400,
                    "0x80060888",
                    f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{table.logical_name}'.",
                )
        return names

    def _can(self, user_id: str, table: Table, column: Column, index: int) -> bool:
        if not column.secured:
            return True
        grants = self._column_grants.get(user_id, {})
        return bool(grants.get(metadata_id(table.logical_name, column.name), (False, False, False))[index])

    def _wire_name(self, column: Column) -> str:
        return f"_{column.name}_value" if column.type in {"Lookup", "Owner"} else column.name

    def _present(
        self,
        table: Table,
        row: Mapping[str, Any],
        select: list[str] | None,
        caller: _Caller,
        annotations: bool,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": f'W/"{self._state.versions[table.logical_name][row[table.primary_id]]}"'}
        wire_names = select or [self._wire_name(c) for c in table.columns.values()]
        for wire in dict.fromkeys([*wire_names, table.primary_id]):
            column_name = wire[1:-6] if wire.startswith("_") and wire.endswith("_value") else wire
            column = table.columns[column_name]
            value = row.get(self._wire_name(column))
            if not self._can(caller.user_id, table, column, 0):
                value = None  # secured column without read privilege: Dataverse returns null
            out[self._wire_name(column)] = value
            if annotations and value is not None:
                self._annotate(out, column, self._wire_name(column), value)
        return out

    def _annotate(self, out: dict[str, Any], column: Column, wire: str, value: Any) -> None:
        formatted = "@OData.Community.Display.V1.FormattedValue"
        if column.type in {"Picklist", "State", "Status"}:
            out[wire + formatted] = column.options.get(int(value), str(value))
        elif column.type == "MultiSelectPicklist":
            out[wire + formatted] = "; ".join(column.options.get(int(v), v) for v in str(value).split(","))
        elif column.type == "Boolean":
            out[wire + formatted] = column.options.get(int(bool(value)), str(value))
        elif column.type == "Money":
            out[wire + formatted] = f"${Decimal(str(value)):,.2f}"
        elif column.type in {"Integer"}:
            out[wire + formatted] = f"{int(value):,}"
        elif column.type in {"Lookup", "Owner"}:
            target = self.tables[column.target or "systemuser"]
            ref = self._state.rows[target.logical_name].get(str(value))
            out[wire + formatted] = ref.get(target.primary_name) if ref else None
            out[wire + "@Microsoft.Dynamics.CRM.associatednavigationproperty"] = column.name
            out[wire + "@Microsoft.Dynamics.CRM.lookuplogicalname"] = target.logical_name

    def _query(self, request: httpx.Request, table: Table, caller: _Caller, prefer: _Prefer) -> httpx.Response:
        params = request.url.params
        base = self._base(request)
        select = self._select(table, params.get("$select"))
        delta_token = params.get("$deltatoken")
        if prefer.track_changes or delta_token:
            for option_name in ("$filter", "$orderby", "$expand", "$top"):
                if option_name in params:
                    raise ApiError(
                        400,
                        "0x80060888",
                        f'The "{option_name}" query parameter isn\'t supported when Change Tracking is enabled.',
                    )
        if delta_token is not None or (prefer.track_changes and "$skiptoken" in params):
            return self._delta(request, table, caller, prefer=prefer, select=select, delta_token=delta_token)
        try:
            predicate = compile_filter(params.get("$filter"))
        except FilterError as exc:
            raise ApiError(400, "0x80060888", f"Syntax error: {exc}") from None
        rows = [r for r in self._state.rows[table.logical_name].values() if predicate(self._filter_view(table, r))]
        if "$top" in params:
            rows = rows[: int(params["$top"])]
        cursor = self._cursor(params.get("$skiptoken"))
        offset = int(cursor.get("o", 0))
        snapshot = int(cursor.get("s", self._state.version))
        page = rows[offset : offset + prefer.max_page_size]
        context = f"{base}$metadata#{table.entity_set}" + (f"({','.join(select)})" if select else "")
        body: dict[str, Any] = {
            "@odata.context": context,
            "value": [self._present(table, r, select, caller, prefer.annotations) for r in page],
        }
        if offset + prefer.max_page_size < len(rows):
            query = {k: v for k, v in params.items() if k != "$skiptoken"}
            query["$skiptoken"] = self._skiptoken(offset + prefer.max_page_size, snapshot)
            body["@odata.nextLink"] = f"{base}{table.entity_set}?{urlencode(query, safe=_QUERY_SAFE)}"
        elif prefer.track_changes:
            body["@odata.deltaLink"] = self._delta_link(base, table, select, snapshot)
        headers = {"Preference-Applied": "odata.track-changes"} if prefer.track_changes else {}
        return self._json(200, body, headers)

    def _filter_view(self, table: Table, row: Mapping[str, Any]) -> Mapping[str, Any]:
        return row

    def _cursor(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
            cursor = json.loads(raw)
        except ValueError:
            raise ApiError(400, "0x80060888", "The $skiptoken is not valid.") from None
        return cursor if isinstance(cursor, dict) else {}

    def _skiptoken(self, offset: int, snapshot: int, since: int | None = None) -> str:
        cursor = {"o": offset, "s": snapshot} | ({"d": since} if since is not None else {})
        return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")

    def _delta_link(self, base: str, table: Table, select: list[str] | None, version: int) -> str:
        stamp = self._now().strftime("%m/%d/%Y %H:%M:%S")
        query = ({"$select": ",".join(select)} if select else {}) | {"$deltatoken": f"{version}!{stamp}"}
        return f"{base}{table.entity_set}?{urlencode(query, safe=_QUERY_SAFE)}"

    def _delta(
        self,
        request: httpx.Request,
        table: Table,
        caller: _Caller,
        *,
        prefer: _Prefer,
        select: list[str] | None,
        delta_token: str | None,
    ) -> httpx.Response:
        base = self._base(request)
        cursor = self._cursor(request.url.params.get("$skiptoken"))
        if delta_token is not None:
            try:
                since = int(delta_token.split("!", 1)[0])
            except ValueError:
                raise ApiError(400, "0x80060888", "The delta token is not valid.") from None
        else:
            since = int(cursor.get("d", 0))
        snapshot = int(cursor.get("s", self._state.version))
        changed: dict[str, str] = {}
        for version, record_id, kind in self._state.log[table.logical_name]:
            if since < version <= snapshot:
                changed[record_id] = kind
        items: list[dict[str, Any]] = []
        rows = self._state.rows[table.logical_name]
        for record_id, kind in changed.items():  # new or updated rows first, deleted ones last, as Dataverse does
            if kind != "delete" and record_id in rows:
                items.append(self._present(table, rows[record_id], select, caller, prefer.annotations))
        for record_id, kind in changed.items():
            if kind == "delete" and record_id not in rows:
                items.append(
                    {
                        "@odata.context": f"{base}$metadata#{table.entity_set}/$deletedEntity",
                        "id": record_id,
                        "reason": "deleted",
                    }
                )
        offset = int(cursor.get("o", 0))
        page = items[offset : offset + prefer.max_page_size]
        context = f"{base}$metadata#{table.entity_set}" + (f"({','.join(select)})" if select else "") + "/$delta"
        body: dict[str, Any] = {"@odata.context": context, "value": page}
        if offset + prefer.max_page_size < len(items):
            query = {k: v for k, v in request.url.params.items() if k not in {"$skiptoken", "$deltatoken"}}
            query["$skiptoken"] = self._skiptoken(offset + prefer.max_page_size, snapshot, since)
            body["@odata.nextLink"] = f"{base}{table.entity_set}?{urlencode(query, safe=_QUERY_SAFE)}"
        else:
            body["@odata.deltaLink"] = self._delta_link(base, table, select, snapshot)
        return self._json(200, body)

    # --- writes --------------------------------------------------------------------------------------------------

    def _coerce(
        self, table: Table, values: Mapping[str, Any], caller: _Caller | None, *, creating: bool
    ) -> dict[str, Any]:
        """Validate a Web API body and bring it to the stored form (lookups as ``_x_value``)."""
        stored: dict[str, Any] = {}
        for key, value in values.items():
            if key.endswith("@odata.bind"):
                name = key.removesuffix("@odata.bind")
                name = _NAVIGATION.get((table.logical_name, name), name)
                column = table.columns.get(name)
                match = _BIND.match(str(value or ""))
                if column is None or column.type not in {"Lookup", "Owner"}:
                    raise ApiError(
                        400, "0x80060888", f"An undeclared property '{name}' which only has property annotations."
                    )
                if match is None or match.group("set") not in self._by_set:
                    raise ApiError(400, "0x80060888", f"Invalid @odata.bind value '{value}'.")
                target = self._by_set[match.group("set")]
                target_id = match.group("id").lower()
                if target_id not in self._state.rows[target.logical_name]:
                    raise self._not_found(target, target_id)
                stored[f"_{name}_value"] = target_id
                continue
            if key.startswith("_") and key.endswith("_value") and key[1:-6] in table.columns:
                stored[key] = str(value).lower() if value is not None else None
                continue
            column = table.columns.get(key)
            if column is None:
                raise ApiError(
                    400,
                    "0x80060888",
                    f"Invalid property '{key}' was found in entity 'Microsoft.Dynamics.CRM.{table.logical_name}'.",
                )
            if caller is not None and not self._can(caller.user_id, table, column, 2 if creating else 1):
                raise ApiError(
                    403,
                    "0x80040220",
                    f"The user does not have {'create' if creating else 'update'} permissions to a secured field "
                    f"'{column.name}'. The requested operation could not be completed.",
                )
            stored[key] = self._validate(table, column, value)
        return stored

    def _validate(self, table: Table, column: Column, value: Any) -> Any:
        if value is None:
            return None
        bad = ApiError(
            400,
            "0x80040203",
            f"A validation error occurred. The value '{value}' of '{column.name}' on record of type "
            f"'{table.logical_name}' is not valid for a {column.type} column.",
        )
        if column.type in {"String", "Memo", "Uniqueidentifier"}:
            if not isinstance(value, str):
                raise bad
            if column.max_length is not None and len(value) > column.max_length:
                raise ApiError(
                    400,
                    "0x80044331",
                    f"A validation error occurred. The length of the '{column.name}' attribute of the "
                    f"'{table.logical_name}' entity exceeded the maximum allowed length of '{column.max_length}'.",
                )
        elif column.type in {"Picklist", "State", "Status"}:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
            if value not in column.options:
                raise ApiError(
                    400,
                    "0x8004431a",
                    f"A validation error occurred. The value {value} of '{column.name}' on record of type "
                    f"'{table.logical_name}' is outside the valid range.",
                )
        elif column.type == "MultiSelectPicklist":
            parts = [p for p in str(value).split(",") if p]
            if not all(p.strip().lstrip("-").isdigit() and int(p) in column.options for p in parts):
                raise ApiError(
                    400,
                    "0x8004431a",
                    f"A validation error occurred. The value {value} of '{column.name}' is outside the valid range.",
                )
            return ",".join(str(int(p)) for p in parts)
        elif column.type == "Boolean":
            if not isinstance(value, bool):
                raise bad
        elif column.type in {"Integer"}:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
        elif column.type in {"Money", "Decimal", "Double"}:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad
        elif column.type == "DateTime":
            try:
                datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise bad from None
        return value

    def _new_row(self, table: Table, row_id: str, values: dict[str, Any], caller: _Caller | None) -> dict[str, Any]:
        now = _now_iso(self._now())
        row: dict[str, Any] = {self._wire_name(c): None for c in table.columns.values()}
        row.update({table.primary_id: row_id, "createdon": now, "modifiedon": now, "statecode": 0, "statuscode": 1})
        owner = caller.user_id if caller else None
        row["_ownerid_value"] = owner
        row["_modifiedby_value"] = owner
        row.update(self._coerce(table, values, None, creating=True) if caller is None else values)
        self._derive(table, row)
        return row

    def _derive(self, table: Table, row: dict[str, Any]) -> None:
        if "fullname" in table.columns and table.logical_name in {"lead", "contact", "systemuser"}:
            row["fullname"] = " ".join(p for p in (row.get("firstname"), row.get("lastname")) if p) or None

    def _commit(self, table: Table, row_id: str, row: dict[str, Any] | None, kind: str) -> None:
        state = self._state
        state.version += 1
        if row is None:
            state.rows[table.logical_name].pop(row_id, None)
            state.versions[table.logical_name].pop(row_id, None)
        else:
            state.rows[table.logical_name][row_id] = row
            state.versions[table.logical_name][row_id] = state.version
        state.log[table.logical_name].append((state.version, row_id, kind))

    def _create(self, table: Table, values: dict[str, Any], caller: _Caller) -> str:
        stored = self._coerce(table, values, caller, creating=True)
        row_id = str(stored.pop(table.primary_id, None) or uuid.uuid4()).lower()
        if row_id in self._state.rows[table.logical_name]:
            raise ApiError(412, "0x80040237", "A record with matching key values already exists.")
        row = self._new_row(table, row_id, stored, caller)
        self._check_step(table, row)
        self._commit(table, row_id, row, "upsert")
        self._notify("Create", table, row_id, before=None, after=row, changed=set(stored), caller=caller)
        return row_id

    def _check_etag(self, table: Table, record_id: str, if_match: str | None) -> None:
        exists = record_id in self._state.rows[table.logical_name]
        if if_match is None:
            if not exists:
                raise self._not_found(table, record_id)
            return
        if not exists:
            raise self._not_found(table, record_id)
        if if_match.strip() != "*" and if_match.strip() != f'W/"{self._state.versions[table.logical_name][record_id]}"':
            raise ApiError(
                412, "0x80060882", "The version of the existing record doesn't match the RowVersion property provided."
            )

    def _update(
        self, table: Table, record_id: str, values: dict[str, Any], caller: _Caller, if_match: str | None
    ) -> None:
        self._check_etag(table, record_id, if_match)
        stored = self._coerce(table, values, caller, creating=False)
        stored = {
            k: v
            for k, v in stored.items()
            if (c := table.columns.get(k[1:-6] if k.startswith("_") and k.endswith("_value") else k))
            and c.valid_for_update
        }
        before = self._state.rows[table.logical_name][record_id]
        after = {**before, **stored, "modifiedon": _now_iso(self._now()), "_modifiedby_value": caller.user_id}
        self._derive(table, after)
        self._check_step(table, after)
        self._commit(table, record_id, after, "upsert")
        self._notify("Update", table, record_id, before=before, after=after, changed=set(stored), caller=caller)

    def _delete(self, table: Table, record_id: str, caller: _Caller, if_match: str | None = None) -> None:
        self._check_etag(table, record_id, if_match)
        before = self._state.rows[table.logical_name][record_id]
        self._commit(table, record_id, None, "delete")
        self._notify("Delete", table, record_id, before=before, after=None, changed=set(), caller=caller)

    def _write_response(
        self, request: httpx.Request, table: Table, record_id: str, caller: _Caller, prefer: _Prefer, *, created: bool
    ) -> httpx.Response:
        entity_url = f"{self._base(request)}{table.entity_set}({record_id})"
        etag = f'W/"{self._state.versions[table.logical_name][record_id]}"'
        headers = {"OData-EntityId": entity_url, "ETag": etag}
        if created:
            headers["Location"] = entity_url
        if prefer.return_representation:
            row = self._state.rows[table.logical_name][record_id]
            select = self._select(table, request.url.params.get("$select"))
            body = self._present(table, row, select, caller, prefer.annotations)
            body["@odata.context"] = f"{self._base(request)}$metadata#{table.entity_set}/$entity"
            return self._json(201 if created else 200, body, headers | {"Preference-Applied": "return=representation"})
        return httpx.Response(204, headers={"OData-Version": "4.0", **headers})

    # --- bound functions and actions ---------------------------------------------------------------------------

    def _bound(
        self, request: httpx.Request, caller: _Caller, table: Table, record_id: str | None, rest: str
    ) -> httpx.Response:
        operation = rest.removeprefix("Microsoft.Dynamics.CRM.").removesuffix("()")
        if record_id is None:
            raise ApiError(404, "0x80060888", f"Resource not found for the segment '{rest}'.")
        if table.logical_name == "systemuser" and operation == "RetrievePrincipalAttributePrivileges":
            if record_id not in self._state.rows["systemuser"]:
                raise self._not_found(table, record_id)
            grants = self._column_grants.get(record_id, {})
            privileges = [
                {
                    "AttributeId": attribute_id,
                    "CanCreate": 4 if create else 0,
                    "CanRead": 4 if read else 0,
                    "CanReadUnMasked": 4 if read else 0,
                    "CanUpdate": 4 if update else 0,
                }
                for attribute_id, (read, update, create) in grants.items()
            ]
            return self._json(
                200,
                {
                    "@odata.context": f"{self._base(request)}$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivilegesResponse",
                    "AttributePrivileges": privileges,
                },
            )
        if table.logical_name == "lead" and operation == "QualifyLead" and request.method == "POST":
            return self._qualify(request, caller, record_id)
        raise ApiError(404, "0x80060888", f"Resource not found for the segment '{rest}'.")

    def _qualify(self, request: httpx.Request, caller: _Caller, lead_id: str) -> httpx.Response:
        body = self._body(request)
        lead = self._state.rows["lead"].get(lead_id)
        if lead is None:
            raise self._not_found(self.tables["lead"], lead_id)
        if lead.get("statecode") == 1:
            raise ApiError(400, "0x80040225", "The lead is already closed (qualified).")
        created: list[dict[str, Any]] = []
        account_id = None
        if body.get("CreateAccount") and lead.get("companyname"):
            account_id = self._create(
                self.tables["account"],
                {"name": lead["companyname"], "originatingleadid@odata.bind": f"/leads({lead_id})"}
                if "originatingleadid" in self.tables["account"].columns
                else {"name": lead["companyname"]},
                caller,
            )
            created.append({"@odata.type": "#Microsoft.Dynamics.CRM.account", "accountid": account_id})
        contact_id = None
        if body.get("CreateContact"):
            values: dict[str, Any] = {
                k: lead[k] for k in ("firstname", "lastname", "emailaddress1", "jobtitle", "telephone1") if lead.get(k)
            }
            values["originatingleadid@odata.bind"] = f"/leads({lead_id})"
            if account_id:
                values["parentcustomerid@odata.bind"] = f"/accounts({account_id})"
            contact_id = self._create(self.tables["contact"], values, caller)
            created.append({"@odata.type": "#Microsoft.Dynamics.CRM.contact", "contactid": contact_id})
        if body.get("CreateOpportunity"):
            values = {
                "name": lead.get("fullname") or "Opportunity",
                "originatingleadid@odata.bind": f"/leads({lead_id})",
            }
            if account_id:
                values["parentaccountid@odata.bind"] = f"/accounts({account_id})"
            if contact_id:
                values["parentcontactid@odata.bind"] = f"/contacts({contact_id})"
            opportunity_id = self._create(self.tables["opportunity"], values, caller)
            created.append({"@odata.type": "#Microsoft.Dynamics.CRM.opportunity", "opportunityid": opportunity_id})
        self._update(
            self.tables["lead"], lead_id, {"statecode": 1, "statuscode": int(body.get("Status", 3))}, caller, "*"
        )
        return self._json(
            200, {"@odata.context": f"{self._base(request)}$metadata#Collection(crmbaseentity)", "value": created}
        )

    def _whoami(self, request: httpx.Request, caller: _Caller) -> dict[str, Any]:
        return {
            "@odata.context": f"{self._base(request)}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": self.business_unit_id,
            "UserId": caller.user_id,
            "OrganizationId": self.organization_id,
        }

    # --- metadata -------------------------------------------------------------------------------------------------

    _TYPE_NAMES: ClassVar[dict[str, str]] = {
        "String": "StringAttributeMetadata",
        "Memo": "MemoAttributeMetadata",
        "Integer": "IntegerAttributeMetadata",
        "Money": "MoneyAttributeMetadata",
        "DateTime": "DateTimeAttributeMetadata",
        "Boolean": "BooleanAttributeMetadata",
        "Picklist": "PicklistAttributeMetadata",
        "MultiSelectPicklist": "MultiSelectPicklistAttributeMetadata",
        "State": "StateAttributeMetadata",
        "Status": "StatusAttributeMetadata",
        "Lookup": "LookupAttributeMetadata",
        "Owner": "LookupAttributeMetadata",
        "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    }

    def _metadata(self, request: httpx.Request, key: str | None, rest: str | None) -> httpx.Response:
        if request.method != "GET":
            raise ApiError(405, "0x80060888", "Metadata is read-only in this simulator.")
        base = self._base(request)
        logical = re.fullmatch(r"LogicalName='([\w]+)'", key or "")
        table = self.tables.get(logical.group(1)) if logical else None
        if table is None:
            raise ApiError(404, "0x80040217", f"Could not find entity with name {key}.")
        select = [s for s in request.url.params.get("$select", "").split(",") if s]
        if not rest:
            full = {
                "LogicalName": table.logical_name,
                "EntitySetName": table.entity_set,
                "PrimaryIdAttribute": table.primary_id,
                "PrimaryNameAttribute": table.primary_name,
                "ChangeTrackingEnabled": table.change_tracking,
                "MetadataId": metadata_id(table.logical_name),
            }
            body = {k: v for k, v in full.items() if not select or k in select or k == "MetadataId"}
            body["@odata.context"] = f"{base}$metadata#EntityDefinitions({','.join(select)})/$entity"
            return self._json(200, body)
        attr = re.fullmatch(r"Attributes(?:\(LogicalName='(\w+)'\))?(?:/Microsoft\.Dynamics\.CRM\.(\w+))?", rest)
        if attr is None:
            raise ApiError(404, "0x80060888", f"Resource not found for the segment '{rest}'.")
        name, cast = attr.group(1), attr.group(2)
        columns = list(table.columns.values())
        if name is not None:
            found = table.columns.get(name)
            if found is None:
                raise ApiError(404, "0x80040217", f"Could not find attribute with name {name}.")
            columns = [found]
        if cast:
            columns = [c for c in columns if self._TYPE_NAMES.get(c.type) == cast]
            if name is not None and not columns:
                raise ApiError(404, "0x80060888", f"Attribute {name} is not of type {cast}.")
        expand = request.url.params.get("$expand", "")
        rows = [self._attribute_metadata(table, c, select, "OptionSet" in expand) for c in columns]
        context = f"{base}$metadata#EntityDefinitions('{table.logical_name}')/Attributes"
        if name is not None:
            return self._json(200, {"@odata.context": context + "/$entity", **rows[0]})
        return self._json(200, {"@odata.context": context, "value": rows})

    def _attribute_metadata(self, table: Table, column: Column, select: list[str], options: bool) -> dict[str, Any]:
        full: dict[str, Any] = {
            "@odata.type": f"#Microsoft.Dynamics.CRM.{self._TYPE_NAMES.get(column.type, 'AttributeMetadata')}",
            "LogicalName": column.name,
            "SchemaName": column.name,
            "AttributeType": "Virtual" if column.type == "MultiSelectPicklist" else column.type,
            "AttributeTypeName": {"Value": f"{column.type}Type"},
            "IsValidForRead": True,
            "IsValidForUpdate": column.valid_for_update,
            "IsValidForCreate": column.valid_for_create,
            "IsSecured": column.secured,
            "MetadataId": metadata_id(table.logical_name, column.name),
        }
        if column.type in {"String", "Memo"}:
            full["MaxLength"] = column.max_length
        if column.type in {"Lookup", "Owner"}:
            full["Targets"] = [column.target]
        body = {k: v for k, v in full.items() if not select or k in select or k in {"@odata.type", "MetadataId"}}
        if options and column.options:
            body["OptionSet"] = self._option_set(table, column)
        return body

    def _option_set(self, table: Table, column: Column) -> dict[str, Any]:
        def label(text: str) -> dict[str, Any]:
            localized = {"Label": text, "LanguageCode": 1033, "IsManaged": True, "MetadataId": None, "HasChanged": None}
            return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}

        option_set: dict[str, Any] = {
            "MetadataId": metadata_id(table.logical_name, column.name, "optionset"),
            "Name": f"{table.logical_name}_{column.name}",
            "IsGlobal": False,
            "OptionSetType": "Boolean" if column.type == "Boolean" else "Picklist",
        }
        if column.type == "Boolean":
            option_set["TrueOption"] = {"Value": 1, "Label": label(column.options.get(1, "Yes"))}
            option_set["FalseOption"] = {"Value": 0, "Label": label(column.options.get(0, "No"))}
        else:
            option_set["Options"] = [
                {
                    "Value": value,
                    "Color": None,
                    "IsManaged": True,
                    "ExternalValue": None,
                    "ParentValues": [],
                    "MetadataId": None,
                    "HasChanged": None,
                    "Label": label(text),
                    "Description": {"LocalizedLabels": [], "UserLocalizedLabel": None},
                }
                for value, text in column.options.items()
            ]
        return option_set

    # --- $batch ---------------------------------------------------------------------------------------------------

    def _batch(self, request: httpx.Request, caller: _Caller) -> httpx.Response:
        boundary = boundary_of(request.headers.get("content-type", ""))
        if boundary is None:
            raise ApiError(400, "0x80060888", "The batch request must have a multipart/mixed content type.")
        prefer = _Prefer.parse(request.headers.get("prefer"))
        parts = split_multipart(request.content.decode("utf-8"), boundary)
        count = sum(
            len(split_multipart(b, boundary_of(h.get("content-type", "")) or "-"))
            if "multipart" in h.get("content-type", "")
            else 1
            for h, b in parts
        )
        if count > 1000:
            raise ApiError(400, "0x8004d2b0", "The number of requests in a batch exceeded the limit of 1000.")
        out_boundary = f"batchresponse_{uuid.uuid4()}"
        chunks: list[str] = []
        for headers, body in parts:
            content_type = headers.get("content-type", "")
            if "multipart/mixed" in content_type:
                inner = boundary_of(content_type) or ""
                snapshot = copy.deepcopy(self._state)
                pending_before = len(self._pending.items)
                responses: list[tuple[str | None, httpx.Response]] = []
                failed: tuple[str | None, httpx.Response] | None = None
                for inner_headers, inner_body in split_multipart(body, inner):
                    response = self._batch_operation(request, caller, inner_body)
                    content_id = inner_headers.get("content-id")
                    if response.status_code >= 400:
                        failed = (content_id, response)
                        break
                    responses.append((content_id, response))
                if failed is not None:  # the change set is one transaction: roll every operation back
                    self._state = snapshot
                    del self._pending.items[pending_before:]
                    chunks.append(self._render_part(out_boundary, failed[1], failed[0]))
                    if not prefer.continue_on_error:
                        break
                    continue
                cs_boundary = f"changesetresponse_{uuid.uuid4()}"
                inner_parts = "".join(self._render_part(cs_boundary, r, cid) for cid, r in responses)
                chunks.append(
                    f"--{out_boundary}\r\nContent-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n"
                    f"{inner_parts}--{cs_boundary}--\r\n"
                )
            else:
                response = self._batch_operation(request, caller, body)
                chunks.append(self._render_part(out_boundary, response, None))
                if response.status_code >= 400 and not prefer.continue_on_error:
                    break
        text = "".join(chunks) + f"--{out_boundary}--\r\n"
        return httpx.Response(
            200,
            headers={"OData-Version": "4.0", "Content-Type": f"multipart/mixed; boundary={out_boundary}"},
            content=text.encode(),
        )

    def _batch_operation(self, outer: httpx.Request, caller: _Caller, text: str) -> httpx.Response:
        start, headers, body = parse_http_message(text)
        pieces = start.split(" ")
        if len(pieces) < 2:
            return ApiError(400, "0x80060888", "Malformed request line in batch.").response()
        method, url = pieces[0], pieces[1]
        if not url.startswith(("http://", "https://")):
            url = f"{outer.url.scheme}://{outer.url.netloc.decode()}" + (url if url.startswith("/") else API + url)
        inner = httpx.Request(method, url, headers=headers, content=body.encode() if body.strip() else b"")
        try:
            return self._dispatch(inner, caller)
        except ApiError as error:
            return error.response()

    def _render_part(self, boundary: str, response: httpx.Response, content_id: str | None) -> str:
        reason = response.reason_phrase or ""
        lines = [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary"]
        if content_id:
            lines.append(f"Content-ID: {content_id}")
        lines += ["", f"HTTP/1.1 {response.status_code} {reason}"]
        for key, value in response.headers.items():
            if key.lower() not in {"content-length"}:
                lines.append(f"{key}: {value}")
        if response.content and "content-type" not in response.headers:
            lines.append("Content-Type: application/json; odata.metadata=minimal")
        lines += ["", response.content.decode() if response.content else "", ""]
        return "\r\n".join(lines)

    # --- plugin steps: webhooks ---------------------------------------------------------------------------------

    def _steps(self, entity: str, message: str) -> list[dict[str, Any]]:
        """Enabled steps registered for ``message`` on ``entity`` (through their message and filter lookups)."""
        return [
            s
            for s in self._state.rows["sdkmessageprocessingstep"].values()
            if s.get("statecode") != 1 and self._step_target(s) == (entity, message)
        ]

    def _step_target(self, step: Mapping[str, Any]) -> tuple[str | None, str | None]:
        rows = self._state.rows
        message_row = rows["sdkmessage"].get(str(step.get("_sdkmessageid_value")))
        filter_row = rows["sdkmessagefilter"].get(str(step.get("_sdkmessagefilterid_value")))
        message = message_row.get("name") if message_row else step.get("sdkmessagename")
        entity = filter_row.get("primaryobjecttypecode") if filter_row else step.get("primaryobjecttypecode")
        return entity, message

    def _check_step(self, table: Table, row: Mapping[str, Any]) -> None:
        """Dataverse refuses a step whose filter belongs to another message."""
        if table.logical_name != "sdkmessageprocessingstep":
            return
        filter_row = self._state.rows["sdkmessagefilter"].get(str(row.get("_sdkmessagefilterid_value")))
        if filter_row is not None and filter_row.get("_sdkmessageid_value") != row.get("_sdkmessageid_value"):
            raise ApiError(
                400,
                "0x80040203",
                "The SdkMessageFilter of this step does not belong to its SdkMessage.",
            )

    def _notify(
        self,
        message: str,
        table: Table,
        record_id: str,
        *,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        changed: set[str],
        caller: _Caller,
    ) -> None:
        if table.logical_name in REGISTRATION_TABLES:
            return
        has_registrations = bool(self._state.rows["sdkmessageprocessingstep"])
        Images = dict[str, dict[str, Any]] | None
        targets: list[tuple[str, dict[str, str], str | None, Images, Images]] = []
        if has_registrations:
            for step in self._steps(table.logical_name, message):
                filtering = {a for a in str(step.get("filteringattributes") or "").split(",") if a}
                changed_columns = {k[1:-6] if k.startswith("_") and k.endswith("_value") else k for k in changed}
                if message == "Update" and filtering and not filtering & changed_columns:
                    continue
                endpoint = self._state.rows["serviceendpoint"].get(str(step.get("_eventhandler_value")))
                if endpoint is None or endpoint.get("contract") != 8:
                    continue
                url, headers = self._endpoint_target(endpoint)
                pre, post = self._images(step, table, before, after)
                targets.append((url, headers, str(step["sdkmessageprocessingstepid"]), pre, post))
        else:
            full_pre = {"PreImage": self._image_values(table, before, None)} if before else None
            full_post = {"PostImage": self._image_values(table, after, None)} if after else None
            targets = [(url, {}, None, full_pre, full_post) for url in self.webhook_urls]
        if not targets:
            return
        target_attrs: dict[str, Any] = {}
        formatted: dict[str, str] = {}
        if after is not None:
            keys = set(changed) | {table.primary_id, "modifiedon", "_modifiedby_value"}
            if message == "Create":
                keys = {k for k, v in after.items() if v is not None}
            target_attrs = self._image_values(table, after, keys)
            formatted = self._formatted(table, after, keys)
        correlation = str(uuid.uuid4())
        for url, headers, step_id, pre, post in targets:
            context = render_context(
                message_name=message,
                entity_name=table.logical_name,
                entity_id=record_id,
                user_id=caller.user_id,
                initiating_user_id=caller.user_id,
                organization_name=self.organization_name,
                organization_id=self.organization_id,
                business_unit_id=self.business_unit_id,
                attributes=target_attrs,
                formatted_values=formatted,
                pre_images=pre,
                post_images=post,
                depth=caller.depth,
                correlation_id=correlation,
                created_on=self._now(),
                step_id=step_id,
            )
            body = dumps_context(context)
            all_headers = {
                "Content-Type": "application/json",
                "x-ms-dynamics-organization": f"{self.organization_name}.crm.dynamics.com",
                "x-ms-dynamics-entity-name": table.logical_name,
                "x-ms-dynamics-request-name": message,
                "x-ms-correlation-request-id": correlation,
                **headers,
            }
            if len(body) > self.max_context_bytes:
                for key in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
                    context.pop(key, None)
                body = dumps_context(context)
                all_headers["x-ms-dynamics-msg-size-exceeded"] = "true"
            self._pending.items.append((url, all_headers, body))

    def _endpoint_target(self, endpoint: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        url = str(endpoint.get("url"))
        auth_type, auth_value = endpoint.get("authtype"), str(endpoint.get("authvalue") or "")
        settings = {
            html.unescape(k): html.unescape(v)
            for k, v in re.findall(r'<setting name="([^"]+)" value="([^"]*)"', auth_value)
        }
        if auth_type == 4:
            return f"{url}{'&' if '?' in url else '?'}code={auth_value}", {}
        if auth_type == 6:
            return f"{url}{'&' if '?' in url else '?'}{urlencode(settings)}", {}
        if auth_type == 5:
            return url, settings
        return url, {}

    def _images(
        self, step: Mapping[str, Any], table: Table, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
    ) -> tuple[dict[str, dict[str, Any]] | None, dict[str, dict[str, Any]] | None]:
        """The step's registered images by entity alias: pre images of ``before``, post images of ``after``."""
        pre: dict[str, dict[str, Any]] = {}
        post: dict[str, dict[str, Any]] = {}
        step_id = step["sdkmessageprocessingstepid"]
        for image in self._state.rows["sdkmessageprocessingstepimage"].values():
            if image.get("_sdkmessageprocessingstepid_value") != step_id:
                continue
            alias = str(image.get("entityalias") or image.get("name") or "Image")
            attributes = {a for a in str(image.get("attributes") or "").split(",") if a} or None
            wire = {self._wire_name(table.columns[a]) for a in attributes if a in table.columns} if attributes else None
            if image.get("imagetype") in {0, 2} and before is not None:
                pre[alias] = self._image_values(table, before, wire)
            if image.get("imagetype") in {1, 2} and after is not None:
                post[alias] = self._image_values(table, after, wire)
        return pre or None, post or None

    def _image_values(self, table: Table, row: Mapping[str, Any], keys: set[str] | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for wire, value in row.items():
            if keys is not None and wire not in keys:
                continue
            name = wire[1:-6] if wire.startswith("_") and wire.endswith("_value") else wire
            column = table.columns.get(name)
            if column is None or value is None:
                continue
            values[name] = self._context_value(column, value)
        return values

    def _context_value(self, column: Column, value: Any) -> Any:
        if column.type in {"Picklist", "State", "Status"}:
            return option(int(value))
        if column.type == "MultiSelectPicklist":
            return tuple(int(v) for v in str(value).split(",") if v)
        if column.type == "Money":
            return Decimal(str(value))
        if column.type == "DateTime":
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
        if column.type in {"Lookup", "Owner"}:
            target = self.tables[column.target or "systemuser"]
            row = self._state.rows[target.logical_name].get(str(value))
            return EntityRef(str(value), target.logical_name, row.get(target.primary_name) if row else None)
        return value

    def _formatted(self, table: Table, row: Mapping[str, Any], keys: set[str]) -> dict[str, str]:
        out: dict[str, Any] = {}
        for wire in keys:
            column = table.columns.get(wire[1:-6] if wire.startswith("_") and wire.endswith("_value") else wire)
            value = row.get(wire)
            if (
                column is not None
                and value is not None
                and column.type in {"Picklist", "State", "Status", "Boolean", "Money"}
            ):
                self._annotate(out, column, column.name, value)
        return {k.split("@", 1)[0]: str(v) for k, v in out.items()}

    def _flush(self) -> None:
        items = getattr(self._pending, "items", [])
        self._pending.items = []
        for url, headers, body in items:
            delivery = deliver(self.sender, url, headers, body)
            with self._lock:
                self.deliveries.append(delivery)


@dataclass(slots=True)
class CapturedWebhooks:
    """A sender that records what it was given and answers with planned statuses (default 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        self.received.append((url, dict(headers), body))
        return self.statuses.pop(0) if self.statuses else 200
