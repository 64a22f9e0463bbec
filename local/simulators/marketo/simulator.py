"""A faithful, thread-safe Marketo Engage instance as an ``httpx`` handler (``Request -> Response``).

Hand it to ``httpx.MockTransport`` in-process, or serve it on loopback with ``local.loopback.serve``: the
same code answers both. It serves the identity endpoint under ``/identity`` and the REST and bulk APIs on the
real paths, with Marketo's envelopes, paging tokens, record-level results and error codes, and enforces the
instance limits (100 calls per 20 s -> 606, 10 concurrent -> 615, daily quota -> 607, URI > 8 KB -> 414,
body > 1 MB -> 413; 10 MB for imports). ``wire.py`` says how parameters are read, ``identity.py`` how tokens
are issued, ``lead_api.py``, ``object_api.py`` and ``usage.py`` what each endpoint answers; ``limits.py`` and
``usage.py`` keep the quota; ``faults.py`` injects faults and ``webhook.py`` plays the Call Webhook step.

Paths under ``/_simulator`` (which Marketo never serves) are the simulator's own control surface, documented in
``control.py``: the same faults, outages, token expiry, quota and webhook switches over plain HTTP, for curl and
chaos tests. It needs no token and is charged to no limit.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal

import httpx

from local.simulators.marketo import envelope
from local.simulators.marketo.bulk import ImportQueue
from local.simulators.marketo.control import CONTROL_PREFIX, Control
from local.simulators.marketo.envelope import ApiError, RequestIds
from local.simulators.marketo.faults import HTTP_CODES, TIMEOUT, Fault, FaultPlan
from local.simulators.marketo.identity import IDENTITY_PATH, Identity
from local.simulators.marketo.lead_api import Handler, LeadApi, lead_exists
from local.simulators.marketo.leads import LeadChangeNote, LeadStore
from local.simulators.marketo.limits import LimitConfig, Limits
from local.simulators.marketo.object_api import ObjectApi
from local.simulators.marketo.objects import (
    ObjectType,
    companies,
    custom_object,
    opportunities,
    opportunity_roles,
    sales_persons,
)
from local.simulators.marketo.usage import StatsApi
from local.simulators.marketo.webhook import Delivery, Sender, WebhookConfig, build_request
from local.simulators.marketo.wire import Call, Incoming, access_token, read

MAX_URI = 8 * 1024
MAX_BODY = 1024 * 1024
MAX_IMPORT_BODY = 10 * 1024 * 1024
RECENT_ERRORS = 50
_PLACEHOLDERS = {
    "batchId": r"(?P<batchId>\d+)",
    "id": r"(?P<id>\d+)",
    "apiName": r"(?P<apiName>[A-Za-z][A-Za-z0-9_]*)",
}

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
        self.clock = clock
        self._sleep = sleep
        self.latency = latency
        self.activity_scan_limit = activity_scan_limit
        self.timeout_mode = timeout_mode
        self.timeout_delay = timeout_delay
        self.limits = Limits(limits or LimitConfig())
        self.faults = FaultPlan(clock)
        self.calls: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.recent_errors: deque[dict[str, object]] = deque(maxlen=RECENT_ERRORS)
        self.webhook: WebhookConfig | None = None
        self.webhook_sender: Sender | None = None
        self.delivery = Delivery()
        self.control = Control(self)
        self._lock = threading.RLock()
        self._ids = RequestIds()
        self.identity = Identity(client_id, client_secret, clock=clock, ttl=token_ttl)
        self.leads = LeadStore(now=clock)
        self.imports = ImportQueue(self.leads, import_seconds=import_seconds)
        opps = opportunities()
        self.objects: dict[str, ObjectType] = {
            "companies": companies(),
            "opportunities": opps,
            "roles": opportunity_roles(lambda lead_id: lead_exists(self.leads.leads, lead_id), opps),
            "salespersons": sales_persons(),
        }
        self.custom_objects: dict[str, ObjectType] = {}
        lead_api = LeadApi(self.leads, self.imports, clock=clock, scan_limit=lambda: self.activity_scan_limit)
        object_api = ObjectApi(self.objects, self.custom_objects, clock=clock)
        stats_api = StatsApi(self.limits.usage, clock=clock)
        self._routes = [
            (method, _pattern(template), template, handler)
            for method, template, handler in [*lead_api.routes(), *object_api.routes(), *stats_api.routes()]
        ]

    # --- test and demo controls ----------------------------------------------------------------------------

    def work_imports(self, rows: int) -> int:
        """Up to ``rows`` rows of the running bulk imports done now (see ``ImportQueue.work``): how many."""
        with self._lock:
            return self.imports.work(rows)

    def define_custom_object(self, api_name: str, *, dedupe_fields: tuple[str, ...], fields: Mapping[str, str]) -> None:
        with self._lock:
            self.custom_objects[api_name] = custom_object(api_name, dedupe_fields=dedupe_fields, fields=fields)

    def set_daily_quota(self, quota: int) -> None:
        self.limits.config.daily_quota = quota

    def set_quota_used(self, used: int) -> None:
        """Today's usage becomes ``used`` calls (booked to the API user): the quota and stats/usage agree."""
        self.limits.usage.set_used(self.clock(), self.identity.user, used)

    def outage(self, seconds: float, status: int = 503) -> Fault:
        """Every call, identity included, answers ``status`` for ``seconds`` on the simulator's clock (one at a
        time: a new outage replaces the running one)."""
        self.faults.clear(gateway=True)
        return self.faults.inject(str(status), times=None, for_seconds=seconds, gateway=True)

    def expire_tokens(self) -> int:
        """Every issued token expires now (the next call with one gets 602); how many were live."""
        return self.identity.expire_all()

    def revoke_tokens(self) -> int:
        """Forget every issued token (the next call with one gets 601); how many were live."""
        return self.identity.revoke_all()

    @property
    def webhook_failures(self) -> int:
        return self.delivery.failed

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

    def call_counts(self) -> dict[str, int]:
        """API calls by ``METHOD /path template`` so far (identity included, the control surface not)."""
        with self._lock:
            return dict(sorted(self.calls.items()))

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self.leads.leads.get(lead_id)
            return dict(found) if found else None

    def find_leads(self, field: str, value: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(lead) for lead in self.leads.leads.values() if lead.get(field) == value]

    # --- the handler ---------------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return self.control(request)  # the simulator's own door: no token, no limits, not an API call
        try:
            response = self._serve(request)
        except httpx.TimeoutException:
            self._note_error(request.method, path, None, TIMEOUT)
            raise
        code = envelope.error_code(response)
        if code is not None and path != IDENTITY_PATH:
            self.limits.usage.error(self.clock(), code)
        if code is not None or response.status_code >= 400:
            self._note_error(request.method, path, response.status_code, code)
        return response

    def _serve(self, request: httpx.Request) -> httpx.Response:
        request_id = self._ids.next(self.clock())
        outage = self.faults.take(request.url.path, gateway=True)
        if outage is not None:  # the gateway answers before anything else runs (a maintenance window)
            self._route_and_count(request.method, request.url.path)
            return self._fault_answer(outage, request, request_id)
        oversized = None if request.url.path == IDENTITY_PATH else self._oversized(request)
        if oversized is not None:  # refused by the web tier before anything reads the body
            self._route_and_count(request.method, request.url.path)
            return oversized
        try:
            incoming = read(request)
        except ApiError as exc:  # an unreadable multipart body
            self._route_and_count(request.method, request.url.path)
            return envelope.error(request_id, exc.code, exc.message)
        handler, groups = self._route_and_count(incoming.method, incoming.path)
        if incoming.path == IDENTITY_PATH:
            return self.identity.token(incoming.params)
        auth_code = self.identity.check(access_token(request, incoming.params))
        if auth_code:
            self.rejections[auth_code] += 1
            return envelope.error(request_id, auth_code)
        if not self.limits.enter():
            self.rejections["615"] += 1
            return envelope.error(request_id, "615")
        notes: list[LeadChangeNote] = []
        user = self.identity.user
        try:
            fault = self.faults.take(incoming.path)
            if fault is not None and fault.code != TIMEOUT:
                return self._fault_answer(fault, request, request_id)
            if fault is not None and fault.delay is None and self.timeout_mode == "raise":
                raise httpx.ReadTimeout("simulated Marketo timeout", request=request)
            admitted_at = self.clock()
            refused = self.limits.admit(admitted_at, user)
            if refused:
                self.rejections[refused] += 1
                return envelope.error(request_id, refused)
            if fault is not None:  # real time: the client's real timeout must fire
                time.sleep(self.timeout_delay if fault.delay is None else fault.delay)
            if self.latency:
                self._sleep(self.latency)
            response = self._handle(handler, incoming, request, groups, request_id)
            if envelope.error_code(response) is not None:
                self.limits.refund(admitted_at, user)  # error answers are not charged (limits.py)
            with self._lock:
                notes = self._drain()
        finally:
            self.limits.leave()
        self._send_webhooks(notes)
        return response

    def _fault_answer(self, fault: Fault, request: httpx.Request, request_id: str) -> httpx.Response:
        if fault.code == TIMEOUT:  # only a gateway fault gets here with a timeout: hold or raise, then 504
            if fault.delay is None and self.timeout_mode == "raise":
                raise httpx.ReadTimeout("simulated Marketo timeout", request=request)
            time.sleep(self.timeout_delay if fault.delay is None else fault.delay)
            return envelope.http_error(504, "Gateway Timeout")
        if fault.code in HTTP_CODES:
            return envelope.http_error(int(fault.code), HTTPStatus(int(fault.code)).phrase)
        return envelope.error(request_id, fault.code)

    def _note_error(self, method: str, path: str, status: int | None, code: str | None) -> None:
        at = datetime.fromtimestamp(self.clock(), UTC).isoformat().replace("+00:00", "Z")
        self.recent_errors.append({"at": at, "method": method, "path": path, "status": status, "code": code})

    def _oversized(self, request: httpx.Request) -> httpx.Response | None:
        if len(request.url.raw_path) > MAX_URI:
            self.rejections["414"] += 1
            return envelope.http_error(414, "Request-URI Too Long")
        limit = MAX_IMPORT_BODY if request.url.path == "/bulk/v1/leads.json" else MAX_BODY
        if len(request.content) > limit:
            self.rejections["413"] += 1
            return envelope.http_error(413, "Request Entity Too Large")
        return None

    def _route_and_count(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        handler, groups, key = self._route(method, path)
        with self._lock:
            self.calls[key] += 1
        return handler, groups

    def _handle(
        self, handler: Handler, incoming: Incoming, request: httpx.Request, groups: dict[str, str], request_id: str
    ) -> httpx.Response:
        call = Call(incoming.method, incoming.path, incoming.params, request, groups, request_id, incoming.files)
        with self._lock:
            try:
                return handler(call)
            except ApiError as exc:
                return envelope.error(request_id, exc.code, exc.message)

    def _route(self, method: str, path: str) -> tuple[Handler, dict[str, str], str]:
        """The handler for ``method path``; 605 when the path is served for other methods only, else 610."""
        served_otherwise = False
        for route_method, pattern, template, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method == method:
                return handler, match.groupdict(), f"{method} {template}"
            served_otherwise = True
        return (_method_not_supported if served_otherwise else _not_found), {}, f"{method} {path}"

    def _drain(self) -> list[LeadChangeNote]:
        notes, self.leads.notes = self.leads.notes, []
        return notes

    def _send_webhooks(self, notes: list[LeadChangeNote]) -> None:
        config, sender = self.webhook, self.webhook_sender
        if config is None or sender is None:
            return
        for note in notes:
            if not config.wants(note) or not self.delivery.admit():
                continue
            url, headers, body = build_request(config, note)
            try:
                sender(url, headers, body)
            except Exception:  # fire-and-forget, as Marketo does
                self.delivery.fail()


def _pattern(template: str) -> re.Pattern[str]:
    regex = re.escape(template)
    for name, group in _PLACEHOLDERS.items():
        regex = regex.replace(re.escape("{" + name + "}"), group)
    return re.compile(regex)


def _not_found(call: Call) -> httpx.Response:
    raise ApiError("610")


def _method_not_supported(call: Call) -> httpx.Response:
    raise ApiError("605", f"HTTP Method {call.method} not supported for {call.path}")
