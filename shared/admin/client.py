"""The app's HTTP API as the CLI calls it: one httpx client, the function key in a header, two kinds of failure.

A refusal (any 4xx or 5xx) becomes :class:`Refusal` with the product's ``{"error": {"code", "message"}}`` (or the
status's own words when the answer is not the product's JSON, as a Functions host's bare 401 is not); a request
that never got an answer becomes :class:`Unreachable`, naming the URL. The key travels only as the
``x-functions-key`` header: it is never part of a URL, an error or anything printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

DEFAULT_URL = "http://127.0.0.1:7071"  # the local host of `make run` (python -m local --port)
URL_VARIABLE = "SYNC_URL"
KEY_VARIABLE = "SYNC_FUNCTION_KEY"
KEY_HEADER = "x-functions-key"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

Params = Mapping[str, str | int | None]


class Refusal(Exception):
    """The app answered with an error: its code and message (and the request field it names, if any)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.field = status, code, message, field


class Unreachable(Exception):
    """No answer from the app: it is not running there, the name does not resolve, or it timed out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the app at {url}: {reason}")
        self.url, self.reason = url, reason


class UsageError(Exception):
    """A command line the CLI cannot act on; the message says what to pass instead."""


def base_url(given: str | None, env: Mapping[str, str]) -> str:
    """The app's base URL (``--url``, else ``SYNC_URL``, else the local host), without ``/api`` or a query."""
    text = (given or env.get(URL_VARIABLE) or DEFAULT_URL).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"the app's URL must be absolute, like {DEFAULT_URL} or https://<app>.azurewebsites.net")
    if parts.query or parts.username or parts.password:
        raise UsageError(f"put the function key in {KEY_VARIABLE}, not in the URL")
    path = parts.path.rstrip("/").removesuffix("/api")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _problem(response: httpx.Response) -> Refusal:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code"):
        field = error.get("field")
        return Refusal(response.status_code, str(error["code"]), str(error.get("message", "")), field and str(field))
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = "error"
    hint = f" (is {KEY_VARIABLE} the app's function key?)" if response.status_code in (401, 403) else ""
    return Refusal(response.status_code, f"http-{response.status_code}", f"{phrase}{hint}")


@dataclass
class AdminClient:
    """``get`` / ``post`` / ``delete`` a route under ``/api``; JSON in, JSON (or text) out."""

    url: str
    key: str | None = None
    transport: httpx.BaseTransport | None = None

    def __post_init__(self) -> None:
        headers = {"Accept": "application/json", "User-Agent": "sync-admin-cli"}
        if self.key:
            headers[KEY_HEADER] = self.key
        self._http = httpx.Client(
            base_url=self.url + "/api/", headers=headers, timeout=TIMEOUT, transport=self.transport
        )

    @classmethod
    def from_environment(
        cls, url: str | None, env: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None
    ) -> AdminClient:
        values = os.environ if env is None else env
        return cls(base_url(url, values), values.get(KEY_VARIABLE) or None, transport)

    def _send(self, method: str, route: str, params: Params | None = None, body: Any = None) -> httpx.Response:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = self._http.request(method, route.lstrip("/"), params=query, json=body)
        except httpx.TimeoutException:
            raise Unreachable(self.url, "no answer in time") from None
        except httpx.TransportError as exc:
            raise Unreachable(self.url, type(exc).__name__ + (f" ({exc})" if str(exc) else "")) from None
        if response.status_code >= 400:
            raise _problem(response)
        return response

    def get(self, route: str, params: Params | None = None) -> Any:
        return _json(self._send("GET", route, params))

    def text(self, route: str, params: Params | None = None) -> str:
        return self._send("GET", route, params).text

    def post(self, route: str, params: Params | None = None, body: Any = None) -> Any:
        return _json(self._send("POST", route, params, body))

    def delete(self, route: str) -> Any:
        return _json(self._send("DELETE", route))

    def close(self) -> None:
        self._http.close()


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise Refusal(response.status_code, "not-json", "the app answered with something that is not JSON") from None
