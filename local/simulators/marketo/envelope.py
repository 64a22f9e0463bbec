"""Marketo's JSON envelope: ``requestId``, ``success``, then ``result`` or ``errors`` (HTTP 200 either way).

Every JSON answer carries ``Content-Type: application/json;charset=UTF-8``, as Marketo's (a Java servlet's)
do: clients that check the media type, or decode by the declared charset, see what they would in production.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import httpx

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
CSV_CONTENT_TYPE = "text/csv;charset=UTF-8"

ERROR_MESSAGES = {
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request timed out",
    "605": "HTTP Method not supported",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "613": "Invalid Multipart Request",
    "614": "Invalid Subscription",
    "615": "Concurrent access limit reached",
    "701": "cannot be blank",
    "702": "No data found for a given search scenario",
    "704": "Invalid date format",
    "713": "Transient Error",
    "1003": "Invalid data",
    "1004": "Lead not found",
    "1005": "Lead already exists",
    "1006": "Field not found",
    "1007": "Multiple leads match the lookup criteria",
    "1011": "Field not supported",
    "1013": "Object not found",
    "1016": "Too many imports",
    "1029": "Too many jobs in queue",
}
ERROR_CODE = "marketo.error_code"  # a Response extension: the code an error envelope carries (never on the wire)


class RequestIds:
    """``requestId`` values shaped like Marketo's (``e42b#14272d07d78``)."""

    def __init__(self) -> None:
        self._counter = itertools.count(0x1000)
        self._lock = threading.Lock()

    def next(self, now: float) -> str:
        with self._lock:
            number = next(self._counter)
        return f"{number:x}#{int(now * 1000):x}"


def json_response(status: int, body: Any, *, extensions: dict[str, Any] | None = None) -> httpx.Response:
    """A JSON answer (UTF-8, non-ASCII kept as is) with Marketo's content type."""
    content = json.dumps(body, ensure_ascii=False).encode()
    return httpx.Response(status, content=content, headers={"content-type": JSON_CONTENT_TYPE}, extensions=extensions)


def ok(request_id: str, result: list[Any] | None = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"requestId": request_id, "success": True}
    if result is not None:
        body["result"] = result
    body.update(extra)
    return json_response(200, body)


def error(request_id: str, code: str, message: str | None = None) -> httpx.Response:
    """A response-level error. The code also rides along as the :data:`ERROR_CODE` extension, so the simulator
    can book it (stats/errors, no quota charge) without parsing its own answer."""
    text = message or ERROR_MESSAGES.get(code, "Error")
    body = {"requestId": request_id, "success": False, "errors": [{"code": code, "message": text}]}
    return json_response(200, body, extensions={ERROR_CODE: code})


def error_code(response: httpx.Response) -> str | None:
    """The code of an error envelope made by :func:`error`; None for any other answer."""
    code = response.extensions.get(ERROR_CODE)
    return code if isinstance(code, str) else None


def http_error(status: int, text: str) -> httpx.Response:
    """What the web tier in front of Marketo sends (414, 413, 502): not the JSON envelope."""
    return httpx.Response(
        status, text=f"<html><body><h1>{status}</h1><p>{text}</p></body></html>", headers={"content-type": "text/html"}
    )


def skipped(code: str, message: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "status": "skipped",
        "reasons": [{"code": code, "message": message or ERROR_MESSAGES.get(code, "")}],
    }


class ApiError(Exception):
    """Raised inside a handler to answer with a response-level error envelope."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or ERROR_MESSAGES.get(code, "Error"))
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code, "Error")
