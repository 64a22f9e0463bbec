"""How a request carries its parameters to Marketo, read once so every handler sees them the same way.

Marketo is a servlet application, and clients rely on the servlet rules, not on one client's habits:

- Parameters come from the query string *and* from an ``application/x-www-form-urlencoded`` body (and the
  non-file parts of a ``multipart/form-data`` body, as the bulk import's ``format``): marketorestpython's "get
  leads by filter type" posts ``_method=GET&filterType=..&filterValues=..`` as a form body.
- ``POST`` with ``_method=GET`` (in the URL, as the error-codes page says for 414, or in the body, as the leads
  page says: "add the _method=GET parameter, and place a query string in the request body") is served as the GET.
- A parameter may be repeated: ``fields=a&fields=b`` means ``fields=a,b`` (a repeated parameter bound to one
  string is joined with commas, and the paging-tokens page itself writes ``activityTypeIds=1&activityTypeIds=12``).
- The access token comes in ``Authorization: Bearer`` or, until Marketo retires it, as ``access_token``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

import httpx

from local.simulators.marketo.envelope import ApiError

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def media_type(request: httpx.Request) -> str:
    """The content type without its parameters, lower-cased (``application/json; charset=utf-8`` -> ``...json``)."""
    header: str = request.headers.get("content-type", "")
    return header.split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Params:
    """Request parameters in arrival order, repeats kept (query string first, then the body's)."""

    pairs: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The parameter as one string: repeated values joined with commas, None when absent."""
        found = [value for key, value in self.pairs if key == name]
        return ",".join(found) if found else None

    def values(self, name: str) -> list[str]:
        """A list parameter, given comma-separated, repeated, or both; blank items dropped."""
        return [item.strip() for item in (self.get(name) or "").split(",") if item.strip()]

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.pairs)


@dataclass(frozen=True)
class Incoming:
    """A request as Marketo routes it: the effective method, the path and every parameter."""

    method: str
    path: str
    params: Params
    files: dict[str, tuple[str, bytes]]  # multipart file parts: name -> (filename, content)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``name -> (filename, content)`` for each part of a multipart/form-data body (613 when unreadable)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise ApiError("613")
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        parts[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return parts


def read(request: httpx.Request) -> Incoming:
    """Merge the query string with a form body (or a multipart body's fields) and apply ``_method=GET``."""
    pairs: list[tuple[str, str]] = list(request.url.params.multi_items())
    files: dict[str, tuple[str, bytes]] = {}
    media = media_type(request)
    if media == FORM and request.content:
        pairs += parse_qsl(request.content.decode("utf-8", "replace"), keep_blank_values=True)
    elif media == MULTIPART and request.method == "POST":
        for name, (filename, content) in parse_multipart(request.headers["content-type"], request.content).items():
            if filename is None:
                pairs.append((name, content.decode("utf-8", "replace")))
            else:
                files[name] = (filename, content)
    method = request.method
    override = [value for key, value in pairs if key == "_method"]
    if method == "POST" and override and override[-1].upper() == "GET":
        method = "GET"
    kept = tuple((key, value) for key, value in pairs if key != "_method")
    return Incoming(method, request.url.path, Params(kept), files)


def access_token(request: httpx.Request, params: Params) -> str:
    """The token from ``Authorization: Bearer`` (preferred, the authentication page's only supported form from
    2026) or the ``access_token`` parameter; empty when neither is there."""
    header: str = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (params.get("access_token") or "").split(",")[0]


@dataclass
class Call:
    """One parsed REST call as a handler sees it."""

    method: str
    path: str
    params: Params
    request: httpx.Request
    groups: dict[str, str]
    request_id: str
    files: dict[str, tuple[str, bytes]]

    def json(self) -> Any:
        """The JSON body; 612 unless the request says it is JSON, 609 when it is not valid JSON."""
        if "json" not in media_type(self.request):
            raise ApiError("612")
        try:
            return json.loads(self.request.content or b"null")
        except ValueError as exc:
            raise ApiError("609") from exc

    def json_query(self) -> dict[str, Any] | None:
        """The JSON body of a ``POST ..?_method=GET`` query (custom objects, opportunity roles: compound keys)."""
        if self.request.method != "POST" or "json" not in media_type(self.request):
            return None
        body = self.json()
        if not isinstance(body, dict):
            raise ApiError("609")
        return body

    def int_param(self, name: str, default: int, *, maximum: int) -> int:
        return bounded_int(self.params.get(name), name, default, maximum=maximum)

    def required(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            raise ApiError("701", f"{name} cannot be blank")
        return value

    def required_values(self, name: str) -> list[str]:
        values = self.params.values(name)
        if not values:
            raise ApiError("701", f"{name} cannot be blank")
        return values


def bounded_int(raw: object, name: str, default: int, *, maximum: int) -> int:
    """An integer parameter such as ``batchSize``: 1003 when it is not a number, clamped to ``1..maximum``."""
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw))
    except ValueError as exc:
        raise ApiError("1003", f"Invalid value for '{name}'") from exc
    return max(1, min(value, maximum))


def as_list(value: object) -> list[str]:
    """A list member of a JSON query body (``fields``): a JSON array or a comma-separated string."""
    if value is None:
        return []
    items: Iterable[object] = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]
