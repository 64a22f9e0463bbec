"""``$batch``: multipart/mixed requests with change sets, parsed and answered by the simulator itself.

Written from "Execute batch operations using the Web API" (Power Apps docs) and OData 4.0 part 1, 11.7 (multipart
batch format) over RFC 2046 (multipart bodies: the line break before a delimiter belongs to the delimiter). Rules:

- at most 1000 operations; each is an ``application/http`` part holding one request (absolute URL, absolute path
  or a path relative to the service root), answered by one ``application/http`` part, in order;
- a change set (a nested ``multipart/mixed`` part) is one transaction: its operations may not be ``GET``, a
  ``Content-ID: n`` names the row an operation created so later operations of the same change set can use ``$n``
  (as the URL, a URL prefix ``$n/property``, or an ``@odata.bind`` / ``@odata.id`` value); when one operation
  fails, everything the change set did is rolled back and the failure is the change set's only response;
- without ``Prefer: odata.continue-on-error`` processing stops at the first failure and the batch answers with
  that failure's status; with it, the batch answers 200 and goes on.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from local.simulators.dataverse.errors import ApiError
from local.simulators.dataverse.plugins import Plugins
from local.simulators.dataverse.rows import Organisation
from local.simulators.dataverse.wire import API, Prefer

MAX_OPERATIONS = 1000
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;,\s]+))', re.IGNORECASE)
_REFERENCE = re.compile(r"^\$(\w+)(/.*)?$")

Dispatch = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True, slots=True)
class Part:
    headers: dict[str, str]  # names lower-cased
    body: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    target: str
    headers: dict[str, str]
    body: str
    content_id: str | None


def boundary(content_type: str) -> str | None:
    if "multipart/" not in content_type.lower():
        return None
    match = _BOUNDARY.search(content_type)
    return (match.group(1) or match.group(2)) if match else None


def _split_head(lines: list[str]) -> tuple[list[str], list[str]]:
    for index, line in enumerate(lines):
        if not line.strip():
            return lines[:index], lines[index + 1 :]
    return lines, []


def _headers(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            out[name.strip().lower()] = value.strip()
    return out


def parse_multipart(text: str, marker: str) -> list[Part]:
    """The body parts between ``--marker`` delimiter lines (preamble and epilogue ignored)."""
    parts: list[list[str]] = []
    current: list[str] | None = None
    for line in re.split(r"\r?\n", text):
        stripped = line.rstrip()
        if stripped == f"--{marker}--":
            break
        if stripped == f"--{marker}":
            current = []
            parts.append(current)
        elif current is not None:
            current.append(line)
    out = []
    for lines in parts:
        head, body = _split_head(lines)
        out.append(Part(_headers(head), "\r\n".join(body)))
    return out


def parse_operation(part: Part) -> Operation:
    """An ``application/http`` part's request: request line, headers, body."""
    lines = re.split(r"\r?\n", part.body.lstrip("\r\n"))
    head, body = _split_head(lines)
    pieces = head[0].split() if head else []
    if len(pieces) < 2:
        raise ApiError(400, "0x80060888", "The batch part does not hold an HTTP request line.")
    return Operation(
        pieces[0].upper(), pieces[1], _headers(head[1:]), "\r\n".join(body).strip(), part.headers.get("content-id")
    )


REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden"}
REASONS |= {404: "Not Found", 405: "Method Not Allowed", 412: "Precondition Failed", 429: "Too Many Requests"}
REASONS |= {500: "Internal Server Error", 501: "Not Implemented"}


def render_part(response: httpx.Response, content_id: str | None) -> list[str]:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    reason = REASONS.get(response.status_code) or response.reason_phrase
    lines += ["", f"HTTP/1.1 {response.status_code} {reason}"]
    lines += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() not in {"content-length"}]
    lines += ["", response.content.decode() if response.content else ""]
    return lines


