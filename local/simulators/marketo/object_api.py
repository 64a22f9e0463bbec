"""Endpoints of the other lead-database objects: companies, opportunities and their roles, sales persons and
custom objects (``/rest/v1/customobjects/{apiName}...``).

They share one pattern (companies, opportunities, sales-persons and custom-objects pages): ``describe``; sync
(``action``, ``dedupeBy``, ``input``); delete (``deleteBy``, ``input``); and a query by ``filterType`` with
either ``filterValues`` (query string, or form body with ``_method=GET``) or, for compound keys, a JSON body
``{"filterType": "dedupeFields", "fields": [...], "input": [{...}, ...]}`` posted with ``_method=GET``. Queries
take ``fields``, ``batchSize`` and ``nextPageToken`` and page like every position-based read.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from local.simulators.marketo import envelope
from local.simulators.marketo.envelope import ApiError
from local.simulators.marketo.lead_api import MAX_BATCH, Handler, Route, paged, records
from local.simulators.marketo.leads import decode_token, encode_token
from local.simulators.marketo.objects import ObjectType
from local.simulators.marketo.wire import Call, as_list, bounded_int

# path prefix -> key in ``objects`` (None: the custom object named by the path)
_STANDARD = {
    "/rest/v1/companies": "companies",
    "/rest/v1/opportunities": "opportunities",
    "/rest/v1/opportunities/roles": "roles",
    "/rest/v1/salespersons": "salespersons",
}
_CUSTOM = "/rest/v1/customobjects/{apiName}"


class ObjectApi:
    def __init__(
        self, objects: dict[str, ObjectType], custom_objects: dict[str, ObjectType], *, clock: Callable[[], float]
    ) -> None:
        self.objects = objects
        self.custom_objects = custom_objects
        self._clock = clock

    def routes(self) -> list[Route]:
        table: list[Route] = [
            ("POST", "/rest/v1/companies/sync.json", self._sync("companies")),  # the page's path
            ("GET", "/rest/v1/customobjects.json", self.list_custom_objects),
        ]
        for prefix, name in [*_STANDARD.items(), (_CUSTOM, None)]:
            table += [
                ("GET", f"{prefix}/describe.json", self._describe(name)),
                ("POST", f"{prefix}.json", self._sync(name)),
                ("GET", f"{prefix}.json", self._query(name)),
                ("POST", f"{prefix}/delete.json", self._delete(name)),
            ]
        return table

    def _object(self, name: str | None, call: Call) -> ObjectType:
        if name is not None:
            return self.objects[name]
        api_name = call.groups.get("apiName", "")
        found = self.custom_objects.get(api_name)
        if found is None:
            raise ApiError("610", f"Custom object '{api_name}' not found")
        return found

    def list_custom_objects(self, call: Call) -> httpx.Response:
        names = set(call.params.values("names"))
        rows = [kind.summary() for api_name, kind in self.custom_objects.items() if not names or api_name in names]
        return envelope.ok(call.request_id, rows)

    def _describe(self, name: str | None) -> Handler:
        def handle(call: Call) -> httpx.Response:
            return envelope.ok(call.request_id, [self._object(name, call).describe()])

        return handle

    def _sync(self, name: str | None) -> Handler:
        def handle(call: Call) -> httpx.Response:
            store = self._object(name, call)
            body, items = records(call)
            action = str(body.get("action") or "createOrUpdate")
            dedupe_by = str(body.get("dedupeBy") or "dedupeFields")
            return envelope.ok(call.request_id, store.sync(action, dedupe_by, items, self._clock()))

        return handle

    def _delete(self, name: str | None) -> Handler:
        def handle(call: Call) -> httpx.Response:
            store = self._object(name, call)
            body, items = records(call)
            return envelope.ok(call.request_id, store.delete(str(body.get("deleteBy") or "dedupeFields"), items))

        return handle

    def _query(self, name: str | None) -> Handler:
        def handle(call: Call) -> httpx.Response:
            store = self._object(name, call)
            body = call.json_query()
            if body is None:  # filterValues in the query string or a form body
                keys = store.key_fields(call.required("filterType"))
                if len(keys) != 1:
                    raise ApiError("1003", "Compound keys are queried with a JSON body (POST with _method=GET)")
                criteria = [{keys[0]: value} for value in call.required_values("filterValues")]
                fields = call.params.values("fields")
                batch_raw, token = call.params.get("batchSize"), call.params.get("nextPageToken")
            else:  # the JSON body: input objects instead of filterValues
                filter_type = str(body.get("filterType") or "")
                if not filter_type:
                    raise ApiError("701", "filterType cannot be blank")
                keys = store.key_fields(filter_type)
                items = body.get("input")
                if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
                    raise ApiError("701", "input cannot be blank")
                criteria, fields = items, as_list(body.get("fields"))
                batch_raw, token = body.get("batchSize"), body.get("nextPageToken")
            if len(criteria) > MAX_BATCH:
                raise ApiError("1003", f"Too many filter values, maximum is {MAX_BATCH}")
            rows = store.search(keys, criteria, fields or None)
            batch = bounded_int(batch_raw, "batchSize", MAX_BATCH, maximum=MAX_BATCH)
            offset = decode_token(str(token), "objects") if token else 0
            more = offset + batch < len(rows)
            return paged(call, rows[offset : offset + batch], encode_token("objects", offset + batch) if more else None)

        return handle
