"""One table row over the Web API: create, retrieve, update, upsert, delete, and single property values.

Wire rules, from the Power Apps docs (``webapi/create-entity-web-api.md``, ``update-delete-entities-using-web-api.md``,
``perform-conditional-operations-using-web-api.md``, ``retrieve-entity-using-web-api.md``):

- ``POST`` answers 204 with ``OData-EntityId`` (and ``Location``); with ``Prefer: return=representation`` it
  answers 201 with the row (``$select`` applies) and ``Preference-Applied``, and no ``OData-EntityId``.
- ``PATCH`` is an upsert: without ``If-Match`` a missing row is created; ``If-Match: *`` only updates (404 when
  missing); ``If-Match: <etag>`` only updates that version (412 otherwise); ``If-None-Match: *`` only creates
  (412 "A record with matching key values already exists."). 204, or 200 with the row when representation is
  preferred.
- ``GET`` with ``If-None-Match: <etag>`` answers 304 when the row has not changed, unless annotations are asked
  for (their values may come from other rows); ``If-None-Match: null`` (the docs' header for every request) is no
  condition at all.
- ``PUT <row>/<property>`` with ``{"value": ...}`` and ``DELETE <row>/<property>`` set and clear one value;
  ``GET <row>/<property>`` reads it and ``/$value`` reads it raw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from local.simulators.dataverse import errors
from local.simulators.dataverse.present import present, select_list
from local.simulators.dataverse.rows import Caller, Organisation
from local.simulators.dataverse.schema import Table
from local.simulators.dataverse.wire import Prefer, json_response, no_content, read_body, service_root

Check = Callable[[Table, Mapping[str, Any]], None]


def _tags(header: str | None) -> set[str] | None:
    """An ``If-Match``/``If-None-Match`` value as ETags; ``None`` for absent (or the docs' ``null``)."""
    if header is None or header.strip().lower() == "null":
        return None
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def _written(
    org: Organisation,
    request: httpx.Request,
    table: Table,
    record_id: str,
    caller: Caller,
    prefer: Prefer,
    *,
    created: bool,
) -> httpx.Response:
    entity_url = f"{service_root(request)}{table.entity_set}({record_id})"
    if prefer.return_representation:
        row = org.row(table, record_id)
        assert row is not None
        select = select_list(table, request.url.params.get("$select"))
        body = {"@odata.context": f"{service_root(request)}$metadata#{table.entity_set}/$entity"}
        body |= present(org, table, row, select, caller, prefer.annotations)
        applied = "return=representation"
        if prefer.annotations:
            applied += f',odata.include-annotations="{prefer.annotations_raw}"'
        return json_response(201 if created else 200, body, {"Preference-Applied": applied})
    headers = {"OData-EntityId": entity_url}
    if created:
        headers["Location"] = entity_url
    return no_content(headers)


def create(
    org: Organisation, request: httpx.Request, table: Table, caller: Caller, prefer: Prefer, check: Check
) -> httpx.Response:
    body = read_body(request, table.entity_set)
    select_list(table, request.url.params.get("$select"))  # a bad $select fails before anything is written
    new_id = org.create(table, body, caller, check=check)
    return _written(org, request, table, new_id, caller, prefer, created=True)


def retrieve(
    org: Organisation, request: httpx.Request, table: Table, record_id: str, caller: Caller, prefer: Prefer
) -> httpx.Response:
    if "$expand" in request.url.params:
        raise errors.not_implemented("$expand on table rows")
    row = org.row(table, record_id)
    if row is None:
        raise errors.not_found(table.logical_name, record_id)
    select = select_list(table, request.url.params.get("$select"))
    unchanged = _tags(request.headers.get("if-none-match"))
    if unchanged and not prefer.annotations and ("*" in unchanged or org.etag(table, record_id) in unchanged):
        return no_content({"Content-Type": errors.JSON}, status=304)
    suffix = f"({','.join(select)})" if select else ""
    body = {"@odata.context": f"{service_root(request)}$metadata#{table.entity_set}{suffix}/$entity"}
    body |= present(org, table, row, select, caller, prefer.annotations)
    return json_response(200, body, prefer.applied_annotations())


def upsert(
    org: Organisation,
    request: httpx.Request,
    table: Table,
    record_id: str,
    caller: Caller,
    prefer: Prefer,
    check: Check,
) -> httpx.Response:
    body = read_body(request, table.entity_set)
    select_list(table, request.url.params.get("$select"))
    if_match = _tags(request.headers.get("if-match"))
    if_none_match = _tags(request.headers.get("if-none-match"))
    exists = org.row(table, record_id) is not None
    if if_none_match and "*" in if_none_match:
        if exists:
            raise errors.already_exists()
        org.create(table, body, caller, record_id=record_id, check=check)
        return _written(org, request, table, record_id, caller, prefer, created=True)
    if if_match is None and not exists:
        org.create(table, body, caller, record_id=record_id, check=check)
        return _written(org, request, table, record_id, caller, prefer, created=True)
    org.update(table, record_id, body, caller, ",".join(if_match) if if_match else None, check=check)
    return _written(org, request, table, record_id, caller, prefer, created=False)


def delete(org: Organisation, request: httpx.Request, table: Table, record_id: str, caller: Caller) -> httpx.Response:
    if_match = _tags(request.headers.get("if-match"))
    org.delete(table, record_id, caller, ",".join(if_match) if if_match else None)
    return no_content()


def property_value(
    org: Organisation,
    request: httpx.Request,
    table: Table,
    record_id: str,
    name: str,
    caller: Caller,
    check: Check,
) -> httpx.Response:
    """``<row>/<property>``: GET (``/$value`` for the raw value), PUT ``{"value": ...}``, DELETE (set null)."""
    raw = name.endswith("/$value")
    name = name.removesuffix("/$value")
    column = table.column_for(name) or table.columns.get(name)
    if column is None:
        raise errors.segment_not_found(name)
    if org.row(table, record_id) is None:
        raise errors.not_found(table.logical_name, record_id)
    method = request.method
    if method == "GET":
        row = org.row(table, record_id) or {}
        value = row.get(column.wire_name) if org.can(caller.user_id, table, column, 0) else None
        if value is None:
            return no_content()
        if raw:
            return httpx.Response(200, headers={"Content-Type": "text/plain", "OData-Version": "4.0"}, text=str(value))
        context = f"{service_root(request)}$metadata#{table.entity_set}({record_id})/{name}"
        return json_response(200, {"@odata.context": context, "value": value})
    if method == "PUT":
        body = read_body(request, table.entity_set)
        if "value" not in body:
            raise errors.payload_error(table.entity_set, "A value for the property 'value' was not found.")
        org.update(table, record_id, {column.name: body["value"]}, caller, None, check=check)
        return no_content()
    if method == "DELETE":
        org.update(table, record_id, {column.name: None}, caller, None, check=check)
        return no_content()
    raise errors.not_allowed(method, f"the property '{name}'")
