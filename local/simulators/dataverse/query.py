"""Collection queries: ``$select``, ``$filter``, ``$orderby``, ``$top``, ``$count`` and server-driven paging.

Paging follows "Page results" (Power Apps docs, ``webapi/query/page-results.md``): ``Prefer: odata.maxpagesize``
(default and maximum 5000) sets the page size, the response carries ``@odata.nextLink`` with the original query
plus a ``$skiptoken`` (opaque to clients), and ``$skip`` is not supported. A query with ``$top`` returns at most
that many rows and no next link past them. Change tracking (``Prefer: odata.track-changes``) is in ``delta.py``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from local.simulators.dataverse import errors
from local.simulators.dataverse.key_order import sql_key
from local.simulators.dataverse.odata import FilterError, parse_filter, parse_orderby, sort_rows
from local.simulators.dataverse.present import present, select_list
from local.simulators.dataverse.rows import Caller, Organisation
from local.simulators.dataverse.schema import Table
from local.simulators.dataverse.wire import Prefer, json_response, service_root

QUERY_SAFE = "$,()'"  # Dataverse writes $skiptoken / $select literally in links


def decode_cursor(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
        cursor = json.loads(raw)
    except ValueError:
        raise errors.ApiError(400, "0x80060888", "The $skiptoken is not valid.") from None
    return cursor if isinstance(cursor, dict) else {}


def encode_cursor(offset: int, snapshot: int, since: int | None = None) -> str:
    return _encode({"o": offset, "s": snapshot} | ({"d": since} if since is not None else {}))


def encode_key_cursor(last_id: str, snapshot: int) -> str:
    """A page's ``$skiptoken`` in primary-key order: the last id of the page (what Dataverse's paging cookie holds)."""
    return _encode({"k": last_id, "s": snapshot})


def _encode(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")


def link(base: str, table: Table, params: Mapping[str, str]) -> str:
    return f"{base}{table.entity_set}?{urlencode(dict(params), safe=QUERY_SAFE)}"


def context_url(base: str, table: Table, select: list[str] | None, suffix: str = "") -> str:
    return f"{base}$metadata#{table.entity_set}" + (f"({','.join(select)})" if select else "") + suffix


def check_names(table: Table, names: set[str] | list[str]) -> None:
    for name in names:
        if table.column_for(name) is None:
            raise errors.unknown_property(table.logical_name, name)


_BY_IDS = re.compile(r"Microsoft\.Dynamics\.CRM\.In\(PropertyName='(\w+)',PropertyValues=\[((?:'[^']*',?)*)\]\)")


def _candidates(org: Organisation, table: Table, text: str | None) -> Iterable[Mapping[str, Any]]:
    """The rows a filter may match: for ``In()`` on the table's id alone (a read of records by id), just those
    rows, looked up (the predicate still decides); otherwise every row. A read by id costs the same at any size."""
    found = _BY_IDS.fullmatch(text.strip()) if text else None
    rows = org.rows(table)
    if found is None or found.group(1) != table.primary_id:
        return rows.values()
    wanted = dict.fromkeys(v.lower() for v in re.findall(r"'([^']*)'", found.group(2)))
    return [rows[i] for i in wanted if i in rows]


def query(org: Organisation, request: httpx.Request, table: Table, caller: Caller, prefer: Prefer) -> httpx.Response:
    params = request.url.params
    base = service_root(request)
    select = select_list(table, params.get("$select"))
    if "$expand" in params:
        raise errors.not_implemented("$expand on table rows")
    if "$skip" in params:
        raise errors.ApiError(400, "0x80060888", "The query parameter $skip is not supported")
    try:
        predicate, names = parse_filter(params.get("$filter"))
        order = parse_orderby(params.get("$orderby"))
    except FilterError as exc:
        raise errors.query_syntax(str(exc)) from None
    check_names(table, names)
    check_names(table, [name for name, _ in order])
    by_key = not order or order == [(table.primary_id, False)]
    by_ids = _BY_IDS.fullmatch((params.get("$filter") or "").strip()) is not None
    if by_key and not by_ids and "$top" not in params and params.get("$count", "").lower() != "true":
        return _keyed_page(org, table, params, predicate, base, select, caller, prefer)
    rows: list[Mapping[str, Any]] = [r for r in _candidates(org, table, params.get("$filter")) if predicate(r)]
    if by_key:
        rows.sort(key=lambda row: sql_key(str(row[table.primary_id])))
    else:
        rows = sort_rows(rows, order)
    if "$top" in params:
        try:
            top = int(params["$top"])
        except ValueError:
            raise errors.query_syntax(f"$top must be an integer, not {params['$top']!r}") from None
        rows = rows[: max(0, top)]
    cursor = decode_cursor(params.get("$skiptoken"))
    offset = int(cursor.get("o", 0))
    snapshot = int(cursor.get("s", org.state.version))
    page = rows[offset : offset + prefer.max_page_size]
    body: dict[str, Any] = {"@odata.context": context_url(base, table, select)}
    if params.get("$count", "").lower() == "true":
        body["@odata.count"] = min(len(rows), 5000)
    body["value"] = [present(org, table, r, select, caller, prefer.annotations) for r in page]
    if offset + prefer.max_page_size < len(rows):
        following = {k: v for k, v in params.items() if k != "$skiptoken"}
        following["$skiptoken"] = encode_cursor(offset + prefer.max_page_size, snapshot)
        body["@odata.nextLink"] = link(base, table, following)
    return json_response(200, body, prefer.applied_annotations())


def _keyed_page(
    org: Organisation,
    table: Table,
    params: Mapping[str, str],
    predicate: Callable[[Mapping[str, Any]], bool],
    base: str,
    select: list[str] | None,
    caller: Caller,
    prefer: Prefer,
) -> httpx.Response:
    """A page in primary-key order, as Dataverse pages without ``$orderby`` (or with it on the primary key): the
    rows after the last id of the previous page (its paging cookie holds that id; so does this ``$skiptoken``),
    found by a seek in the table's key order, so a page costs the same at any table size and a row created
    meanwhile is met in its place, never twice."""
    cursor = decode_cursor(params.get("$skiptoken"))
    after = cursor.get("k")
    order = org.ordered(table)
    rows = org.rows(table)
    page: list[Mapping[str, Any]] = []
    at = order.after(str(after) if after is not None else None)
    while at < len(order.ids) and len(page) <= prefer.max_page_size:
        row = rows.get(order.ids[at])
        at += 1
        if row is not None and predicate(row):
            page.append(row)
    body: dict[str, Any] = {"@odata.context": context_url(base, table, select)}
    shown = page[: prefer.max_page_size]
    body["value"] = [present(org, table, r, select, caller, prefer.annotations) for r in shown]
    if len(page) > prefer.max_page_size:
        following = {k: v for k, v in params.items() if k != "$skiptoken"}
        last = str(shown[-1][table.primary_id])
        following["$skiptoken"] = encode_key_cursor(last, int(cursor.get("s", org.state.version)))
        body["@odata.nextLink"] = link(base, table, following)
    return json_response(200, body, prefer.applied_annotations())