class Batch:
    def __init__(self, org: Organisation, plugins: Plugins, dispatch: Dispatch) -> None:
        self.org = org
        self.plugins = plugins
        self.dispatch = dispatch

    def __call__(self, request: httpx.Request) -> httpx.Response:
        marker = boundary(request.headers.get("content-type", ""))
        if marker is None:
            raise ApiError(
                400, "0x80060888", "The batch request must have a multipart/mixed content type with a boundary."
            )
        prefer = Prefer.parse(request.headers.get("prefer"))
        parts = parse_multipart(request.content.decode("utf-8"), marker)
        count = sum(
            len(parse_multipart(p.body, boundary(p.content_type) or "")) if boundary(p.content_type) else 1
            for p in parts
        )
        if count > MAX_OPERATIONS:
            raise ApiError(
                400, "0x8004d2b0", f"The number of requests in a batch exceeded the limit of {MAX_OPERATIONS}."
            )
        answer = f"batchresponse_{uuid.uuid4()}"
        lines: list[str] = []
        status = 200
        for part in parts:
            inner = boundary(part.content_type)
            if inner is not None:
                failure, rendered = self._change_set(request, part, inner)
            else:
                response = self._run(request, part, {}, in_change_set=False)
                failure = response if response.status_code >= 400 else None
                rendered = render_part(response, part.headers.get("content-id"))
            lines += [f"--{answer}", *rendered]
            if failure is not None and not prefer.continue_on_error:
                status = failure.status_code
                break
        lines.append(f"--{answer}--")
        return httpx.Response(
            status,
            headers={"OData-Version": "4.0", "Content-Type": f"multipart/mixed; boundary={answer}"},
            content=("\r\n".join(lines) + "\r\n").encode(),
        )

    def _change_set(self, outer: httpx.Request, part: Part, marker: str) -> tuple[httpx.Response | None, list[str]]:
        """Run a change set atomically; (its failure or None, the lines of its response part)."""
        snapshot = self.org.snapshot()
        mark = self.plugins.mark()
        references: dict[str, str] = {}
        answers: list[tuple[httpx.Response, str | None]] = []
        for inner in parse_multipart(part.body, marker):
            response = self._run(outer, inner, references, in_change_set=True)
            content_id = inner.headers.get("content-id")
            if response.status_code >= 400:
                self.org.restore(snapshot)
                self.plugins.rollback_to(mark)
                return response, render_part(response, content_id)
            location = response.headers.get("odata-entityid") or response.headers.get("location")
            if content_id and location:
                references[content_id] = location
            answers.append((response, content_id))
        answer = f"changesetresponse_{uuid.uuid4()}"
        lines = [f"Content-Type: multipart/mixed; boundary={answer}", ""]
        for response, content_id in answers:
            lines += [f"--{answer}", *render_part(response, content_id)]
        lines.append(f"--{answer}--")
        return None, lines

    def _run(
        self, outer: httpx.Request, part: Part, references: dict[str, str], *, in_change_set: bool
    ) -> httpx.Response:
        try:
            if "application/http" not in part.content_type.lower():
                raise ApiError(400, "0x80060888", "Each batch part must have the content type application/http.")
            operation = parse_operation(part)
            if in_change_set and operation.method == "GET":
                raise ApiError(400, "0x80060888", "GET requests are not allowed inside a change set.")
            if in_change_set and not part.headers.get("content-id"):
                raise ApiError(400, "0x80060888", "The Content-ID header is required for requests in a change set.")
            url = self._url(outer, operation.target, references)
            body = self._body(operation.body, references)
            request = httpx.Request(operation.method, url, headers=operation.headers, content=body)
            return self.dispatch(request)
        except ApiError as error:
            return error.response()

    @staticmethod
    def _url(outer: httpx.Request, target: str, references: dict[str, str]) -> str:
        reference = _REFERENCE.match(target)
        if reference is not None:
            found = references.get(reference.group(1))
            if found is None:
                raise ApiError(
                    400,
                    "0x80060888",
                    f"Content-ID Reference: '${reference.group(1)}' does not exist in the batch context.",
                )
            return found + (reference.group(2) or "")
        if target.startswith(("http://", "https://")):
            return target
        origin = f"{outer.url.scheme}://{outer.url.netloc.decode()}"
        return origin + (target if target.startswith("/") else API + target)

    @staticmethod
    def _body(text: str, references: dict[str, str]) -> bytes:
        if not text or not references:
            return text.encode()
        try:
            body = json.loads(text)
        except ValueError:
            return text.encode()

        def swap(value: Any) -> Any:
            if isinstance(value, str) and (match := _REFERENCE.match(value)) and match.group(1) in references:
                return references[match.group(1)] + (match.group(2) or "")
            if isinstance(value, dict):
                return {k: swap(v) for k, v in value.items()}
            if isinstance(value, list):
                return [swap(v) for v in value]
            return value

        return json.dumps(swap(body)).encode()
