"""What every Web API response carries, and the request preferences (``Prefer``) the Web API honours.

Real Dataverse answers JSON with ``Content-Type: application/json; odata.metadata=minimal`` and every response with
``OData-Version: 4.0``; clients that decide by content type (most OData libraries) read nothing without it.
``Prefer`` (OData 4.0 part 1, 8.2.8; Dataverse pages "Compose HTTP requests", "Page results",
"Use change tracking", "Create with data returned") is a comma-separated list whose values may be quoted,
e.g. ``odata.include-annotations="OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.*"``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from local.simulators.dataverse.errors import JSON, ApiError

API = "/api/data/v9.2/"
MAX_PAGE_SIZE = 5000
_PREFERENCE = re.compile(r'\s*([\w.-]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*))?\s*(?:,|$)')


def service_root(request: httpx.Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc.decode()}{API}"


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"Content-Type": JSON, "OData-Version": "4.0", **(headers or {})},
        content=json.dumps(body).encode(),
    )


def no_content(headers: Mapping[str, str] | None = None, status: int = 204) -> httpx.Response:
    return httpx.Response(status, headers={"OData-Version": "4.0", **(headers or {})})


@dataclass(frozen=True, slots=True)
class Annotations:
    """Which instance annotations a client asked for (``odata.include-annotations``); empty: none."""

    patterns: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def wants(self, term: str) -> bool:
        """``term`` like ``OData.Community.Display.V1.FormattedValue``; patterns may end in ``*`` (or be ``*``)."""
        return any(fnmatch.fnmatchcase(term, p) for p in self.patterns if not p.startswith("-")) and not any(
            fnmatch.fnmatchcase(term, p[1:]) for p in self.patterns if p.startswith("-")
        )


@dataclass(frozen=True, slots=True)
class Prefer:
    max_page_size: int = MAX_PAGE_SIZE
    page_size_asked: bool = False
    track_changes: bool = False
    annotations: Annotations = field(default_factory=Annotations)
    annotations_raw: str | None = None
    return_representation: bool = False
    continue_on_error: bool = False

    @classmethod
    def parse(cls, header: str | None) -> Prefer:
        values: dict[str, str | None] = {}
        for match in _PREFERENCE.finditer(header or ""):
            if match.group(1):
                raw = match.group(2)
                values[match.group(1).lower()] = raw.strip().strip('"') if raw is not None else None
        size, asked = MAX_PAGE_SIZE, False
        if values.get("odata.maxpagesize"):
            with contextlib.suppress(ValueError):
                size, asked = max(1, min(MAX_PAGE_SIZE, int(str(values["odata.maxpagesize"])))), True
        annotations = values.get("odata.include-annotations")
        return cls(
            max_page_size=size,
            page_size_asked=asked,
            track_changes="odata.track-changes" in values,
            annotations=Annotations(tuple(p.strip() for p in annotations.split(",") if p.strip()))
            if annotations
            else Annotations(),
            annotations_raw=annotations,
            return_representation=values.get("return") == "representation",
            continue_on_error="odata.continue-on-error" in values,
        )

    def applied_annotations(self) -> dict[str, str]:
        """The ``Preference-Applied`` echo of an honoured ``odata.include-annotations``."""
        return {"Preference-Applied": f'odata.include-annotations="{self.annotations_raw}"'} if self.annotations else {}


def read_body(request: httpx.Request, entity_set: str) -> dict[str, Any]:
    """The JSON object a write carries; anything else is the OData reader's 0x80048d19 (or a 400 for non-JSON)."""
    if not request.content.strip():
        return {}
    try:
        body = json.loads(request.content)
    except ValueError:
        raise ApiError(
            400, "0x80048d19", f"Error identified in Payload provided by the user for Entity :'{entity_set}'."
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "0x80048d19", "The request body must be a JSON object.")
    return body
