"""Dataverse HTTP outcomes mapped onto the product's error tree, in one place.

Decide, then act: :func:`classify` turns a response into a :class:`Fault` value (printable, assertable); the
client's retry loop decides whether to wait and retry; :meth:`Fault.error` builds the exception to raise.

    2xx                                     -> no fault
    429 (0x80072322 / 0x80072321 / 0x80072326) -> Throttled, honouring Retry-After
    408, 5xx, transport timeouts            -> RetryLater (retried with backoff inside the time budget)
    412 (0x80060882)                        -> Conflict: the ETag moved; re-read and decide again
    404                                     -> SkipRecord: the record is gone
    400, 413, other 4xx                     -> SkipRecord: this record's data cannot be written as it is
    401, 403                                -> StopSync: token, app user or security role needs a human
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import httpx

from shared.errors import Conflict, RetryLater, SkipRecord, StopSync, SyncError, Throttled

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
    SKIP = "skip"
    STOP = "stop"

    @property
    def retryable(self) -> bool:
        return self in {Action.THROTTLED, Action.RETRY}


@dataclass(frozen=True, slots=True)
class Fault:
    action: Action
    reason: str
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None

    def error(self) -> SyncError:
        message = f"Dataverse {self.status or 'transport'}: {self.reason}"
        match self.action:
            case Action.THROTTLED:
                return Throttled(message, code=self.code, retry_after=self.retry_after)
            case Action.RETRY:
                return RetryLater(message, code=self.code, retry_after=self.retry_after)
            case Action.CONFLICT:
                return Conflict(message, code=self.code)
            case Action.NOT_FOUND | Action.SKIP:
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
    return Fault(Action.SKIP, message or "request rejected", status, code)


def transport_fault(exc: httpx.TransportError) -> Fault:
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return Fault(Action.RETRY, f"{kind} ({type(exc).__name__})", None, "transport")
