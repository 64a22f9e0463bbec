"""The Sync Errors view: filter, list and export the errors, and an admin's actions on them (retry, ignore,
resolve by hand).

Each function returns the rows it found or changed (the triggers render them), or refuses: :class:`InvalidRequest`
for a filter value that cannot be one (naming the parameter), :class:`NotFound` for an unknown error,
:class:`NotPossible` for a retry of an error that names no record to sync again (an unreadable message, a
vanished column: fix the cause, then resolve it by hand). A retry puts the record back on the queue and marks
its error retrying; the reconcile then resolves it (the record synced cleanly) or opens it again, counted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.core.mapping import SyncMapping
from shared.core.pending import PERSON
from shared.core.record_links import RecordLinks
from shared.errors import InvalidRequest, NotFound, NotPossible, RetryLater, SyncError
from shared.pipeline.notification import Notification, Source
from shared.pipeline.ports import ChangesQueue
from shared.store.base import StateStore
from shared.store.model import (
    RESOLVED_BY_ADMIN,
    TO_DYNAMICS,
    TO_MARKETO,
    ErrorQuery,
    ErrorStatus,
    SyncErrorRecord,
)

COLUMNS = (
    "id",
    "entity",
    "record_id",
    "marketo_id",
    "label",
    "operation",
    "direction",
    "field",
    "code",
    "message",
    "status",
    "count",
    "first_seen",
    "last_seen",
    "attempts",
    "resolved_at",
    "resolved_by",
    "dynamics_url",
    "marketo_url",
)
"""A row's keys, and the CSV export's columns, in this order."""
DIRECTIONS = (TO_MARKETO, TO_DYNAMICS, "-")
MAX_LISTED = 100_000  # as many as the CSV export holds
DEFAULT_LIMIT = 500
MAX_TEXT = 200  # q, code and entity: longer is no filter anyone means
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- filters ---------------------------------------------------------------------------------------------------


def error_query(params: Mapping[str, str], *, default_limit: int = DEFAULT_LIMIT) -> ErrorQuery:
    """The filter a request's query parameters ask for; every one optional, empty ones ignored."""
    status = _status(params.get("status") or None)
    direction = params.get("direction") or None
    if direction is not None and direction not in DIRECTIONS:
        raise InvalidRequest(f"direction must be one of {', '.join(DIRECTIONS)}", code="bad-query", field="direction")
    since, until = _time(params, "since"), _time(params, "until")
    if since and until and since > until:
        raise InvalidRequest("since must not be later than until", code="bad-query", field="since")
    return ErrorQuery(
        entity=_text(params, "entity"),
        direction=direction,
        code=_text(params, "error_code"),  # not "code": that is the function key in Azure
        status=status,
        search=_text(params, "q"),
        since=since,
        until=until,
        limit=_limit(params.get("limit"), default_limit),
    )


def _status(text: str | None) -> ErrorStatus | None:
    if text is None:
        return None
    try:
        return ErrorStatus(text)
    except ValueError:
        allowed = ", ".join(s.value for s in ErrorStatus)
        raise InvalidRequest(f"status must be one of {allowed}", code="bad-query", field="status") from None


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    text = params.get(name) or None
    if text is None:
        return None
    text = text.strip().replace("Z", "+00:00")
    for candidate in (text, text.replace(" ", "+")):  # an unescaped "+" of the offset arrives as a space
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise InvalidRequest(
        f"{name} must be an ISO-8601 time, e.g. 2026-12-01T12:00:00+00:00", code="bad-query", field=name
    )


def _text(params: Mapping[str, str], name: str) -> str | None:
    text = (params.get(name) or "").strip()
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"{name} is longer than {MAX_TEXT} characters", code="bad-query", field=name)
    return text or None


def _limit(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_LISTED))  # not "²", not 5,000 digits
    if not digits or not 1 <= int(text) <= MAX_LISTED:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LISTED}", code="bad-query", field="limit")
    return int(text)


# --- rows --------------------------------------------------------------------------------------------------------


