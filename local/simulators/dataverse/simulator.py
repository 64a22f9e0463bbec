"""A faithful, in-memory Dataverse organisation as an ``httpx`` handler (``Request -> Response``).

Hand it to ``httpx.MockTransport`` in-process, or serve it on loopback with ``local.loopback.serve``: the same
code answers both. It serves the Entra-like authority MSAL needs (``authority.py``) and the Web API under
``/api/data/v9.2/``; the parts, one concept each:

    routing.py    paths -> handlers          records.py  one row: create/retrieve/upsert/delete, property values
    query.py      $select $filter $orderby $top, paging          delta.py    change tracking (delta links)
    rows.py       rows, versions (ETags), change log, security    validation.py  body checks with Dataverse's codes
    present.py    rows on the wire, formatted values              metadata.py EntityDefinitions, Attributes
    batch.py      $batch and change sets                          actions.py  WhoAmI, QualifyLead, ...
    plugins.py    webhook steps (context.py renders, webhooks.py delivers)
    control.py    the simulator's own ``/_simulator`` control surface (faults, outage, tokens, webhooks, calls)
    limits.py     service protection (429)                        faults.py   planned failures
    schema.py     tables (standard ones recorded in tables/*.json)

Thread-safe: one lock guards the organisation's state; webhook deliveries are made after the lock is released
(and only for committed changes: a rolled-back change set sends nothing).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from local.simulators.dataverse import errors
from local.simulators.dataverse.authority import AppRegistration, Authority
from local.simulators.dataverse.batch import Batch
from local.simulators.dataverse.control import CONTROL_PREFIX, Control
from local.simulators.dataverse.errors import ApiError
from local.simulators.dataverse.faults import FaultPlan, InjectedFault
from local.simulators.dataverse.limits import ServiceProtection
from local.simulators.dataverse.plugins import Plugins
from local.simulators.dataverse.routing import Router, route_label
from local.simulators.dataverse.rows import Caller, Organisation, State
from local.simulators.dataverse.schema import REGISTRATION_TABLES, SDK_MESSAGES, Table, default_tables, metadata_id
from local.simulators.dataverse.webhooks import Delivery, DeliverySwitch, Sender, http_sender
from local.simulators.dataverse.wire import API

__all__ = ["CapturedWebhooks", "DataverseSimulator", "InjectedFault"]


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
        self.organization_name = organization_name
        self.organization_id = organization_id
        self.business_unit_id = str(uuid.uuid5(uuid.UUID(organization_id), "root-business-unit"))
        self.authority = Authority(tenant_id=tenant_id, host=authority_host, clock=clock, token_lifetime=token_lifetime)
        self.org = Organisation(default_tables(), now)
        self.plugins = Plugins(
            self.org,
            organization_name,
            organization_id,
            self.business_unit_id,
            webhook_urls=list(webhook_urls),
            sender=sender or http_sender,
            max_context_bytes=max_context_bytes,
        )
        self.org.on_write = self.plugins.notify
        self.limits = ServiceProtection(clock, request_limit, concurrency_limit, dop_hint)
        self.clock = clock
        self.faults = FaultPlan(clock=clock)
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()  # 429 answers by error code (service protection and faults)
        self.control = Control(self)
        self._router = Router(
            self.org,
            check=self.plugins.check_step,
            batch=Batch(self.org, self.plugins, self._dispatch_inner).__call__,
            business_unit_id=self.business_unit_id,
            organization_id=organization_id,
        )
        self._caller: Caller | None = None
        self._seed_sdk_messages()

    # --- settings other code reads and changes -----------------------------------------------------------------

    @property
    def tables(self) -> dict[str, Table]:
        return self.org.tables

    @property
    def _state(self) -> State:
        return self.org.state

    @property
    def _now(self) -> Callable[[], datetime]:
        """The wall clock that stamps createdon/modifiedon (tests swap it: tests/pipeline/test_quicksync.py)."""
        return self.org.now

    @_now.setter
    def _now(self, now: Callable[[], datetime]) -> None:
        self.org.now = now

    @property
    def tenant_id(self) -> str:
        return self.authority.tenant_id

    @property
    def webhook_urls(self) -> list[str]:
        return self.plugins.webhook_urls

    @webhook_urls.setter
    def webhook_urls(self, urls: Iterable[str]) -> None:
        self.plugins.webhook_urls = list(urls)

    @property
    def sender(self) -> Sender:
        return self.plugins.sender

    @sender.setter
    def sender(self, sender: Sender) -> None:
        self.plugins.sender = sender

    @property
    def max_context_bytes(self) -> int:
        return self.plugins.max_context_bytes

    @max_context_bytes.setter
    def max_context_bytes(self, size: int) -> None:
        self.plugins.max_context_bytes = size

    @property
    def deliveries(self) -> list[Delivery]:
        return self.plugins.deliveries

    @property
    def request_limit(self) -> int:
        return self.limits.request_limit

    @request_limit.setter
    def request_limit(self, limit: int) -> None:
        self.limits.request_limit = limit

    @property
    def concurrency_limit(self) -> int:
        return self.limits.concurrency_limit

    @concurrency_limit.setter
    def concurrency_limit(self, limit: int) -> None:
        self.limits.concurrency_limit = limit

    @property
    def dop_hint(self) -> int | None:
        return self.limits.dop_hint

    @dop_hint.setter
    def dop_hint(self, hint: int | None) -> None:
        self.limits.dop_hint = hint

    @property
    def throttle_retry_after(self) -> float:
        return self.limits.throttle_retry_after

    @throttle_retry_after.setter
    def throttle_retry_after(self, seconds: float) -> None:
        self.limits.throttle_retry_after = seconds

    @property
    def peak_in_flight(self) -> int:
        return self.limits.peak_in_flight

    # --- configuration and direct access (what an admin or a person in the UI would do) ----------------------

    def _seed_sdk_messages(self) -> None:
        """Every organisation has its SDK messages and, per table, a filter for each message a step may use."""
        for message in SDK_MESSAGES:
            message_id = self.seed("sdkmessage", {"name": message}, record_id=metadata_id("sdkmessage", message))
            for table in self.tables.values():
                if table.logical_name in REGISTRATION_TABLES or (
                    message == "QualifyLead" and table.logical_name != "lead"
                ):
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
        self.org.grants.setdefault(user_id.lower(), {})[metadata_id(entity, column)] = (read, update, create)

    def deny_read(self, user_id: str, entity: str, *, denied: bool = True) -> None:
        """Take Read on a table away from a user's security roles (or give it back): its reads get PrivilegeDenied."""
        tables = self.org.read_denied.setdefault(user_id.lower(), set())
        if denied:
            tables.add(entity)
        else:
            tables.discard(entity)

    def inject(self, fault: InjectedFault | None = None, /, **kwargs: Any) -> InjectedFault:
        """Plan a failure for the next matching API request(s)."""
        return self.faults.add(fault or InjectedFault(**kwargs))

    def expire_tokens(self) -> int:
        """Every issued token stops working (the next call with one gets 401); how many were still live."""
        now = self.clock()
        live = sum(1 for issued in list(self.authority.tokens.values()) if issued.expires_at > now)
        self.authority.revoke_all()
        return live

    def outage(self, seconds: float, status: int = 503, *, authority: bool = False) -> InjectedFault:
        """Every Web API call answers ``status`` for ``seconds`` on the simulator's clock, before any token check
        (a maintenance window); with ``authority`` the token endpoint answers 503 too. Replaces a running one."""
        self.faults.clear(gateway=True)
        return self.faults.add(
            InjectedFault(
                status=status,
                code="0x80040216",
                message="The service is temporarily unavailable. Try again later.",
                times=None,
                until=self.clock() + seconds,
                gateway=True,
                authority=authority,
            )
        )

    def webhook_switch(self) -> DeliverySwitch:
        return self.plugins.switch

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
        return self.plugins.register(
            self.seed,
            url,
            entity=entity,
            message=message,
            filtering_attributes=filtering_attributes,
            pre_image=pre_image,
            post_image=post_image,
            header=header,
            key=key,
        )

    def seed(self, entity: str, values: Mapping[str, Any], *, record_id: str | None = None) -> str:
        """Put a row in place without side effects (no webhook): test setup."""
        with self.org.lock:
            return self.org.seed(self.tables[entity], values, record_id)

    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        with self.org.lock:
            row = self.org.row(self.tables[entity], record_id.lower())
            return copy.deepcopy(row) if row is not None else None

    def rows(self, entity: str) -> list[dict[str, Any]]:
        with self.org.lock:
            return copy.deepcopy(list(self.org.rows(self.tables[entity]).values()))

    def etag(self, entity: str, record_id: str) -> str:
        with self.org.lock:
            return self.org.etag(self.tables[entity], record_id.lower())

    def user_create(self, entity: str, values: Mapping[str, Any], *, user_id: str) -> str:
        """A person creates a record in the app (fires webhooks as that user)."""
        table = self.tables[entity]
        return str(self._as_user(user_id, lambda caller: self.org.create(table, values, caller, web_api=False)))

    def user_update(self, entity: str, record_id: str, values: Mapping[str, Any], *, user_id: str) -> None:
        table = self.tables[entity]
        self._as_user(
            user_id, lambda caller: self.org.update(table, record_id.lower(), values, caller, "*", web_api=False)
        )

    def user_delete(self, entity: str, record_id: str, *, user_id: str) -> None:
        table = self.tables[entity]
        self._as_user(user_id, lambda caller: self.org.delete(table, record_id.lower(), caller))

    def _as_user(self, user_id: str, action: Callable[[Caller], Any]) -> Any:
        self.plugins.begin()
        try:
            with self.org.lock:
                result = action(Caller(user_id.lower()))
        finally:
            self.plugins.flush()
        return result

    # --- the handler ---------------------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return self.control(request)  # the simulator's own door: no token, no limits, not an API call
        if not path.startswith(API) and self.authority.handles(path):
            with self.org.lock:
                self.calls[f"{request.method} {path.rsplit('/', 1)[-1]}"] += 1
            if self.faults.take(request, gateway=True, authority=True) is not None:
                return httpx.Response(
                    503,
                    json={
                        "error": "temporarily_unavailable",
                        "error_description": "AADSTS50196: The server is temporarily unavailable.",
                        "error_codes": [50196],
                    },
                )
            return self.authority(request)
        if not path.startswith(API):
            return errors.segment_not_found(path).response()
        self.plugins.begin()
        try:
            return self._api(request)
        finally:
            self.plugins.flush()

    def _api(self, request: httpx.Request) -> httpx.Response:
        outage = self.faults.take(request, gateway=True)
        if outage is not None:
            return outage.error().response()
        fault = self.faults.take(request)
        if fault is not None:
            with self.org.lock:
                if fault.kind != "timeout" and fault.status == 429:
                    self.throttled[fault.code] += 1
            if fault.kind == "timeout":
                time.sleep(fault.delay)
                raise httpx.ReadTimeout("simulated timeout", request=request)
            return fault.error().response()
        caller = self._authenticate(request)
        if isinstance(caller, httpx.Response):
            return caller
        try:
            admitted = self.limits.admit(caller.user_id)
        except ApiError as refused:
            with self.org.lock:
                self.throttled[refused.code] += 1
            return refused.response()
        try:
            with self.org.lock:
                self.calls[route_label(request)] += 1
                self._caller = caller
                try:
                    response = self._router.dispatch(request, caller)
                except ApiError as error:
                    response = error.response()
        finally:
            self.limits.release(caller.user_id, admitted)
        for key, value in self.limits.headers(caller.user_id).items():
            response.headers[key] = value
        return response

    def _dispatch_inner(self, request: httpx.Request) -> httpx.Response:
        """One operation of a ``$batch``, as the batch's caller (the lock is already held)."""
        assert self._caller is not None
        try:
            return self._router.dispatch(request, self._caller)
        except ApiError as error:
            return error.response()

    def _authenticate(self, request: httpx.Request) -> Caller | httpx.Response:
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
        with self.org.lock:
            user = self.org.row(self.tables["systemuser"], issued.user_id)
        if user is None or user.get("isdisabled"):
            return ApiError(
                403,
                "0x8004d24b",
                f"The user with SystemUserId={issued.user_id} is disabled or not in the organization.",
            ).response()
        return Caller(issued.user_id)


@dataclass(slots=True)
class CapturedWebhooks:
    """A sender that records what it was given and answers with planned statuses (default 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        self.received.append((url, dict(headers), body))
        return self.statuses.pop(0) if self.statuses else 200
