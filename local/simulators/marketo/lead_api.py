"""The person endpoints: leads, the lead schema, the activity feeds and the bulk lead import.

Each handler takes a parsed :class:`~local.simulators.marketo.wire.Call` (parameters already merged from the
query string and a form body, list parameters given comma-separated or repeated) and answers with Marketo's
envelope. A position-paged read carries ``nextPageToken`` only while more records remain and no ``moreResult``
(the leads page's "Get Leads by List Id" sample, whose structure it calls identical to Get Leads by Filter Type's;
marketorestpython stops when the token is absent); the activity feeds always answer with ``nextPageToken`` and
``moreResult`` (the activities page), and Get Lead Fields with ``moreResult`` (its sample).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from local.simulators.marketo import envelope
from local.simulators.marketo.bulk import ImportQueue
from local.simulators.marketo.envelope import ApiError
from local.simulators.marketo.leads import (
    API_SOURCE,
    CHANGE_DATA_VALUE,
    DELETE_LEAD,
    NEW_LEAD,
    LeadStore,
    decode_token,
    encode_token,
)
from local.simulators.marketo.wire import MULTIPART, Call, media_type

Handler = Callable[[Call], httpx.Response]
Route = tuple[str, str, Handler]  # method, path template, handler
MAX_BATCH = 300
ACTIVITY_TYPES = frozenset({NEW_LEAD, CHANGE_DATA_VALUE, DELETE_LEAD})


def records(call: Call, *, limit: int = MAX_BATCH) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The JSON body of a write (``{"input": [...], ...}``): 612/609 for the body, 701/1003 for ``input``."""
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


def paged(call: Call, rows: list[dict[str, Any]], token: str | None) -> httpx.Response:
    """A position-paged result: ``nextPageToken`` only while more records remain."""
    extra: dict[str, Any] = {"nextPageToken": token} if token else {}
    return envelope.ok(call.request_id, rows, **extra)


