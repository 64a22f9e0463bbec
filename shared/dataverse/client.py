"""The Dataverse Web API client the sync uses: reads, queries, writes, ``$batch``, metadata, change tracking.

Synchronous ``httpx.Client`` underneath (authentication is its ``httpx.Auth``, see :mod:`shared.dataverse.auth`).
Every request goes through one loop: a slot from the shared :class:`ConcurrencyGate`, the call, then
:func:`shared.dataverse.faults.classify`; throttling, 5xx and timeouts are retried with backoff and jitter inside
the :class:`Backoff` time budget (``Retry-After`` is a floor), everything else is raised as the typed error the
caller must act on. Non-idempotent requests (creates) are retried only when the service certainly did not run them
(429, connection refused).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from shared.dataverse.batch import (
    MAX_BATCH_OPERATIONS,
    BatchOperation,
    BatchPart,
    build_batch,
    parse_batch_response,
)
from shared.dataverse.concurrency import ConcurrencyGate
from shared.dataverse.faults import Action, Fault, classify, error_body, transport_fault
from shared.dataverse.paging import NextLinkPaginator
from shared.dataverse.records import Record, record_from_row
from shared.dataverse.values import EntityRef
from shared.errors import SkipRecord, StopSync
from shared.http.backoff import Backoff

MAX_PAGE_SIZE = 5000
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


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


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    logical_name: str
    attribute_type: str
    valid_for_read: bool
    valid_for_update: bool
    valid_for_create: bool
    is_secured: bool
    metadata_id: str | None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class ColumnPrivilege:
    attribute_id: str
    can_read: bool
    can_update: bool
    can_create: bool


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    id: str
    values: Mapping[str, Any]
    etag: str | None = None  # None: update only if it exists (If-Match: *)


@dataclass(frozen=True, slots=True)
class BatchResult:
    status: int
    entity_id: str | None = None
    etag: str | None = None
    body: Any = None
    fault: Fault | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None


@dataclass(frozen=True, slots=True)
class Change:
    """One row from a change-tracking feed: ``upsert`` carries the record, ``removed`` only the id."""

    kind: str
    id: str
    record: Record | None = None


@dataclass(slots=True)
class ChangeFeed:
    """Iterate the changes; once exhausted, ``delta_link`` is the checkpoint for the next call."""

    _pages: Iterator[Change]
    _paginator: NextLinkPaginator
    delta_link: str | None = field(default=None)

    def __iter__(self) -> Iterator[Change]:
        yield from self._pages
        self.delta_link = self._paginator.delta_link

    @property
    def pages_read(self) -> int:
        """Pages fetched so far (a page is fetched when its first row is asked for)."""
        return self._paginator.pages

    @property
    def next_page_link(self) -> str | None:
        """The URL of the page after the one being read: where a run that stops early resumes."""
        return self._paginator.next_url


def entity_id_from_header(value: str | None) -> str | None:
    match = _ENTITY_ID.search(value or "")
    return match.group(1).lower() if match else None


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DataverseClient:
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
        return f"DataverseClient({self.org_url!r})"

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
            f"EntityDefinitions(LogicalName={_odata_literal(logical_name)})",
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

    # --- reads ------------------------------------------------------------------------------------------------

    def query(
        self,
        entity: str,
        *,
        select: Sequence[str],
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
        annotations: bool = True,
    ) -> Iterator[Record]:
        """All matching rows, page by page (``Prefer: odata.maxpagesize``), following ``@odata.nextLink``."""
        info = self.entity(entity)
        params = {"$select": ",".join(dict.fromkeys([info.primary_id_attribute, *select]))}
        if filter:
            params["$filter"] = filter
        if orderby:
            params["$orderby"] = orderby
        if top is not None:
            params["$top"] = str(top)
        for row in self._pages(info.entity_set_name, params, page_size, annotations):
            yield record_from_row(row, info.primary_id_attribute)

    def _prefer(self, page_size: int, annotations: bool, *extra: str) -> str:
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        parts = [f"odata.maxpagesize={size}", *extra]
        if annotations:
            parts.append('odata.include-annotations="*"')
        return ",".join(parts)

    def _pages(
        self, path: str, params: Mapping[str, str] | None, page_size: int, annotations: bool, *extra: str
    ) -> Iterator[dict[str, Any]]:
        paginator = NextLinkPaginator()
        prefer = self._prefer(page_size, annotations, *extra)
        page = self._get_json(path, params=params, prefer=prefer)
        while True:
            paginator.update_state(page)
            yield from page.get("value", [])
            if not paginator.has_more or paginator.next_url is None:
                return
            page = self._get_json(paginator.next_url, prefer=prefer)

    def read_by_ids(self, entity: str, ids: Iterable[str], columns: Sequence[str]) -> dict[str, Record]:
        """Many records by id with only ``columns``, in as few requests as the URL length allows.

        Ids that do not exist (or the user cannot read) are simply absent from the result.
        """
        info = self.entity(entity)
        wanted = list(dict.fromkeys(i.lower() for i in ids))
        found: dict[str, Record] = {}
        for chunk in self._id_chunks(info, wanted, columns):
            values = ",".join(_odata_literal(i) for i in chunk)
            flt = f"Microsoft.Dynamics.CRM.In(PropertyName={_odata_literal(info.primary_id_attribute)},PropertyValues=[{values}])"
            for record in self.query(entity, select=columns, filter=flt):
                found[record.id] = record
        return found

    def _id_chunks(self, info: EntityInfo, ids: list[str], columns: Sequence[str]) -> Iterator[list[str]]:
        base = len(self.service_root) + len(info.entity_set_name) + 200
        base += len(quote(",".join([info.primary_id_attribute, *columns]), safe=","))
        chunk: list[str] = []
        size = base
        for item in ids:
            cost = len(quote(_odata_literal(item) + ",", safe=""))
            if chunk and size + cost > self._max_url_length:
                yield chunk
                chunk, size = [], base
            chunk.append(item)
            size += cost
        if chunk:
            yield chunk

    # --- writes -----------------------------------------------------------------------------------------------

    def update(self, entity: str, record_id: str, values: Mapping[str, Any], *, etag: str | None = None) -> str | None:
        """PATCH one record; returns its new ETag.

        With ``etag``: only if unchanged since read (412 -> :class:`Conflict`). Without: only if it still exists
        (``If-Match: *``; 404 -> :class:`SkipRecord`), never an accidental upsert.
        """
        info = self.entity(entity)
        response = self.request(
            "PATCH",
            f"{info.entity_set_name}({record_id})",
            params={"$select": info.primary_id_attribute},
            json=dict(values),
            headers={"If-Match": etag or "*", "Prefer": "return=representation"},
        )
        if response.status_code == 200 and response.content:
            tag = response.json().get("@odata.etag")
            return str(tag) if tag is not None else None
        tag = response.headers.get("etag")
        return str(tag) if tag is not None else None

    def create(self, entity: str, values: Mapping[str, Any]) -> str:
        """POST one record; returns the new id from ``OData-EntityId``."""
        info = self.entity(entity)
        response = self.request("POST", info.entity_set_name, json=dict(values), idempotent=False)
        new_id = entity_id_from_header(response.headers.get("odata-entityid"))
        if new_id is None:
            raise SkipRecord(f"Dataverse created a {entity} but sent no OData-EntityId", code="no-entity-id")
        return new_id

    def execute_batch(self, operations: Sequence[BatchOperation], *, atomic: bool = False) -> list[BatchResult]:
        """Run operations in ``$batch`` requests of up to 1000; one result per operation, in order.

        ``atomic``: each batch is one change set (all or nothing). Otherwise ``odata.continue-on-error`` lets the
        rest go on when one fails. Per-operation failures are returned as faults, not raised.
        """
        results: list[BatchResult] = []
        for start in range(0, len(operations), MAX_BATCH_OPERATIONS):
            chunk = operations[start : start + MAX_BATCH_OPERATIONS]
            content_type, body = build_batch(chunk, self.service_root, atomic=atomic)
            idempotent = all(op.method.upper() != "POST" for op in chunk)
            response = self.request(
                "POST",
                "$batch",
                content=body,
                headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
                idempotent=idempotent,
            )
            parts = parse_batch_response(response.headers.get("content-type", ""), response.text)
            results.extend(_batch_results(parts, len(chunk)))
        return results

    def update_many(self, entity: str, updates: Sequence[RecordUpdate], *, atomic: bool = False) -> list[BatchResult]:
        info = self.entity(entity)
        operations = [
            BatchOperation("PATCH", f"{info.entity_set_name}({u.id})", dict(u.values), {"If-Match": u.etag or "*"})
            for u in updates
        ]
        return self.execute_batch(operations, atomic=atomic) if operations else []

    def create_many(self, entity: str, rows: Sequence[Mapping[str, Any]], *, atomic: bool = False) -> list[BatchResult]:
        info = self.entity(entity)
        operations = [BatchOperation("POST", info.entity_set_name, dict(row)) for row in rows]
        return self.execute_batch(operations, atomic=atomic) if operations else []

    def qualify_lead(
        self,
        lead_id: str,
        *,
        create_contact: bool = True,
        create_account: bool = False,
        create_opportunity: bool = False,
    ) -> list[EntityRef]:
        """The ``QualifyLead`` action; returns the records it created (the contact's ``originatingleadid`` is the lead)."""
        response = self.request(
            "POST",
            f"leads({lead_id})/Microsoft.Dynamics.CRM.QualifyLead",
            json={
                "CreateAccount": create_account,
                "CreateContact": create_contact,
                "CreateOpportunity": create_opportunity,
                "Status": 3,
            },
            idempotent=False,
        )
        created = []
        for row in response.json().get("value", []):
            kind = str(row.get("@odata.type", "")).removeprefix("#Microsoft.Dynamics.CRM.")
            created.append(EntityRef(str(row.get(f"{kind}id", "")).lower(), kind))
        return created

    # --- metadata and column security -------------------------------------------------------------------------

    def attributes(self, entity: str) -> list[AttributeInfo]:
        """Columns of a table with what the sync needs to know before reading or writing them."""
        base = f"EntityDefinitions(LogicalName={_odata_literal(entity)})/Attributes"
        rows = self._get_json(
            base,
            params={
                "$select": "LogicalName,AttributeType,IsValidForRead,IsValidForUpdate,IsValidForCreate,IsSecured,MetadataId"
            },
        )["value"]
        lengths = {
            row["LogicalName"]: row.get("MaxLength")
            for row in self._get_json(
                f"{base}/Microsoft.Dynamics.CRM.StringAttributeMetadata", params={"$select": "LogicalName,MaxLength"}
            )["value"]
        }
        return [
            AttributeInfo(
                logical_name=str(row["LogicalName"]),
                attribute_type=str(row.get("AttributeType")),
                valid_for_read=bool(row.get("IsValidForRead")),
                valid_for_update=bool(row.get("IsValidForUpdate")),
                valid_for_create=bool(row.get("IsValidForCreate")),
                is_secured=bool(row.get("IsSecured")),
                metadata_id=str(row["MetadataId"]).lower() if row.get("MetadataId") else None,
                max_length=lengths.get(row["LogicalName"]),
            )
            for row in rows
        ]

    def option_labels(self, entity: str, attribute: str, kind: str = "Picklist") -> dict[int, str]:
        """Value -> label of a choice column; ``kind`` is Picklist, MultiSelectPicklist, Boolean, State or Status."""
        body = self._get_json(
            f"EntityDefinitions(LogicalName={_odata_literal(entity)})/Attributes(LogicalName={_odata_literal(attribute)})"
            f"/Microsoft.Dynamics.CRM.{kind}AttributeMetadata",
            params={"$select": "LogicalName", "$expand": "OptionSet"},
        )
        option_set = body.get("OptionSet") or {}
        options = list(option_set.get("Options") or [])
        options += [option_set[k] for k in ("TrueOption", "FalseOption") if option_set.get(k)]
        return {int(o["Value"]): _label(o.get("Label")) for o in options}

    def column_privileges(self, user_id: str) -> dict[str, ColumnPrivilege]:
        """The user's field-security privileges by attribute MetadataId (0 = not allowed, 4 = allowed)."""
        body = self._get_json(f"systemusers({user_id})/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()")
        privileges = {}
        for row in body.get("AttributePrivileges", []):
            attribute_id = str(row["AttributeId"]).lower()
            privileges[attribute_id] = ColumnPrivilege(
                attribute_id, bool(row.get("CanRead")), bool(row.get("CanUpdate")), bool(row.get("CanCreate"))
            )
        return privileges

    def secured_column_access(self, entity: str, user_id: str) -> dict[str, ColumnPrivilege]:
        """For each secured column of ``entity``: what ``user_id`` may do (no privilege row means nothing)."""
        privileges = self.column_privileges(user_id)
        access = {}
        for attribute in self.attributes(entity):
            if attribute.is_secured and attribute.metadata_id:
                access[attribute.logical_name] = privileges.get(
                    attribute.metadata_id, ColumnPrivilege(attribute.metadata_id, False, False, False)
                )
        return access

    # --- change tracking --------------------------------------------------------------------------------------

    def changes(
        self, entity: str, *, select: Sequence[str], delta_link: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> ChangeFeed:
        """Rows changed since ``delta_link`` (or every row, on the first call); checkpoint ``feed.delta_link``."""
        info = self.entity(entity)
        paginator = NextLinkPaginator()

        def rows() -> Iterator[Change]:
            prefer = self._prefer(page_size, True, "odata.track-changes")
            if delta_link:
                page = self._get_json(delta_link, prefer=prefer)
            else:
                select_list = ",".join(dict.fromkeys([info.primary_id_attribute, *select]))
                page = self._get_json(info.entity_set_name, params={"$select": select_list}, prefer=prefer)
            while True:
                paginator.update_state(page)
                for row in page.get("value", []):
                    yield _change(row, info.primary_id_attribute)
                if not paginator.has_more or paginator.next_url is None:
                    return
                page = self._get_json(paginator.next_url, prefer=prefer)

        return ChangeFeed(rows(), paginator)


def _change(row: Mapping[str, Any], id_attribute: str) -> Change:
    context = str(row.get("@odata.context", ""))
    if context.endswith("/$deletedEntity") or "@removed" in row:
        raw_id = row.get("id") or row.get(id_attribute) or ""
        return Change("removed", str(raw_id).lower())
    record = record_from_row(row, id_attribute)
    return Change("upsert", record.id, record)


def _label(label: Any) -> str:
    if not isinstance(label, Mapping):
        return ""
    user = label.get("UserLocalizedLabel")
    if isinstance(user, Mapping) and user.get("Label") is not None:
        return str(user["Label"])
    localized = label.get("LocalizedLabels") or []
    return str(localized[0].get("Label", "")) if localized else ""


def _batch_results(parts: Sequence[BatchPart], expected: int) -> list[BatchResult]:
    results = []
    for part in parts:
        fault = classify(httpx.Response(part.status, headers=dict(part.headers), content=part.body.encode()))
        body = None
        if part.body.strip():
            try:
                body = part.json()
            except ValueError:
                body = part.body
        etag = part.headers.get("etag")
        if isinstance(body, dict) and body.get("@odata.etag"):
            etag = str(body["@odata.etag"])
        results.append(
            BatchResult(part.status, entity_id_from_header(part.headers.get("odata-entityid")), etag, body, fault)
        )
    if len(results) < expected and results and results[-1].fault is not None:
        # A failed change set answers with the one error: every operation in it was rolled back.
        failed = results[-1]
        results = results[:-1] + [failed] * (expected - len(results) + 1)
    if len(results) != expected:
        code, _ = error_body(httpx.Response(500))
        missing = Fault(Action.RETRY, "batch response missing operations", 500, code)
        results += [BatchResult(500, fault=missing)] * (expected - len(results))
    return results
