"""Dataverse HTTP outcomes mapped onto the product's error tree, in one place.

Decide, then act: :func:`classify` turns a response into a :class:`Fault` value (printable, assertable); the
client's retry loop decides whether to wait and retry; :meth:`Fault.error` builds the exception to raise.

    2xx                                     -> no fault
    429 (0x80072322 / 0x80072321 / 0x80072326) -> Throttled, honouring Retry-After
    408, 5xx, transport timeouts            -> RetryLater (retried with backoff inside the time budget)
    412 (0x80060882)                        -> Conflict: the ETag moved; re-read and decide again
    404                                     -> SkipRecord: the record is gone
    400 naming a column the table lacks     -> MissingColumn(table, column): that one column is gone
    400 0x80044352 (ExpiredVersionStamp)    -> SkipRecord with that code: a delta token too old, read in full
    400, 413, other 4xx                     -> SkipRecord: this record's data cannot be written as it is
    401, 403                                -> StopSync: token, app user or security role needs a human

A missing column is recognised here, from the message, because this is the one place that reads Dataverse's
answer: Dataverse gives no structured field for it, and its code is not specific (``0x80060888`` is every OData
query error; the documentation's own example shows ``0x0``). Two shapes name the column and its table:

    $select, $filter, $orderby:  Could not find a property named 'x' on type 'Microsoft.Dynamics.CRM.lead'.
    a create's or update's body: (0x80048d19 Error identified in Payload ... InnerException : ...)
                                 The property 'x' does not exist on type 'Microsoft.Dynamics.CRM.lead'. ...

A lookup is selected as ``_x_value``; the column it names is ``x``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import httpx

from shared.dataverse.records import lookup_column
from shared.errors import Conflict, MissingColumn, RetryLater, SkipRecord, StopSync, SyncError, Throttled

EXPIRED_VERSION_STAMP = "0x80044352"
"""A change-tracking delta token older than the organisation keeps history for (ExpireChangeTrackingInDays, 7 by
default): "Version stamp associated with the client has expired. Please perform a full sync." A SkipRecord with
this code; the catch-up reads the table in full again."""

SERVICE_PROTECTION_CODES = {
    "0x80072322": "number of requests",
    "0x80072321": "combined execution time",
    "0x80072326": "concurrent requests",
}


class Action(StrEnum):
    THROTTLED = "throttled"
    RETRY = "retry"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found"
    MISSING_COLUMN = "missing_column"
    SKIP = "skip"
    STOP = "stop"

    @property
    def retryable(self) -> bool:
        return self in {Action.THROTTLED, Action.RETRY}


_MISSING_PROPERTY = (
    re.compile(r"Could not find a property named '(?P<name>[^']+)' on type 'Microsoft\.Dynamics\.CRM\.(?P<table>\w+)'"),
    re.compile(r"The property '(?P<name>[^']+)' does not exist on type 'Microsoft\.Dynamics\.CRM\.(?P<table>\w+)'"),
)


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A column of a table, by logical names."""

    table: str
    column: str


def missing_column(message: str) -> ColumnRef | None:
    """The column a 400's message says the table does not have (named as the request named it, a lookup's
    ``_x_value`` as ``x``), or None when the message says something else."""
    for shape in _MISSING_PROPERTY:
        found = shape.search(message)
        if found is not None:
            name = found.group("name")
            return ColumnRef(found.group("table"), lookup_column(name) or name)
    return None


@dataclass(frozen=True, slots=True)
class Fault:
    action: Action
    reason: str
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None
    missing: ColumnRef | None = None  # with MISSING_COLUMN: the column Dataverse does not have

    def error(self) -> SyncError:
        message = f"Dataverse {self.status or 'transport'}: {self.reason}"
        match self.action:
            case Action.THROTTLED:
                return Throttled(message, code=self.code, retry_after=self.retry_after)
            case Action.RETRY:
                return RetryLater(message, code=self.code, retry_after=self.retry_after)
            case Action.CONFLICT:
                return Conflict(message, code=self.code)
            case Action.MISSING_COLUMN if self.missing is not None:
                return MissingColumn(message, table=self.missing.table, column=self.missing.column, code=self.code)
            case Action.NOT_FOUND | Action.SKIP | Action.MISSING_COLUMN:
                return SkipRecord(message, code=self.code)
            case Action.STOP:
                return StopSync(message, code=self.code)


def error_body(response: httpx.Response) -> tuple[str | None, str]:
    """``{"error": {"code": "0x...", "message": "..."}}`` -> (code, message); tolerant of other bodies."""
    try:
        payload = response.json()
    except ValueError:
        return None, response.reason_phrase or ""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        code = error.get("code")
        return (str(code) if code is not None else None), str(error.get("message") or "")[:500]
    return None, response.reason_phrase or ""


def retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP-date: Dataverse sends seconds, so treat anything else as "unspecified"


def classify(response: httpx.Response) -> Fault | None:
    status = response.status_code
    if status < 400:
        return None
    code, message = error_body(response)
    if status == 429:
        facet = SERVICE_PROTECTION_CODES.get((code or "").lower(), "service protection limit")
        return Fault(Action.THROTTLED, f"throttled ({facet}): {message}", status, code, retry_after(response))
    if status == 408 or status >= 500:
        return Fault(Action.RETRY, message or "server error", status, code, retry_after(response))
    if status == 412:
        return Fault(Action.CONFLICT, message or "record changed (ETag mismatch)", status, code)
    if status == 404:
        return Fault(Action.NOT_FOUND, message or "not found", status, code)
    if status in {401, 403}:
        return Fault(Action.STOP, message or ("unauthorized" if status == 401 else "forbidden"), status, code)
    missing = missing_column(message) if status == 400 else None
    if missing is not None:
        return Fault(Action.MISSING_COLUMN, message, status, code, missing=missing)
    return Fault(Action.SKIP, message or "request rejected", status, code)


def transport_fault(exc: httpx.TransportError) -> Fault:
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return Fault(Action.RETRY, f"{kind} ({type(exc).__name__})", None, "transport")