def _shown(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat() if moment else None


def error_row(error: SyncErrorRecord, links: RecordLinks) -> dict[str, Any]:
    """What people read of an error: its record's label and links, times to the second."""
    row = error.as_row()
    marketo_id = error.marketo_id or (error.record_id if error.entity == PERSON and error.record_id else None)
    row.update(
        marketo_id=marketo_id,
        first_seen=_shown(error.since),
        last_seen=_shown(error.last_seen),
        resolved_at=_shown(error.resolved_at),
        dynamics_url=links.dynamics(error.entity, error.record_id),
        marketo_url=links.marketo(error.entity, marketo_id),
    )
    return {column: row[column] for column in COLUMNS}


def list_errors(store: StateStore, query: ErrorQuery, links: RecordLinks) -> dict[str, Any]:
    errors = store.errors.find(query)
    return {"count": len(errors), "errors": [error_row(e, links) for e in errors]}


def export_errors(store: StateStore, query: ErrorQuery, links: RecordLinks) -> str:
    """The filtered errors as CSV, for a spreadsheet (a cell that would start a formula is quoted with ')."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for error in store.errors.find(query):
        row = error_row(error, links)
        for column in ("label", "message", "record_id", "field", "code"):
            text = row[column]
            if isinstance(text, str) and text.startswith(_FORMULA_STARTS) and text != "-":
                row[column] = "'" + text
        writer.writerow(row)
    return out.getvalue()


def get_error(store: StateStore, error_id: str, links: RecordLinks) -> dict[str, Any]:
    return error_row(_found(store, error_id), links)


def _found(store: StateStore, error_id: str) -> SyncErrorRecord:
    error = store.errors.get(error_id) if _plausible(error_id) else None
    if error is None:
        raise NotFound("no such sync error", code="not-found")
    return error


def _plausible(error_id: str) -> bool:
    return 0 < len(error_id) <= 64 and error_id.isascii() and error_id.isalnum()


# --- an admin's actions ------------------------------------------------------------------------------------------


def ignore_error(store: StateStore, error_id: str, links: RecordLinks, *, at: datetime) -> dict[str, Any]:
    """Live with it: it stays ignored when seen again (its count goes on) until resolved or retried."""
    return _move(store, error_id, ErrorStatus.IGNORED, links, at)


def resolve_error(store: StateStore, error_id: str, links: RecordLinks, *, at: datetime) -> dict[str, Any]:
    """Closed by hand (``resolved_by`` "admin"); seen again, it opens again."""
    return _move(store, error_id, ErrorStatus.RESOLVED, links, at)


def _move(store: StateStore, error_id: str, status: ErrorStatus, links: RecordLinks, at: datetime) -> dict[str, Any]:
    moved = store.errors.move(error_id, status, by=RESOLVED_BY_ADMIN, at=at) if _plausible(error_id) else None
    if moved is None:
        raise NotFound("no such sync error", code="not-found")
    return error_row(moved, links)


@dataclass(frozen=True, slots=True)
class RetryQueued:
    """The records put back on the queue, and the sync errors now retrying."""

    records: int
    errors: list[str]


def retry_error(
    store: StateStore, mapping: SyncMapping, queue: ChangesQueue, error_id: str, links: RecordLinks, *, at: datetime
) -> dict[str, Any]:
    """Put the failed record back on the queue (it is re-read and decided afresh); the error is retrying."""
    error = _found(store, error_id)
    if _notification(error, mapping, at) is None:
        raise NotPossible(
            "this error names no record to sync again: fix its cause, then resolve it by hand", code="not-retryable"
        )
    (retried,) = _retry(store, mapping, queue, [error], at).values()
    return error_row(retried, links)


def retry_errors(
    store: StateStore, mapping: SyncMapping, queue: ChangesQueue, query: ErrorQuery, *, at: datetime
) -> RetryQueued:
    """Retry every open error the filter selects (whatever status it names) that names a record to sync again."""
    open_ones = store.errors.find(ErrorQuery(**{**_fields(query), "status": ErrorStatus.OPEN}))
    retried = _retry(store, mapping, queue, [e for e in open_ones if _notification(e, mapping, at)], at)
    records = {(e.entity, e.record_id.lower()) for e in retried.values()}
    return RetryQueued(len(records), list(retried))


def _fields(query: ErrorQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in ErrorQuery.__dataclass_fields__}


def _retry(
    store: StateStore, mapping: SyncMapping, queue: ChangesQueue, errors: Iterable[SyncErrorRecord], at: datetime
) -> dict[str, SyncErrorRecord]:
    """Mark each retrying first (so a quick reconcile cannot be overtaken by the mark), then queue the records;
    when the queue refuses, the errors are put back as they were."""
    moved: dict[str, tuple[SyncErrorRecord, SyncErrorRecord]] = {}
    notes: dict[tuple[str, str], Notification] = {}
    for error in errors:
        note = _notification(error, mapping, at)
        after = store.errors.move(error.id, ErrorStatus.RETRYING, by=RESOLVED_BY_ADMIN, at=at) if note else None
        if note is None or after is None:
            continue
        moved[error.id] = (error, after)
        notes.setdefault((error.entity, error.record_id.lower()), note)
    try:
        queue.send(notes.values())
    except SyncError as exc:
        for before, after in moved.values():
            store.errors.put_back(before, unless_changed_from=after)
        raise RetryLater(f"could not queue the retry: {exc}", code="queue-unavailable") from exc
    return {eid: after for eid, (_, after) in moved.items()}


def _notification(error: SyncErrorRecord, mapping: SyncMapping, at: datetime) -> Notification | None:
    """The notification that syncs the error's record again; None when it names none."""
    key = f"retry:{error.id}:{at.isoformat()}"
    if error.entity in mapping.by_entity and error.record_id:
        return Notification(source=Source.ADMIN_RETRY, entity=error.entity, dynamics_id=error.record_id, dedupe_key=key)
    if error.entity == PERSON and error.record_id:  # a Marketo person's parked change (pending-gave-up)
        return Notification(source=Source.ADMIN_RETRY, marketo_id=error.record_id, dedupe_key=key)
    return None
