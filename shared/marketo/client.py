"""Marketo Engage REST operations the sync needs, each a thin shape over :class:`MarketoCaller`.

Batching (300 records, 1 MB bodies, 300 filter values, 10 MB import files) and paging (``nextPageToken`` /
``moreResult``) are done here so callers hand over whole lists and iterate whole feeds.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from shared.errors import SkipRecord
from shared.http.backoff import Backoff
from shared.marketo.auth import MarketoAuth
from shared.marketo.batching import MAX_BATCH, chunks, record_batches
from shared.marketo.bulk import DEFAULT_FILE_BYTES, MAX_IMPORT_BYTES, import_files
from shared.marketo.caller import Answer, MarketoCaller, utcnow
from shared.marketo.limiter import Limiter, RateLimiter
from shared.marketo.models import (
    Activity,
    ActivityPage,
    ImportStatus,
    LeadField,
    ObjectDescription,
    Reason,
    RecordOutcome,
    RecordStatus,
    SchemaField,
)
from shared.marketo.usage import USAGE_PATH, DailyUsage, UsageCache, daily_usage

MAX_URI_BYTES = 8 * 1024
SYNC_ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")


class MarketoClient:
    """Synchronous Marketo client. Share one ``limiter`` between every client of the same Marketo instance."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        identity_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        limiter: Limiter | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
        token_margin: float = 60.0,
        identity_method: Literal["POST", "GET"] = "POST",
    ) -> None:
        self.auth = MarketoAuth(
            identity_url, client_id, client_secret, margin=token_margin, clock=clock, identity_method=identity_method
        )
        self.limiter = limiter if limiter is not None else RateLimiter(clock=clock, sleep=sleep)
        self._sleep = sleep
        self._clock = clock
        self._caller = MarketoCaller(
            http,
            base_url=base_url,
            auth=self.auth,
            limiter=self.limiter,
            backoff=backoff or Backoff(),
            sleep=sleep,
            clock=clock,
            now=now,
            rand=rand,
        )
        self.usage = UsageCache(self.usage_today, clock)  # the status view reads it: at most once a minute

    def __repr__(self) -> str:
        return f"MarketoClient(base_url={self._caller.url('')!r}, auth={self.auth!r})"

    @property
    def clock(self) -> Callable[[], float]:
        """The clock the client's retries and limiter read (what its ``sleep`` moves in tests)."""
        return self._clock

    def with_limiter(self, limiter: Limiter) -> MarketoClient:
        """The same client (connection, token, usage cache) drawing its calls through ``limiter``: the
        composition root gives the reconcile the live lane of the shared budget and the job runner the backfill
        lane (shared/marketo/lanes.py)."""
        twin = copy.copy(self)
        twin.limiter = limiter
        twin._caller = copy.copy(self._caller)
        twin._caller._limiter = limiter  # the caller is this class's own part
        twin.usage = UsageCache(twin.usage_today, self._clock, self.usage.max_age)
        return twin

    @property
    def retries(self) -> Mapping[str, int]:
        """Count of retried (or re-authenticated) answers by Marketo code, for logs and tests."""
        return dict(self._caller.retries)

    # --- leads ---------------------------------------------------------------------------------------------

    def get_leads(
        self, filter_type: str, values: Sequence[str | int], *, fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Leads whose ``filter_type`` field matches any of ``values`` (300 per call, paged)."""
        leads: list[dict[str, Any]] = []
        for _, chunk in chunks(list(values), MAX_BATCH):
            texts = [str(value) for value in chunk]
            if any("," in text for text in texts):
                raise SkipRecord(f"filter values for {filter_type} may not contain commas", code="filter-value")
            params: dict[str, str] = {"filterType": filter_type, "filterValues": ",".join(texts)}
            if fields:
                params["fields"] = ",".join(fields)
            leads.extend(self._paged_query("/rest/v1/leads.json", params, what="get leads"))
        return leads

    def _paged_query(self, path: str, params: dict[str, str], *, what: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = dict(params)
            if token:
                page["nextPageToken"] = token
            answer = self._get_maybe_long(path, page, what=what)
            yield from answer.payload.get("result") or []
            token = answer.payload.get("nextPageToken")
            if not token or answer.payload.get("moreResult") is False or not answer.payload.get("result"):
                return

    def _get_maybe_long(self, path: str, params: dict[str, str], *, what: str) -> Answer:
        """GET, or POST with ``_method=GET`` and a form body when the URI would pass Marketo's 8 KB limit."""
        uri = self._caller.url(path) + "?" + urlencode(params)
        if len(uri.encode()) <= MAX_URI_BYTES - 256:
            return self._caller.call("GET", path, params=params, what=what)
        return self._caller.call("POST", path, params={"_method": "GET"}, data=params, what=what)

    def sync_leads(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        action: str = "createOrUpdate",
        lookup_field: str = "email",
        partition_name: str | None = None,
    ) -> list[RecordOutcome]:
        """Create/update leads; one outcome per input record, in input order, indices across chunks."""
        if action not in SYNC_ACTIONS:
            raise ValueError(f"unknown sync action {action!r}")
        extra: dict[str, Any] = {"action": action, "lookupField": lookup_field}
        if partition_name:
            extra["partitionName"] = partition_name
        return self._sync("/rest/v1/leads.json", records, extra, what="sync leads", id_key="id")

    def _sync(
        self, path: str, records: Sequence[Mapping[str, Any]], extra: Mapping[str, Any], *, what: str, id_key: str
    ) -> list[RecordOutcome]:
        outcomes: list[RecordOutcome] = []
        for offset, batch in record_batches(records):
            answer = self._caller.call("POST", path, json={**extra, "input": list(batch)}, what=what)
            results = answer.payload.get("result") or []
            for position in range(len(batch)):
                if position < len(results):
                    outcomes.append(RecordOutcome.from_result(offset + position, results[position], id_key=id_key))
                else:
                    missing = Reason("missing", "Marketo returned no result for this record")
                    outcomes.append(RecordOutcome(offset + position, RecordStatus.SKIPPED, None, (missing,)))
        return outcomes

    # --- usage -----------------------------------------------------------------------------------------------

    def usage_today(self) -> DailyUsage:
        """Today's API calls, as Marketo books them (every integration's): one charged call. The status view
        reads it through :attr:`usage`, which asks at most once a minute."""
        return daily_usage(self._caller.call("GET", USAGE_PATH, what="usage").payload)

    def describe_leads(self) -> list[LeadField]:
        answer = self._caller.call("GET", "/rest/v1/leads/describe.json", what="describe leads")
        return [LeadField.from_result(item) for item in answer.payload.get("result") or []]

    def lead_schema_fields(self, *, batch_size: int = MAX_BATCH) -> list[SchemaField]:
        items = self._paged_query(
            "/rest/v1/leads/schema/fields.json", {"batchSize": str(batch_size)}, what="lead fields"
        )
        return [SchemaField.from_result(item) for item in items]

    def create_lead_fields(self, fields: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        """Create custom lead fields (``displayName``, ``name``, ``dataType``, ...); outcomes carry the field name."""
        return self._sync("/rest/v1/leads/schema/fields.json", fields, {}, what="create lead fields", id_key="name")

    # --- activity feeds ------------------------------------------------------------------------------------

    def paging_token(self, since: datetime) -> str:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        answer = self._caller.call(
            "GET",
            "/rest/v1/activities/pagingtoken.json",
            params={"sinceDatetime": since.isoformat()},
            what="paging token",
        )
        return str(answer.payload["nextPageToken"])

    def lead_changes(
        self, page_token: str, fields: Sequence[str], *, batch_size: int | None = None
    ) -> Iterator[ActivityPage]:
        """Change Data Value (13) and New Lead (12) activities after ``page_token``, page by page.

        Each page carries the token to resume *after* it: checkpoint ``page.next_page_token`` once the page is
        handled. A page may be short, even empty, while ``more_result`` is still true.
        """
        if not fields:
            raise ValueError("lead changes need at least one field")
        params = {"fields": ",".join(fields)}
        if batch_size:
            params["batchSize"] = str(batch_size)
        return self._activity_feed("/rest/v1/activities/leadchanges.json", page_token, params, what="lead changes")

    def deleted_leads(self, page_token: str, *, batch_size: int | None = None) -> Iterator[ActivityPage]:
        params = {"batchSize": str(batch_size)} if batch_size else {}
        return self._activity_feed("/rest/v1/activities/deletedleads.json", page_token, params, what="deleted leads")

    def _activity_feed(self, path: str, token: str, params: Mapping[str, str], *, what: str) -> Iterator[ActivityPage]:
        while True:
            answer = self._get_maybe_long(path, {**params, "nextPageToken": token}, what=what)
            payload = answer.payload
            token = str(payload.get("nextPageToken") or token)
            more = bool(payload.get("moreResult", False))
            activities = tuple(Activity.from_result(item) for item in payload.get("result") or [])
            yield ActivityPage(activities=activities, next_page_token=token, more_result=more)
            if not more:
                return

    # --- bulk import ---------------------------------------------------------------------------------------

    def submit_lead_import(
        self,
        csv_file: bytes,
        *,
        lookup_field: str | None = None,
        list_id: int | None = None,
        file_name: str = "leads.csv",
    ) -> int:
        """Queue one CSV import; returns its batch id. Files of 10 MB or more are refused before any call."""
        if len(csv_file) >= MAX_IMPORT_BYTES:
            raise SkipRecord(
                f"import file is {len(csv_file)} bytes; Marketo takes < 10 MB (split it, e.g. with import_leads)",
                code="import-too-large",
            )
        data = {"format": "csv"}
        if lookup_field:
            data["lookupField"] = lookup_field
        if list_id is not None:
            data["listId"] = str(list_id)
        answer = self._caller.call(
            "POST",
            "/bulk/v1/leads.json",
            data=data,
            files={"file": (file_name, csv_file, "text/csv")},
            what="bulk lead import",
        )
        return int(answer.payload["result"][0]["batchId"])

    def import_status(self, batch_id: int) -> ImportStatus:
        answer = self._caller.call("GET", f"/bulk/v1/leads/batch/{batch_id}.json", what="import status")
        return ImportStatus.from_result(answer.payload["result"][0])

    def wait(self, seconds: float) -> None:
        """Wait on the client's own clock (what its retries and rate limiter wait on; tests inject it)."""
        self._sleep(seconds)

    def wait_for_import(self, batch_id: int, *, poll_interval: float = 5.0, timeout: float = 3600.0) -> ImportStatus:
        deadline = self._clock() + timeout
        while True:
            status = self.import_status(batch_id)
            if status.finished or self._clock() >= deadline:
                return status
            self._sleep(poll_interval)

    def import_failures(self, batch_id: int) -> str:
        """The failed rows as CSV, each with the reason appended (empty when none failed)."""
        return self._caller.call(
            "GET", f"/bulk/v1/leads/batch/{batch_id}/failures.json", what="import failures", expect_json=False
        ).text

    def import_warnings(self, batch_id: int) -> str:
        return self._caller.call(
            "GET", f"/bulk/v1/leads/batch/{batch_id}/warnings.json", what="import warnings", expect_json=False
        ).text

    def import_leads(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        columns: Sequence[str] | None = None,
        lookup_field: str | None = None,
        max_file_bytes: int = DEFAULT_FILE_BYTES,
        max_open_jobs: int = 2,
        poll_interval: float = 5.0,
    ) -> list[ImportStatus]:
        """Import any number of records: split into < 10 MB files, at most ``max_open_jobs`` unfinished at once.

        Marketo processes two imports at a time per instance; keeping our own jobs to two avoids filling the
        shared queue (10 jobs, error 1016 beyond) that other integrations also use.
        """
        pending = list(import_files(records, columns=columns, max_bytes=max_file_bytes))
        open_jobs: list[int] = []
        done: dict[int, ImportStatus] = {}
        order: list[int] = []
        while pending or open_jobs:
            while pending and len(open_jobs) < max_open_jobs:
                batch_id = self.submit_lead_import(pending.pop(0), lookup_field=lookup_field)
                open_jobs.append(batch_id)
                order.append(batch_id)
            for batch_id in list(open_jobs):
                status = self.import_status(batch_id)
                if status.finished:
                    done[batch_id] = status
                    open_jobs.remove(batch_id)
            if open_jobs and (len(open_jobs) >= max_open_jobs or not pending):
                self._sleep(poll_interval)
        return [done[batch_id] for batch_id in order]

    # --- other lead-database objects -----------------------------------------------------------------------

    def _object_sync(
        self, path: str, records: Sequence[Mapping[str, Any]], action: str, dedupe_by: str, *, what: str, id_key: str
    ) -> list[RecordOutcome]:
        if action not in SYNC_ACTIONS[:3]:
            raise ValueError(f"unknown sync action {action!r}")
        extra = {"action": action, "dedupeBy": dedupe_by}
        return self._sync(path, records, extra, what=what, id_key=id_key)

    def _describe(self, path: str, *, what: str) -> ObjectDescription:
        answer = self._caller.call("GET", path, what=what)
        return ObjectDescription.from_result((answer.payload.get("result") or [{}])[0])

    def sync_companies(
        self, records: Sequence[Mapping[str, Any]], *, action: str = "createOrUpdate", dedupe_by: str = "dedupeFields"
    ) -> list[RecordOutcome]:
        """Upsert companies keyed by ``externalCompanyId``."""
        return self._object_sync(
            "/rest/v1/companies/sync.json", records, action, dedupe_by, what="sync companies", id_key="id"
        )

    def sync_opportunities(
        self, records: Sequence[Mapping[str, Any]], *, action: str = "createOrUpdate", dedupe_by: str = "dedupeFields"
    ) -> list[RecordOutcome]:
        """Upsert opportunities keyed by ``externalOpportunityId``; outcomes carry the ``marketoGUID``."""
        return self._object_sync(
            "/rest/v1/opportunities.json", records, action, dedupe_by, what="sync opportunities", id_key="marketoGUID"
        )

    def sync_opportunity_roles(
        self, records: Sequence[Mapping[str, Any]], *, action: str = "createOrUpdate", dedupe_by: str = "dedupeFields"
    ) -> list[RecordOutcome]:
        """Upsert roles keyed by (``externalOpportunityId``, ``leadId``, ``role``)."""
        return self._object_sync(
            "/rest/v1/opportunities/roles.json", records, action, dedupe_by, what="sync roles", id_key="marketoGUID"
        )

    def delete_opportunity_roles(
        self, records: Sequence[Mapping[str, Any]], *, delete_by: str = "dedupeFields"
    ) -> list[RecordOutcome]:
        """Delete roles by (``externalOpportunityId``, ``leadId``, ``role``); one Marketo doesn't have is skipped
        with 1013."""
        if delete_by not in ("dedupeFields", "idField"):
            raise ValueError(f"unknown deleteBy {delete_by!r}")
        return self._sync(
            "/rest/v1/opportunities/roles/delete.json",
            records,
            {"deleteBy": delete_by},
            what="delete roles",
            id_key="marketoGUID",
        )

    def sync_sales_persons(
        self, records: Sequence[Mapping[str, Any]], *, action: str = "createOrUpdate", dedupe_by: str = "dedupeFields"
    ) -> list[RecordOutcome]:
        """Upsert sales persons keyed by ``externalSalesPersonId``."""
        return self._object_sync(
            "/rest/v1/salespersons.json", records, action, dedupe_by, what="sync sales persons", id_key="id"
        )

    def sync_custom_objects(
        self,
        api_name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        action: str = "createOrUpdate",
        dedupe_by: str = "dedupeFields",
    ) -> list[RecordOutcome]:
        return self._object_sync(
            f"/rest/v1/customobjects/{api_name}.json",
            records,
            action,
            dedupe_by,
            what=f"sync {api_name}",
            id_key="marketoGUID",
        )

    def get_objects(
        self, path: str, filter_type: str, values: Sequence[str], *, fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Records of a lead-database object (``path``: ``/rest/v1/companies.json``, ``opportunities.json``,
        ``salespersons.json``, ``customobjects/{name}.json``) whose ``filter_type`` (one of its searchable fields)
        matches any of ``values``: one call per 300 values (paged), as :meth:`get_leads`."""
        found: list[dict[str, Any]] = []
        for _, chunk in chunks(list(values), MAX_BATCH):
            if any("," in value for value in chunk):
                raise SkipRecord(f"filter values for {filter_type} may not contain commas", code="filter-value")
            params: dict[str, str] = {"filterType": filter_type, "filterValues": ",".join(chunk)}
            if fields:
                params["fields"] = ",".join(fields)
            found.extend(self._paged_query(path, params, what=f"get {path.rsplit('/', 1)[-1]}"))
        return found

    def describe_companies(self) -> ObjectDescription:
        return self._describe("/rest/v1/companies/describe.json", what="describe companies")

    def describe_opportunities(self) -> ObjectDescription:
        return self._describe("/rest/v1/opportunities/describe.json", what="describe opportunities")

    def describe_opportunity_roles(self) -> ObjectDescription:
        return self._describe("/rest/v1/opportunities/roles/describe.json", what="describe roles")

    def describe_sales_persons(self) -> ObjectDescription:
        return self._describe("/rest/v1/salespersons/describe.json", what="describe sales persons")

    def describe_custom_object(self, api_name: str) -> ObjectDescription:
        return self._describe(f"/rest/v1/customobjects/{api_name}/describe.json", what=f"describe {api_name}")
