"""Between the product and HTTP: JSON answers, and the one mapping from the error tree to HTTP answers.

Every HTTP function parses its request, calls the pipeline and renders the value it returns; whatever the
pipeline raises is answered here, by :func:`error_answer`, from :data:`ANSWERS`: a refusal of the caller's input
is always a 4xx, a service that is down or slow is a 503 with ``Retry-After``, and anything unexpected is a 500
that names only the kind of problem. The body is always ``{"error": {"code": ..., "message": ...}}`` (plus
``field`` when the error names one); messages are the error's own, which never carry secrets or echo input.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import azure.functions as func

from shared.errors import (
    AlreadyExists,
    Busy,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    NotPossible,
    QuotaExhausted,
    Refused,
    RetryLater,
    SkipRecord,
    StopSync,
    SyncError,
    Throttled,
    TooLarge,
    Unauthenticated,
)

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 30  # seconds, when the service did not say


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: HTTPStatus
    code: str  # when the error carries no code of its own


ANSWERS: Mapping[type[SyncError], ErrorAnswer] = {
    InvalidRequest: ErrorAnswer(HTTPStatus.BAD_REQUEST, "bad-request"),
    TooLarge: ErrorAnswer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too-large"),
    Unauthenticated: ErrorAnswer(HTTPStatus.UNAUTHORIZED, "unauthorized"),
    Forbidden: ErrorAnswer(HTTPStatus.FORBIDDEN, "forbidden"),
    NotFound: ErrorAnswer(HTTPStatus.NOT_FOUND, "not-found"),
    AlreadyExists: ErrorAnswer(HTTPStatus.CONFLICT, "already-exists"),
    Busy: ErrorAnswer(HTTPStatus.CONFLICT, "busy"),
    NotPossible: ErrorAnswer(HTTPStatus.UNPROCESSABLE_ENTITY, "not-possible"),
    Refused: ErrorAnswer(HTTPStatus.UNPROCESSABLE_ENTITY, "refused"),
    Conflict: ErrorAnswer(HTTPStatus.CONFLICT, "conflict"),
    SkipRecord: ErrorAnswer(HTTPStatus.UNPROCESSABLE_ENTITY, "record-refused"),
    RetryLater: ErrorAnswer(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable"),
    Throttled: ErrorAnswer(HTTPStatus.SERVICE_UNAVAILABLE, "throttled"),
    StopSync: ErrorAnswer(HTTPStatus.SERVICE_UNAVAILABLE, "stopped"),
    QuotaExhausted: ErrorAnswer(HTTPStatus.SERVICE_UNAVAILABLE, "quota-exhausted"),
    SyncError: ErrorAnswer(HTTPStatus.INTERNAL_SERVER_ERROR, "internal"),
}
"""The error tree onto HTTP: the nearest class in an error's MRO decides (so a new subclass inherits its
parent's answer)."""


def answer_for(exc: SyncError) -> ErrorAnswer:
    return next(ANSWERS[cls] for cls in type(exc).__mro__ if cls in ANSWERS)


def retry_after(exc: SyncError, now: datetime) -> int | None:
    """Seconds to wait before asking again: what the service said, else a default; None when waiting won't help."""
    if isinstance(exc, RetryLater):
        return max(1, math.ceil(exc.retry_after)) if exc.retry_after is not None else DEFAULT_RETRY_AFTER
    if isinstance(exc, QuotaExhausted) and exc.resets_at is not None:
        return max(1, math.ceil((exc.resets_at - now).total_seconds()))
    return None


def json_answer(status: HTTPStatus, data: Any, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(data, default=str), status_code=status, headers=dict(headers or {}), mimetype="application/json"
    )


def text_answer(
    status: HTTPStatus, text: str, mimetype: str, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(text, status_code=status, headers=dict(headers or {}), mimetype=mimetype)


def error_answer(exc: BaseException, *, now: datetime | None = None) -> func.HttpResponse:
    if not isinstance(exc, SyncError) or type(exc) is SyncError:
        log.exception("request failed", exc_info=exc)
        return _problem(
            HTTPStatus.INTERNAL_SERVER_ERROR, "internal", f"unexpected {type(exc).__name__}; see the function logs"
        )
    answer = answer_for(exc)
    if isinstance(exc, Refused):
        log.info("request refused: %s", exc)
    else:
        log.warning("request failed: %s", exc)
    headers = {}
    wait = retry_after(exc, now or datetime.now(UTC))
    if wait is not None:
        headers["Retry-After"] = str(wait)
    field = exc.field if isinstance(exc, InvalidRequest) else None
    return _problem(answer.status, exc.code or answer.code, exc.message, headers, field=field)


def _problem(
    status: HTTPStatus, code: str, message: str, headers: Mapping[str, str] | None = None, *, field: str | None = None
) -> func.HttpResponse:
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return json_answer(status, {"error": error}, headers)


def answers_errors(
    handler: Callable[[func.HttpRequest], func.HttpResponse],
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Put under ``@bp.route``: whatever the handler raises is answered by :func:`error_answer`."""

    @functools.wraps(handler)
    def answered(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except Exception as exc:
            return error_answer(exc)

    return answered
