"""A stored row as the Web API returns it: ``@odata.etag``, the selected properties, and the annotations asked for.

Lookups are ``_x_value`` properties; with ``Prefer: odata.include-annotations`` they carry their formatted value
(the primary name), ``associatednavigationproperty`` and ``lookuplogicalname``; choices, booleans, money, numbers
and dates carry ``OData.Community.Display.V1.FormattedValue`` (Power Apps docs, "Formatted values" in
``webapi/query/select-columns.md``). Secured columns the caller may not read come back as null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from local.simulators.dataverse import errors
from local.simulators.dataverse.rows import Caller, Organisation
from local.simulators.dataverse.schema import CHOICE_TYPES, Column, Table
from local.simulators.dataverse.wire import Annotations

FORMATTED = "OData.Community.Display.V1.FormattedValue"
NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"
LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"


def select_list(table: Table, raw: str | None) -> list[str] | None:
    """``$select`` as wire names; an unknown name is the real 0x80060888 "Could not find a property" error."""
    if not raw:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if table.column_for(name) is None:
            raise errors.unknown_property(table.logical_name, name)
    return names


def _date_text(column: Column, value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    day = f"{moment.month}/{moment.day}/{moment.year}"
    if column.format == "DateOnly" or column.behavior == "DateOnly":
        return day
    hour = moment.hour % 12 or 12
    return f"{day} {hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def formatted_value(org: Organisation, column: Column, value: Any) -> str | None:
    """The display text Dataverse puts next to a value (en-US, UTC), or None when it gives none."""
    if value is None:
        return None
    if column.type in CHOICE_TYPES:
        return column.options.get(int(value), str(value))
    if column.type == "MultiSelectPicklist":
        return "; ".join(column.options.get(int(v), v) for v in str(value).split(",") if v)
    if column.type == "Boolean":
        return column.options.get(int(bool(value)), "Yes" if value else "No")
    if column.type == "Money":
        return f"${Decimal(str(value)):,.2f}"
    if column.type in {"Integer", "BigInt"}:
        return f"{int(value):,}"
    if column.type in {"Decimal", "Double"}:
        places = column.precision if column.precision is not None else 2
        return f"{Decimal(str(value)):,.{places}f}"
    if column.type == "DateTime":
        return _date_text(column, str(value))
    if column.is_lookup:
        target = org.lookup_target(column, str(value))
        row = org.row(target, str(value)) if target is not None else None
        return (
            str(row.get(target.primary_name)) if target is not None and row and row.get(target.primary_name) else None
        )
    return None


def annotate(org: Organisation, out: dict[str, Any], column: Column, value: Any, annotations: Annotations) -> None:
    wire = column.wire_name
    text = formatted_value(org, column, value)
    if text is not None and annotations.wants(FORMATTED):
        out[f"{wire}@{FORMATTED}"] = text
    if column.is_lookup:
        target = org.lookup_target(column, str(value))
        if annotations.wants(NAVIGATION):
            suffix = f"_{target.logical_name}" if target is not None and len(column.all_targets) > 1 else ""
            named = column.navigation.get(target.logical_name) if target is not None else None
            out[f"{wire}@{NAVIGATION}"] = named or column.name + ("" if column.type == "Owner" else suffix)
        if annotations.wants(LOOKUP_NAME) and target is not None:
            out[f"{wire}@{LOOKUP_NAME}"] = target.logical_name


def present(
    org: Organisation,
    table: Table,
    row: Mapping[str, Any],
    select: Iterable[str] | None,
    caller: Caller,
    annotations: Annotations,
) -> dict[str, Any]:
    record_id = str(row[table.primary_id])
    out: dict[str, Any] = {"@odata.etag": org.etag(table, record_id)}
    wires = list(select) if select is not None else [c.wire_name for c in table.columns.values() if c.valid_for_read]
    for wire in dict.fromkeys([*wires, table.primary_id]):
        column = table.column_for(wire)
        if column is None:
            continue
        value = row.get(wire)
        if not org.can(caller.user_id, table, column, 0):
            value = None  # a secured column without the read privilege: Dataverse returns null
        out[wire] = value
        if annotations and value is not None:
            annotate(org, out, column, value, annotations)
    return out
