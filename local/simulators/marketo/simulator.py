"""A faithful, thread-safe Marketo Engage instance as an ``httpx`` handler (``Request -> Response``).

Hand it to ``httpx.MockTransport`` in-process, or serve it on loopback with ``local.loopback.serve``: the
same code answers both. It serves the identity endpoint under ``/identity`` and the REST and bulk APIs on the
real paths, with Marketo's envelopes, paging tokens, record-level results and error codes, and enforces the
instance limits (100 calls per 20 s -> 606, 10 concurrent -> 615, daily quota -> 607, URI > 8 KB -> 414,
body > 1 MB -> 413; 10 MB for imports). See ``faults.py`` for injected faults and ``webhook.py`` for the
Call Webhook step.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

from local.simulators.marketo import envelope
from local.simulators.marketo.bulk import ImportQueue, parse_multipart
from local.simulators.marketo.envelope import ApiError, RequestIds
from local.simulators.marketo.faults import HTTP_CODES, TIMEOUT, FaultPlan
from local.simulators.marketo.leads import (
    API_SOURCE,
    CHANGE_DATA_VALUE,
    DELETE_LEAD,
    NEW_LEAD,
    LeadChangeNote,
    LeadStore,
    decode_token,
    encode_token,
)
from local.simulators.marketo.limits import LimitConfig, Limits
from local.simulators.marketo.objects import (
    ObjectType,
    companies,
    custom_object,
    opportunities,
    opportunity_roles,
    sales_persons,
)
from local.simulators.marketo.webhook import Sender, WebhookConfig, build_request

MAX_URI = 8 * 1024
MAX_BODY = 1024 * 1024
MAX_IMPORT_BODY = 10 * 1024 * 1024
IDENTITY_PATH = "/identity/oauth/token"


@dataclass
class Call:
    """One parsed REST call as a handler sees it."""

    method: str
    path: str
    params: dict[str, str]
    request: httpx.Request
    groups: dict[str, str]
    request_id: str

    def json(self) -> Any:
        content_type = self.request.headers.get("content-type", "")
        if "json" not in content_type.lower():
            raise ApiError("612")
        try:
            return json.loads(self.request.content or b"null")
        except ValueError as exc:
            raise ApiError("609") from exc

    def int_param(self, name: str, default: int, *, maximum: int) -> int:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise ApiError("1003", f"Invalid value for '{name}'") from exc
        return max(1, min(value, maximum))

    def required(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            raise ApiError("701", f"{name} cannot be blank")
        return value


Handler = Callable[[Call], httpx.Response]


SIM_CLIENT_ID = "sim-client"
SIM_CLIENT_SECRET = "sim-secret"  # noqa: S105 - the simulator's own fake credential


class MarketoSimulator:
    def __init__(
        self,
        *,
        client_id: str = SIM_CLIENT_ID,
        client_secret: str = SIM_CLIENT_SECRET,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        limits: LimitConfig | None = None,
        latency: float = 0.0,
        token_ttl: float = 3600.0,
        activity_scan_limit: int = 300,
        import_seconds: float = 1.0,
        timeout_mode: Literal["raise", "delay"] = "raise",
        timeout_delay: float = 0.5,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.clock = clock
        self._sleep = sleep
        self.latency = latency
        self.token_ttl = token_ttl
        self.activity_scan_limit = activity_scan_limit
        self.timeout_mode = timeout_mode
        self.timeout_delay = timeout_delay
        self.limits = Limits(limits or LimitConfig())
        self.faults = FaultPlan()
        self.calls: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.webhook: WebhookConfig | None = None
        self.webhook_sender: Sender | None = None
        self.webhook_failures = 0
        self._lock = threading.RLock()
        self._ids = RequestIds()
        self._tokens: dict[str, float] = {}
        self._current_token: str | None = None
        self.leads = LeadStore(now=clock)
        self.imports = ImportQueue(self.leads, import_seconds=import_seconds)
        opps = opportunities()
        self.objects: dict[str, ObjectType] = {
            "companies": companies(),
            "opportunities": opps,
            "roles": opportunity_roles(lambda lead_id: _lead_exists(self.leads.leads, lead_id), opps),
            "salespersons": sales_persons(),
        }
        self.custom_objects: dict[str, ObjectType] = {}
        self._routes = self._build_routes()

    # --- test and demo controls ----------------------------------------------------------------------------

    def define_custom_object(self, api_name: str, *, dedupe_fields: tuple[str, ...], fields: Mapping[str, str]) -> None:
        with self._lock:
            self.custom_objects[api_name] = custom_object(api_name, dedupe_fields=dedupe_fields, fields=fields)

    def set_daily_quota(self, quota: int) -> None:
        self.limits.config.daily_quota = quota

    def expire_tokens(self) -> None:
        """Every issued token expires now (the next call with one gets 602)."""
        with self._lock:
            now = self.clock()
            self._tokens = dict.fromkeys(self._tokens, now)

    def revoke_tokens(self) -> None:
        """Forget every issued token (the next call with one gets 601)."""
        with self._lock:
            self._tokens.clear()
            self._current_token = None

    def configure_webhook(self, config: WebhookConfig | None, sender: Sender | None) -> None:
        self.webhook, self.webhook_sender = config, sender

    def add_lead(self, **values: Any) -> int:
        """Create a lead as if typed into Marketo (records New Lead; no API call is counted)."""
        with self._lock:
            result = self.leads.sync("createDuplicate", "email", [values], source="Marketo UI", reason="Manual")[0]
            notes = self._drain()
        self._send_webhooks(notes)
        if result.get("status") != "created":
            raise ValueError(f"lead not created: {result}")
        return int(result["id"])

    def change_lead(
        self, lead_id: int, *, source: str = "Marketo UI", reason: str = "Manual edit", **values: Any
    ) -> None:
        """Change fields as a person or flow step in Marketo would: activities and the webhook follow."""
        with self._lock:
            self.leads.change(lead_id, values, source=source, reason=reason)
            notes = self._drain()
        self._send_webhooks(notes)

    def delete_lead(self, lead_id: int) -> None:
        with self._lock:
            self.leads.delete([lead_id])

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self.leads.leads.get(lead_id)
            return dict(found) if found else None

    def find_leads(self, field: str, value: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(lead) for lead in self.leads.leads.values() if lead.get(field) == value]

    def advance_imports(self) -> None:
        with self._lock:
            self.imports.advance(self.clock())

    # --- the handler ---------------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method, path, params = self._effective(request)
        handler, groups, key = self._route(method, path)
        with self._lock:
            self.calls[key] += 1
        request_id = self._ids.next(self.clock())
        if path == IDENTITY_PATH:
            return self._identity(params)
        if len(request.url.raw_path) > MAX_URI:
            self.rejections["414"] += 1
            return envelope.http_error(414, "Request-URI Too Long")
        limit = MAX_IMPORT_BODY if path == "/bulk/v1/leads.json" else MAX_BODY
        if len(request.content) > limit:
            self.rejections["413"] += 1
            return envelope.http_error(413, "Request Entity Too Large")
        auth_code = self._check_token(request, params)
        if auth_code:
            self.rejections[auth_code] += 1
            return envelope.error(request_id, auth_code)
        if not self.limits.enter():
            self.rejections["615"] += 1
            return envelope.error(request_id, "615")
        notes: list[LeadChangeNote] = []
        try:
            fault = self.faults.take(path)
            if fault == TIMEOUT and self.timeout_mode == "raise":
                raise httpx.ReadTimeout("simulated Marketo timeout", request=request)
            if fault in HTTP_CODES:
                return envelope.http_error(int(fault or 0), "Bad Gateway" if fault == "502" else "Server Error")
            if fault is not None and fault != TIMEOUT:
                return envelope.error(request_id, fault)
            refused = self.limits.admit(self.clock())
            if refused:
                self.rejections[refused] += 1
                return envelope.error(request_id, refused)
            if fault == TIMEOUT:
                time.sleep(self.timeout_delay)  # real time: the client's real timeout must fire
            if self.latency:
                self._sleep(self.latency)
            call = Call(method, path, params, request, groups, request_id)
            with self._lock:
                try:
                    response = handler(call)
                except ApiError as exc:
                    response = envelope.error(request_id, exc.code, exc.message)
                notes = self._drain()
        finally:
            self.limits.leave()
        self._send_webhooks(notes)
        return response

    def _effective(self, request: httpx.Request) -> tuple[str, str, dict[str, str]]:
        """Method, path and parameters, honouring ``POST ...?_method=GET`` with a form body."""
        params = dict(request.url.params)
        method = request.method
        if method == "POST" and params.get("_method", "").upper() == "GET":
            params.pop("_method")
            content_type = request.headers.get("content-type", "")
            if "application/x-www-form-urlencoded" in content_type:
                params.update(parse_qsl(request.content.decode(), keep_blank_values=True))
            method = "GET"
        elif request.url.path == IDENTITY_PATH and method == "POST":
            params.update(parse_qsl(request.content.decode(), keep_blank_values=True))
        return method, request.url.path, params

    def _route(self, method: str, path: str) -> tuple[Handler, dict[str, str], str]:
        for route_method, pattern, template, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler, match.groupdict(), f"{method} {template}"
        return self._not_found, {}, f"{method} {path}"

    def _not_found(self, call: Call) -> httpx.Response:
        raise ApiError("610")

    def _drain(self) -> list[LeadChangeNote]:
        notes, self.leads.notes = self.leads.notes, []
        return notes

    def _send_webhooks(self, notes: list[LeadChangeNote]) -> None:
        config, sender = self.webhook, self.webhook_sender
        if config is None or sender is None:
            return
        for note in notes:
            if not config.wants(note):
                continue
            url, headers, body = build_request(config, note)
            try:
                sender(url, headers, body)
            except Exception:  # fire-and-forget, as Marketo does
                self.webhook_failures += 1

    # --- identity ------------------------------------------------------------------------------------------

    def _identity(self, params: Mapping[str, str]) -> httpx.Response:
        if (
            params.get("grant_type") != "client_credentials"
            or params.get("client_id") != self._client_id
            or params.get("client_secret") != self._client_secret
        ):
            return httpx.Response(401, json={"error": "unauthorized", "error_description": "Bad client credentials"})
        with self._lock:
            now = self.clock()
            token = self._current_token
            if token is None or self._tokens.get(token, 0.0) <= now:
                token = f"{uuid.uuid4()}:sim"
                self._tokens[token] = now + self.token_ttl
                self._current_token = token
            remaining = self._tokens[token] - now
        return httpx.Response(
            200,
            json={
                "access_token": token,
                "token_type": "bearer",
                "expires_in": max(0, math.ceil(remaining) - 1),
                "scope": "apis@sim.example",
            },
        )

    def _check_token(self, request: httpx.Request, params: Mapping[str, str]) -> str | None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else params.get("access_token", "")
        with self._lock:
            expires_at = self._tokens.get(token)
            if expires_at is None:
                return "601"
            if expires_at <= self.clock():
                return "602"
        return None

    # --- routes --------------------------------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], str, Handler]]:
        table: list[tuple[str, str, Handler]] = [
            ("GET", IDENTITY_PATH, self._not_found),
            ("POST", IDENTITY_PATH, self._not_found),
            ("GET", "/rest/v1/leads.json", self._get_leads),
            ("POST", "/rest/v1/leads.json", self._sync_leads),
            ("POST", "/rest/v1/leads/delete.json", self._delete_leads),
            ("GET", "/rest/v1/leads/describe.json", self._describe_leads),
            ("GET", "/rest/v1/leads/schema/fields.json", self._schema_fields),
            ("POST", "/rest/v1/leads/schema/fields.json", self._create_fields),
            ("GET", "/rest/v1/activities/pagingtoken.json", self._paging_token),
            ("GET", "/rest/v1/activities/leadchanges.json", self._lead_changes),
            ("GET", "/rest/v1/activities/deletedleads.json", self._deleted_leads),
            ("POST", "/bulk/v1/leads.json", self._bulk_submit),
            ("GET", "/bulk/v1/leads/batch/{batchId}.json", self._bulk_status),
            ("GET", "/bulk/v1/leads/batch/{batchId}/failures.json", self._bulk_failures),
            ("GET", "/bulk/v1/leads/batch/{batchId}/warnings.json", self._bulk_warnings),
            ("POST", "/rest/v1/companies/sync.json", self._object_sync("companies")),
            ("POST", "/rest/v1/companies.json", self._object_sync("companies")),
            ("GET", "/rest/v1/companies.json", self._object_query("companies")),
            ("GET", "/rest/v1/companies/describe.json", self._object_describe("companies")),
            ("GET", "/rest/v1/opportunities/roles/describe.json", self._object_describe("roles")),
            ("POST", "/rest/v1/opportunities/roles.json", self._object_sync("roles")),
            ("GET", "/rest/v1/opportunities/roles.json", self._object_query("roles")),
            ("GET", "/rest/v1/opportunities/describe.json", self._object_describe("opportunities")),
            ("POST", "/rest/v1/opportunities.json", self._object_sync("opportunities")),
            ("GET", "/rest/v1/opportunities.json", self._object_query("opportunities")),
            ("GET", "/rest/v1/salespersons/describe.json", self._object_describe("salespersons")),
            ("POST", "/rest/v1/salespersons.json", self._object_sync("salespersons")),
            ("GET", "/rest/v1/salespersons.json", self._object_query("salespersons")),
            ("GET", "/rest/v1/customobjects/{apiName}/describe.json", self._object_describe(None)),
            ("POST", "/rest/v1/customobjects/{apiName}.json", self._object_sync(None)),
            ("GET", "/rest/v1/customobjects/{apiName}.json", self._object_query(None)),
        ]
        routes = []
        for method, template, handler in table:
            regex = re.escape(template).replace(r"\{batchId\}", r"(?P<batchId>\d+)")
            regex = regex.replace(r"\{apiName\}", r"(?P<apiName>[A-Za-z][A-Za-z0-9_]*)")
            routes.append((method, re.compile(regex), template, handler))
        return routes

    # --- leads ---------------------------------------------------------------------------------------------

    def _get_leads(self, call: Call) -> httpx.Response:
        filter_type = call.required("filterType")
        values = [v for v in call.required("filterValues").split(",") if v != ""]
        fields = [f for f in call.params.get("fields", "").split(",") if f] or None
        batch = call.int_param("batchSize", 300, maximum=300)
        rows, token = self.leads.query(filter_type, values, fields, batch, call.params.get("nextPageToken"))
        extra = {"nextPageToken": token} if token else {}
        return envelope.ok(call.request_id, rows, **extra)

    def _records(self, call: Call, *, limit: int = 300) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = call.json()
        if not isinstance(body, dict):
            raise ApiError("609")
        items = body.get("input")
        if not isinstance(items, list) or not items:
            raise ApiError("701", "input cannot be blank")
        if len(items) > limit:
            raise ApiError("1003", f"Batch size of {len(items)} exceeds the maximum of {limit}")
        if not all(isinstance(item, dict) for item in items):
            raise ApiError("1003", "input must hold objects")
        return body, items

    def _sync_leads(self, call: Call) -> httpx.Response:
        body, items = self._records(call)
        results = self.leads.sync(
            str(body.get("action") or "createOrUpdate"),
            str(body.get("lookupField") or "email"),
            items,
            source=API_SOURCE,
            reason=API_SOURCE,
        )
        return envelope.ok(call.request_id, results)

    def _delete_leads(self, call: Call) -> httpx.Response:
        _, items = self._records(call)
        return envelope.ok(call.request_id, self.leads.delete([item.get("id") for item in items]))

    def _describe_leads(self, call: Call) -> httpx.Response:
        return envelope.ok(call.request_id, self.leads.describe())

    def _schema_fields(self, call: Call) -> httpx.Response:
        batch = call.int_param("batchSize", 300, maximum=300)
        token = call.params.get("nextPageToken")
        offset = decode_token(token, "fields") if token else 0
        rows = self.leads.schema()
        page = rows[offset : offset + batch]
        more = offset + batch < len(rows)
        extra: dict[str, Any] = {"nextPageToken": encode_token("fields", offset + batch)} if more else {}
        return envelope.ok(call.request_id, page, **extra, moreResult=more)

    def _create_fields(self, call: Call) -> httpx.Response:
        _, items = self._records(call, limit=100)
        return envelope.ok(call.request_id, self.leads.create_fields(items))

    # --- activities ----------------------------------------------------------------------------------------

    def _paging_token(self, call: Call) -> httpx.Response:
        token = self.leads.paging_token(call.required("sinceDatetime"))
        return envelope.ok(call.request_id, None, nextPageToken=token)

    def _feed(self, call: Call, types: frozenset[int], fields: frozenset[str] | None) -> httpx.Response:
        lead_ids = call.params.get("leadIds")
        ids = frozenset(int(i) for i in lead_ids.split(",") if i.strip().isdigit()) if lead_ids else None
        items, token, more = self.leads.feed(
            call.required("nextPageToken"),
            types,
            fields=fields,
            lead_ids=ids,
            batch_size=call.int_param("batchSize", 300, maximum=300),
            scan_limit=self.activity_scan_limit,
        )
        return envelope.ok(call.request_id, items, nextPageToken=token, moreResult=more)

    def _lead_changes(self, call: Call) -> httpx.Response:
        fields = frozenset(f for f in call.required("fields").split(",") if f)
        unknown = sorted(fields - set(self.leads.fields))
        if unknown:
            raise ApiError("1006", f"Field '{unknown[0]}' not found")
        return self._feed(call, frozenset({NEW_LEAD, CHANGE_DATA_VALUE}), fields)

    def _deleted_leads(self, call: Call) -> httpx.Response:
        return self._feed(call, frozenset({DELETE_LEAD}), None)

    # --- bulk import ---------------------------------------------------------------------------------------

    def _bulk_submit(self, call: Call) -> httpx.Response:
        parts = parse_multipart(call.request.headers.get("content-type", ""), call.request.content)
        form = {name: content.decode() for name, (filename, content) in parts.items() if filename is None}
        upload = parts.get("file")
        if upload is None:
            raise ApiError("701", "file cannot be blank")
        file_format = form.get("format") or call.params.get("format") or ""
        if not file_format:
            raise ApiError("701", "format cannot be blank")
        lookup = form.get("lookupField") or call.params.get("lookupField") or "email"
        job = self.imports.submit(upload[1], file_format, lookup, self.clock())
        return envelope.ok(
            call.request_id, [{"batchId": job.batch_id, "importId": str(job.batch_id), "status": job.status}]
        )

    def _bulk_status(self, call: Call) -> httpx.Response:
        job = self.imports.get(int(call.groups["batchId"]), self.clock())
        return envelope.ok(call.request_id, [job.view()])

    def _bulk_report(self, call: Call, which: str) -> httpx.Response:
        job = self.imports.get(int(call.groups["batchId"]), self.clock())
        return httpx.Response(200, text=job.report(which), headers={"content-type": "text/csv;charset=UTF-8"})

    def _bulk_failures(self, call: Call) -> httpx.Response:
        return self._bulk_report(call, "failures")

    def _bulk_warnings(self, call: Call) -> httpx.Response:
        return self._bulk_report(call, "warnings")

    # --- other objects -------------------------------------------------------------------------------------

    def _object(self, name: str | None, call: Call) -> ObjectType:
        if name is not None:
            return self.objects[name]
        found = self.custom_objects.get(call.groups.get("apiName", ""))
        if found is None:
            raise ApiError("610", f"Custom object '{call.groups.get('apiName')}' not found")
        return found

    def _object_sync(self, name: str | None) -> Handler:
        def handle(call: Call) -> httpx.Response:
            store = self._object(name, call)
            body, items = self._records(call)
            action = str(body.get("action") or "createOrUpdate")
            dedupe_by = str(body.get("dedupeBy") or "dedupeFields")
            return envelope.ok(call.request_id, store.sync(action, dedupe_by, items, self.clock()))

        return handle

    def _object_query(self, name: str | None) -> Handler:
        def handle(call: Call) -> httpx.Response:
            store = self._object(name, call)
            values = [v for v in call.required("filterValues").split(",") if v]
            fields = [f for f in call.params.get("fields", "").split(",") if f] or None
            return envelope.ok(call.request_id, store.query(call.required("filterType"), values, fields))

        return handle

    def _object_describe(self, name: str | None) -> Handler:
        def handle(call: Call) -> httpx.Response:
            return envelope.ok(call.request_id, [self._object(name, call).describe()])

        return handle


def _lead_exists(leads: Mapping[int, Any], lead_id: Any) -> bool:
    try:
        return int(lead_id) in leads
    except (TypeError, ValueError):
        return False
