"""The one place Marketo answers become decisions: decide (``classify``) then act (``to_error``).

Marketo reports most failures as HTTP 200 with ``success: false`` and ``errors[].code``; HTTP statuses only
matter for 413/414 and gateway errors. Record-level skips (``result[].status == "skipped"``) are not faults:
they come back as :class:`~shared.marketo.models.RecordOutcome` values.

A request naming a field the object does not have is refused with 1006 "Field 'x' not found": a read's
``fields`` refuse the whole request, a write's input skips each record that carries the field. The field is taken
from that message here, the one place that reads Marketo's answer (:func:`missing_field`): a refused request
raises :class:`~shared.errors.MissingField`, a skipped record's reason names it
(:attr:`~shared.marketo.models.Reason.missing_field`); a 1006 whose message names no field stays a plain skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from shared.errors import MissingField, QuotaExhausted, RetryLater, SkipRecord, StopSync, SyncError, Throttled

MARKETO_TIMEZONE = ZoneInfo("America/Chicago")

RETRY_CODES = frozenset({"502", "604", "606", "608", "611", "615", "713", "1016"})
THROTTLE_CODES = frozenset({"606", "615"})
REAUTH_CODES = frozenset({"601", "602"})
QUOTA_CODES = frozenset({"607"})
# Nothing will work until someone fixes configuration or code: permissions, wrong URL, malformed calls.
STOP_CODES = frozenset({"603", "605", "609", "610", "612", "613", "614", "616", "703"})
FIELD_NOT_FOUND = "1006"
_FIELD_NOT_FOUND = re.compile(r"Field '(?P<field>[^']+)' not found")


class Action(StrEnum):
    OK = "ok"
    RETRY = "retry"
    THROTTLED = "throttled"
    REAUTH = "reauth"
    QUOTA = "quota"
    MISSING_FIELD = "missing_field"
    SKIP = "skip"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision about one response: printable, loggable, assertable."""

    action: Action
    code: str | None = None
    message: str = ""
    http_status: int | None = None
    payload: dict[str, Any] | None = None
    field: str | None = None  # with MISSING_FIELD: the field Marketo does not have

    @property
    def ok(self) -> bool:
        return self.action is Action.OK

    @property
    def retryable(self) -> bool:
        return self.action in (Action.RETRY, Action.THROTTLED)


def classify(response: httpx.Response, *, expect_json: bool = True) -> Verdict:
    status = response.status_code
    if status in (413, 414):
        what = "body over 1 MB (10 MB for imports)" if status == 413 else "URI over 8 KB"
        return Verdict(Action.SKIP, str(status), f"request too large: {what}", status)
    if status == 429:
        return Verdict(Action.THROTTLED, "429", "HTTP 429", status)
    if status >= 500:
        return Verdict(Action.RETRY, str(status), f"HTTP {status} from Marketo", status)
    if status in (401, 403):
        return Verdict(Action.STOP, str(status), f"HTTP {status}: not allowed", status)
    if status >= 400:
        return Verdict(Action.STOP, str(status), f"HTTP {status}: request rejected", status)
    if not expect_json:
        return Verdict(Action.OK, http_status=status)
    try:
        payload = response.json()
    except ValueError:
        return Verdict(Action.RETRY, "invalid-json", "response is not JSON", status)
    if not isinstance(payload, dict):
        return Verdict(Action.RETRY, "invalid-json", "response is not a JSON object", status)
    if payload.get("success", True) is not False:
        return Verdict(Action.OK, http_status=status, payload=payload)
    return classify_error(payload, status)


def classify_error(payload: dict[str, Any], http_status: int | None = None) -> Verdict:
    errors = payload.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = str(first.get("code", "unknown"))
    message = str(first.get("message", "success: false without errors"))
    if code in REAUTH_CODES:
        action = Action.REAUTH
    elif code in QUOTA_CODES:
        action = Action.QUOTA
    elif code in THROTTLE_CODES:
        action = Action.THROTTLED
    elif code in RETRY_CODES:
        action = Action.RETRY
    elif code in STOP_CODES:
        action = Action.STOP
    elif (named := missing_field(code, message)) is not None:
        return Verdict(Action.MISSING_FIELD, code, message, http_status, payload, field=named)
    elif code.startswith("7") or code.startswith("1"):
        action = Action.SKIP  # 7xx / 1xxx: this request's data or parameters are wrong, others may pass
    else:
        action = Action.STOP
    return Verdict(action, code, message, http_status, payload)


def missing_field(code: str, message: str) -> str | None:
    """The field a 1006 answer names (``Field 'x' not found``): a whole request's error, or one record's reason."""
    named = _FIELD_NOT_FOUND.search(message) if code == FIELD_NOT_FOUND else None
    return named.group("field") if named is not None else None


def next_quota_reset(now: datetime) -> datetime:
    """Marketo's daily quota resets at 00:00 US Central (CST/CDT): the next such instant after ``now``, in UTC."""
    local = now.astimezone(MARKETO_TIMEZONE)
    tomorrow = local.date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0, 0), tzinfo=MARKETO_TIMEZONE).astimezone(UTC)


def to_error(verdict: Verdict, *, what: str, now: datetime, retry_after: float | None = None) -> SyncError:
    """The exception a caller gets once retries are spent (or for verdicts that are never retried)."""
    text = f"Marketo {what}: {verdict.message}"
    if verdict.action is Action.QUOTA:
        return QuotaExhausted(text, code=verdict.code, resets_at=next_quota_reset(now))
    if verdict.action is Action.THROTTLED:
        return Throttled(text, code=verdict.code, retry_after=retry_after)
    if verdict.action is Action.RETRY:
        return RetryLater(text, code=verdict.code, retry_after=retry_after)
    if verdict.action is Action.MISSING_FIELD and verdict.field is not None:
        return MissingField(text, field=verdict.field, code=verdict.code)
    if verdict.action in (Action.SKIP, Action.MISSING_FIELD):
        return SkipRecord(text, code=verdict.code)
    return StopSync(text, code=verdict.code)
