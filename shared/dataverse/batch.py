"""OData ``$batch`` bodies: build the multipart/mixed request, read the per-operation responses.

Up to 1000 operations per batch. A change set is one transaction (all or nothing); operations outside change sets
run one by one, and with ``Prefer: odata.continue-on-error`` a failure does not stop the rest.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH_OPERATIONS = 1000
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class BatchOperation:
    """One request inside a batch; ``url`` is absolute or relative to the service root (``leads(<id>)``)."""

    method: str
    url: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchPart:
    status: int
    headers: Mapping[str, str]
    body: str
    content_id: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def boundary_of(content_type: str) -> str | None:
    match = _BOUNDARY.search(content_type)
    return match.group(1) if match else None


def split_multipart(body: str, boundary: str) -> list[tuple[dict[str, str], str]]:
    """The parts between ``--boundary`` lines, each as (lower-cased headers, body)."""
    delimiter = f"--{boundary}"
    parts: list[tuple[dict[str, str], str]] = []
    chunks = re.split(rf"(?:\r?\n)?{re.escape(delimiter)}", body)
    for chunk in chunks[1:]:
        if chunk.startswith("--"):
            break
        head, _, rest = _split_head(chunk.removeprefix("\r\n").removeprefix("\n"))
        parts.append((_headers(head), rest))
    return parts


def _split_head(text: str) -> tuple[str, str, str]:
    for separator in ("\r\n\r\n", "\n\n"):
        if separator in text:
            head, rest = text.split(separator, 1)
            return head, separator, rest
    return text, "", ""


def _headers(block: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return headers


def parse_http_message(text: str) -> tuple[str, dict[str, str], str]:
    """An embedded ``application/http`` message: (start line, headers, body)."""
    head, _, body = _split_head(text.lstrip("\r\n"))
    lines = head.splitlines()
    start = lines[0].strip() if lines else ""
    return start, _headers("\n".join(lines[1:])), body.rstrip("\r\n")


def _render_operation(op: BatchOperation, service_root: str, content_id: int | None) -> str:
    url = op.url if op.url.startswith(("http://", "https://", "$")) else f"{service_root.rstrip('/')}/{op.url}"
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{op.method.upper()} {url} HTTP/1.1"]
    headers = dict(op.headers)
    if op.body is not None:
        headers.setdefault("Content-Type", "application/json")
    lines += [f"{key}: {value}" for key, value in headers.items()]
    lines.append("")
    lines.append(json.dumps(op.body) if op.body is not None else "")
    return "\r\n".join(lines)


def build_batch(operations: Sequence[BatchOperation], service_root: str, *, atomic: bool) -> tuple[str, bytes]:
    """(Content-Type header, body). ``atomic`` puts every operation in one change set."""
    if not operations or len(operations) > MAX_BATCH_OPERATIONS:
        raise ValueError(f"a batch holds 1..{MAX_BATCH_OPERATIONS} operations, got {len(operations)}")
    batch = f"batch_{uuid.uuid4()}"
    out: list[str] = []
    if atomic:
        changeset = f"changeset_{uuid.uuid4()}"
        out.append(f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n")
        for index, op in enumerate(operations, start=1):
            out.append(f"--{changeset}\r\n{_render_operation(op, service_root, index)}")
        out.append(f"--{changeset}--\r\n")
    else:
        for op in operations:
            out.append(f"--{batch}\r\n{_render_operation(op, service_root, None)}")
    out.append(f"--{batch}--\r\n")
    return f"multipart/mixed; boundary={batch}", "\r\n".join(out).encode("utf-8")


def parse_batch_response(content_type: str, body: str) -> list[BatchPart]:
    """Flatten the response parts (change-set responses included) in request order."""
    boundary = boundary_of(content_type)
    if boundary is None:
        raise ValueError("batch response without a multipart boundary")
    results: list[BatchPart] = []
    for headers, part in split_multipart(body, boundary):
        inner = boundary_of(headers.get("content-type", "")) if "multipart" in headers.get("content-type", "") else None
        if inner:
            results.extend(parse_batch_response(headers["content-type"], part))
            continue
        start, http_headers, http_body = parse_http_message(part)
        pieces = start.split(" ", 2)
        if len(pieces) < 2 or not pieces[1].isdigit():
            raise ValueError(f"batch part without an HTTP status line: {start[:80]!r}")
        results.append(BatchPart(int(pieces[1]), http_headers, http_body, headers.get("content-id")))
    return results