class LeadApi:
    def __init__(
        self, leads: LeadStore, imports: ImportQueue, *, clock: Callable[[], float], scan_limit: Callable[[], int]
    ) -> None:
        self.leads = leads
        self.imports = imports
        self._clock = clock
        self._scan_limit = scan_limit

    def routes(self) -> list[Route]:
        return [
            ("GET", "/rest/v1/leads.json", self.get_leads),
            ("POST", "/rest/v1/leads.json", self.sync_leads),
            ("GET", "/rest/v1/lead/{id}.json", self.get_lead),
            ("POST", "/rest/v1/leads/delete.json", self.delete_leads),
            # Not in today's reference, but older clients (marketorestpython's delete_lead) still send it.
            ("DELETE", "/rest/v1/leads.json", self.delete_leads),
            ("GET", "/rest/v1/leads/describe.json", self.describe),
            ("GET", "/rest/v1/leads/describe2.json", self.describe2),
            ("GET", "/rest/v1/leads/schema/fields.json", self.schema_fields),
            ("POST", "/rest/v1/leads/schema/fields.json", self.create_fields),
            ("GET", "/rest/v1/activities/pagingtoken.json", self.paging_token),
            ("GET", "/rest/v1/activities.json", self.activities),
            ("GET", "/rest/v1/activities/leadchanges.json", self.lead_changes),
            ("GET", "/rest/v1/activities/deletedleads.json", self.deleted_leads),
            ("POST", "/bulk/v1/leads.json", self.bulk_submit),
            ("GET", "/bulk/v1/leads/batch/{batchId}.json", self.bulk_status),
            ("GET", "/bulk/v1/leads/batch/{batchId}/failures.json", self.bulk_failures),
            ("GET", "/bulk/v1/leads/batch/{batchId}/warnings.json", self.bulk_warnings),
        ]

    # --- leads ---------------------------------------------------------------------------------------------

    def get_leads(self, call: Call) -> httpx.Response:
        filter_type = call.required("filterType")
        values = call.required_values("filterValues")
        fields = call.params.values("fields") or None
        batch = call.int_param("batchSize", MAX_BATCH, maximum=MAX_BATCH)
        rows, token = self.leads.query(filter_type, values, fields, batch, call.params.get("nextPageToken"))
        return paged(call, rows, token)

    def get_lead(self, call: Call) -> httpx.Response:
        rows, _ = self.leads.query("id", [call.groups["id"]], call.params.values("fields") or None, 1, None)
        return envelope.ok(call.request_id, rows)

    def sync_leads(self, call: Call) -> httpx.Response:
        body, items = records(call)
        results = self.leads.sync(
            str(body.get("action") or "createOrUpdate"),
            str(body.get("lookupField") or "email"),
            items,
            source=API_SOURCE,
            reason=API_SOURCE,
        )
        return envelope.ok(call.request_id, results)

    def delete_leads(self, call: Call) -> httpx.Response:
        """Ids in the JSON body's ``input``, or, with no body, in the ``id`` parameter (``id=1,2,3``)."""
        if not call.request.content and "id" in call.params:
            ids: list[Any] = call.params.values("id")
        else:
            ids = [item.get("id") for item in records(call)[1]]
        return envelope.ok(call.request_id, self.leads.delete(ids))

    def describe(self, call: Call) -> httpx.Response:
        return envelope.ok(call.request_id, self.leads.describe())

    def describe2(self, call: Call) -> httpx.Response:
        return envelope.ok(call.request_id, self.leads.describe2())

    def schema_fields(self, call: Call) -> httpx.Response:
        batch = call.int_param("batchSize", MAX_BATCH, maximum=MAX_BATCH)
        token = call.params.get("nextPageToken")
        offset = decode_token(token, "fields") if token else 0
        rows = self.leads.schema()
        page = rows[offset : offset + batch]
        more = offset + batch < len(rows)
        extra: dict[str, Any] = {"nextPageToken": encode_token("fields", offset + batch)} if more else {}
        return envelope.ok(call.request_id, page, **extra, moreResult=more)

    def create_fields(self, call: Call) -> httpx.Response:
        _, items = records(call, limit=100)
        return envelope.ok(call.request_id, self.leads.create_fields(items))

    # --- activities ----------------------------------------------------------------------------------------

    def paging_token(self, call: Call) -> httpx.Response:
        token = self.leads.paging_token(call.required("sinceDatetime"))
        return envelope.ok(call.request_id, None, nextPageToken=token)

    def _feed(self, call: Call, types: frozenset[int], fields: frozenset[str] | None) -> httpx.Response:
        raw_ids = call.params.values("leadIds")
        ids = frozenset(int(i) for i in raw_ids if i.isdigit()) if raw_ids else None
        items, token, more = self.leads.feed(
            call.required("nextPageToken"),
            types,
            fields=fields,
            lead_ids=ids,
            batch_size=call.int_param("batchSize", MAX_BATCH, maximum=MAX_BATCH),
            scan_limit=self._scan_limit(),
        )
        return envelope.ok(call.request_id, items, nextPageToken=token, moreResult=more)

    def activities(self, call: Call) -> httpx.Response:
        """Get Lead Activities for the types the simulator records (12 New Lead, 13 Change Data Value, 37)."""
        raw = call.required_values("activityTypeIds")
        if len(raw) > 10:
            raise ApiError("1003", "activityTypeIds cannot hold more than 10 ids")
        if not all(item.isdigit() for item in raw):
            raise ApiError("1003", "Invalid activityTypeIds")
        return self._feed(call, frozenset(int(item) for item in raw) & ACTIVITY_TYPES, None)

    def lead_changes(self, call: Call) -> httpx.Response:
        fields = frozenset(call.required_values("fields"))
        unknown = sorted(fields - set(self.leads.fields))
        if unknown:
            raise ApiError("1006", f"Field '{unknown[0]}' not found")
        return self._feed(call, frozenset({NEW_LEAD, CHANGE_DATA_VALUE}), fields)

    def deleted_leads(self, call: Call) -> httpx.Response:
        return self._feed(call, frozenset({DELETE_LEAD}), None)

    # --- bulk import ---------------------------------------------------------------------------------------

    def bulk_submit(self, call: Call) -> httpx.Response:
        """``format``, ``lookupField``: query string or form fields of the multipart body, as the page shows."""
        if media_type(call.request) != MULTIPART:
            raise ApiError("612", "Invalid Content Type: multipart/form-data expected")
        upload = call.files.get("file")
        if upload is None:
            raise ApiError("701", "file cannot be blank")
        file_format = call.required("format")
        lookup = call.params.get("lookupField") or "email"
        job = self.imports.submit(upload[1], file_format, lookup, self._clock())
        return envelope.ok(
            call.request_id, [{"batchId": job.batch_id, "importId": str(job.batch_id), "status": job.status}]
        )

    def bulk_status(self, call: Call) -> httpx.Response:
        job = self.imports.get(int(call.groups["batchId"]), self._clock())
        return envelope.ok(call.request_id, [job.view()])

    def _bulk_report(self, call: Call, which: str) -> httpx.Response:
        job = self.imports.get(int(call.groups["batchId"]), self._clock())
        return httpx.Response(200, text=job.report(which), headers={"content-type": envelope.CSV_CONTENT_TYPE})

    def bulk_failures(self, call: Call) -> httpx.Response:
        return self._bulk_report(call, "failures")

    def bulk_warnings(self, call: Call) -> httpx.Response:
        return self._bulk_report(call, "warnings")


def lead_exists(leads: Mapping[int, Any], lead_id: Any) -> bool:
    try:
        return int(lead_id) in leads
    except (TypeError, ValueError):
        return False
