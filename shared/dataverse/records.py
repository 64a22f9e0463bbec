"""Rows from the Web API as values: id, ETag, columns, formatted values; lookups folded into ``EntityRef``.

With ``Prefer: odata.include-annotations="*"`` a lookup column ``parentaccountid`` arrives as
``_parentaccountid_value`` plus ``@Microsoft.Dynamics.CRM.lookuplogicalname`` and a formatted value (the primary
name); option sets and money carry ``@OData.Community.Display.V1.FormattedValue`` labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from shared.dataverse.values import EntityRef

FORMATTED = "@OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL_NAME = "@Microsoft.Dynamics.CRM.lookuplogicalname"
_LOOKUP = re.compile(r"^_(.+)_value$")


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    etag: str | None
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    formatted_values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def lookup_column(name: str) -> str | None:
    """The lookup column a Web API name stands for (``_parentaccountid_value``: ``parentaccountid``), or None."""
    found = _LOOKUP.match(name)
    return found.group(1) if found else None


def record_from_row(row: Mapping[str, Any], id_attribute: str) -> Record:
    values: dict[str, Any] = {}
    formatted: dict[str, str] = {}
    for key, value in row.items():
        if "@" in key:
            continue
        lookup = lookup_column(key)
        column = lookup or key
        label = row.get(f"{key}{FORMATTED}")
        if isinstance(label, str):
            formatted[column] = label
        if lookup:
            target = row.get(f"{key}{LOOKUP_LOGICAL_NAME}")
            values[column] = (
                EntityRef(str(value).lower(), str(target or ""), label if isinstance(label, str) else None)
                if value is not None
                else None
            )
        else:
            values[key] = value
    raw_id = row.get(id_attribute)
    etag = row.get("@odata.etag")
    return Record(
        id=str(raw_id).lower() if raw_id is not None else "",
        etag=str(etag) if etag is not None else None,
        values=MappingProxyType(values),
        formatted_values=MappingProxyType(formatted),
    )
