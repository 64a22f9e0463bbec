"""Change tracking: ``Prefer: odata.track-changes`` and ``@odata.deltaLink`` / ``$deltatoken``.

As "Use change tracking to synchronize data with external systems" (Power Apps docs) describes it: the first
query returns every row (paged with ``@odata.nextLink``) and, on its last page, an ``@odata.deltaLink`` whose
``$deltatoken`` is ``<version>!<date>``; calling the delta link returns the rows created or changed since then
and, last, the deleted ones as ``{"@odata.context": ".../$deletedEntity", "id": ..., "reason": "deleted"}``.
Only ``$select`` may accompany it: ``$filter``, ``$orderby``, ``$expand`` and ``$top`` are refused. A table with
"Track changes" off refuses the preference. A delta token older than the organisation's ``ExpireChangeTrackingInDays``
(7 by default) is refused with ``0x80044352`` (ExpiredVersionStamp): the caller must read the table in full again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from local.simulators.dataverse import errors
from local.simulators.dataverse.present import present, select_list
from local.simulators.dataverse.query import QUERY_SAFE, context_url, decode_cursor, encode_cursor, link
from local.simulators.dataverse.rows import Caller, Organisation
from local.simulators.dataverse.schema import Table
from local.simulators.dataverse.wire import Prefer, json_response, service_root

REFUSED = ("$filter", "$orderby", "$expand", "$top")


def wants_changes(request: httpx.Request, prefer: Prefer) -> bool:
    return prefer.track_changes or "$deltatoken" in request.url.params


DELTA_STAMP_FORMAT = "%m/%d/%Y %H:%M:%S"  # the date half of a $deltatoken
EXPIRED_VERSION_STAMP = "0x80044352"


def delta_link(org: Organisation, base: str, table: Table, select: list[str] | None, version: int) -> str:
    stamp = org.now().strftime(DELTA_STAMP_FORMAT)
    query = ({"$select": ",".join(select)} if select else {}) | {"$deltatoken": f"{version}!{stamp}"}
    return f"{base}{table.entity_set}?{urlencode(query, safe=QUERY_SAFE)}"


def changes(org: Organisation, request: httpx.Request, table: Table, caller: Caller, prefer: Prefer) -> httpx.Response:
    params = request.url.params
    for option in REFUSED:
        if option in params:
            raise errors.ApiError(
                400, "0x80060888", f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
            )
    if not table.change_tracking:
        raise errors.ApiError(
            400, "0x80060888", f"Change tracking is not enabled for the entity '{table.logical_name}'."
        )
    base = service_root(request)
    select = select_list(table, params.get("$select"))
    cursor = decode_cursor(params.get("$skiptoken"))
    token = params.get("$deltatoken")
    full_read = token is None and "d" not in cursor
    if token is not None:
        try:
            version, _, stamp = token.partition("!")
            since = int(version)
            issued = datetime.strptime(stamp, DELTA_STAMP_FORMAT).replace(tzinfo=UTC) if stamp else None
        except ValueError:
            raise errors.ApiError(400, "0x80060888", "The delta token is not valid.") from None
        if issued is not None and org.now() - issued > timedelta(days=org.expire_change_tracking_days):
            raise errors.ApiError(  # ErrorCodes.ExpiredVersionStamp: the history is gone, read the table again
                400,
                EXPIRED_VERSION_STAMP,
                "Version stamp associated with the client has expired. Please perform a full sync.",
            )
    else:
        since = int(cursor.get("d", 0))
    snapshot = int(cursor.get("s", org.state.version))
    items: list[dict[str, Any]] = []
    rows = org.rows(table)
    if full_read:
        items = [present(org, table, r, select, caller, prefer.annotations) for r in rows.values()]
    else:
        changed: dict[str, str] = {}
        for version, record_id, kind in org.state.log.get(table.logical_name, []):
            if since < version <= snapshot:
                changed[record_id] = kind
        # new or updated rows first, deleted ones last, as Dataverse does
        for record_id, kind in changed.items():
            if kind != "delete" and record_id in rows:
                items.append(present(org, table, rows[record_id], select, caller, prefer.annotations))
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
    suffix = "" if full_read else "/$delta"
    body: dict[str, Any] = {"@odata.context": context_url(base, table, select, suffix), "value": page}
    if offset + prefer.max_page_size < len(items):
        following = {k: v for k, v in params.items() if k not in {"$skiptoken", "$deltatoken"}}
        following["$skiptoken"] = encode_cursor(offset + prefer.max_page_size, snapshot, None if full_read else since)
        body["@odata.nextLink"] = link(base, table, following)
    else:
        body["@odata.deltaLink"] = delta_link(org, base, table, select, snapshot)
    applied = "odata.track-changes"
    if prefer.annotations:
        applied += f',odata.include-annotations="{prefer.annotations_raw}"'
    return json_response(200, body, {"Preference-Applied": applied})
