"""A write's body checked and brought to the stored form, the way the Web API's OData reader and platform do it.

Two layers, two kinds of error, as in Dataverse: the OData reader refuses what does not fit the entity type
(unknown properties, wrong JSON types: 0x80048d19), the platform refuses values the column's metadata does not
allow (too long: 0x80044331; a choice it does not have: 0x8004431a; an empty SystemRequired column). Only
``SystemRequired`` is enforced: ``ApplicationRequired`` ("Business Required") is a form rule the API ignores
(Microsoft's docs, issue MicrosoftDocs/powerapps-docs#1580). Columns not valid for create/update are ignored.
Lookups are set through navigation properties (``x@odata.bind``), never through ``_x_value``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from local.simulators.dataverse import errors
from local.simulators.dataverse.errors import ApiError
from local.simulators.dataverse.schema import CHOICE_TYPES, TEXT_TYPES, Column, Table

_BIND = re.compile(r"^(?:https?://[^/]+)?/?(?:api/data/v[\d.]+/)?(?P<set>\w+)\((?P<id>[0-9a-fA-F-]{36})\)$")
_EDM = {
    "String": "Edm.String",
    "Memo": "Edm.String",
    "Uniqueidentifier": "Edm.Guid",
    "Integer": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "Decimal": "Edm.Decimal",
    "Money": "Edm.Decimal",
    "Double": "Edm.Double",
    "Boolean": "Edm.Boolean",
    "DateTime": "Edm.DateTimeOffset",
    "MultiSelectPicklist": "Edm.String",
}
_INT_RANGE = {"Integer": (-(2**31), 2**31 - 1), "BigInt": (-(2**63), 2**63 - 1)}

# Resolves ``x@odata.bind`` targets: (entity set, id) -> the target's logical name, or None if there is no row.
Resolver = Callable[[str, str], str | None]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def navigation(table: Table, name: str) -> tuple[Column, tuple[str, ...]] | None:
    """The lookup a navigation property sets, and the tables it may point at.

    Single-target lookups are named after the column (``parentaccountid``); a lookup that can point at several
    tables has one navigation property per target (``parentcustomerid_account``, ``eventhandler_serviceendpoint``),
    except ``ownerid`` which accepts users and teams under its own name, and the lookups whose table names each
    target's property itself (an activity's ``regardingobjectid_contact_task``: ``Column.navigation``).
    """
    column = table.columns.get(name)
    if column is not None and column.is_lookup and (len(column.all_targets) <= 1 or column.type == "Owner"):
        return column, column.all_targets
    for column in table.columns.values():
        for target, property_name in column.navigation.items():
            if property_name == name:
                return column, (target,)
    base, _, target = name.rpartition("_")
    column = table.columns.get(base)
    if column is not None and column.is_lookup and len(column.all_targets) > 1 and target in column.all_targets:
        if column.navigation:  # the table names its own navigation properties: this one is not among them
            return None
        return column, (target,)
    return None


def coerce(
    table: Table,
    values: Mapping[str, Any],
    resolve: Resolver,
    *,
    creating: bool,
    web_api: bool = True,
) -> dict[str, Any]:
    """The stored form (``_x_value`` for lookups) of a write's body; raises the Dataverse error for bad input."""
    stored: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("@odata."):
            continue  # @odata.type, @odata.context: allowed annotations on the entity itself
        if key.endswith("@odata.bind"):
            name = key.removesuffix("@odata.bind")
            found = navigation(table, name)
            if found is None:
                raise errors.annotation_only_property(table.entity_set, name)
            lookup_column, targets = found
            if value is None:
                stored[lookup_column.wire_name] = None
                continue
            match = _BIND.match(str(value))
            if match is None:
                raise ApiError(400, "0x80060888", f"Invalid @odata.bind value '{value}' for '{name}'.")
            target = resolve(match.group("set"), match.group("id").lower())
            if target is None:
                raise errors.not_found(match.group("set").rstrip("s"), match.group("id").lower())
            if target not in targets:
                raise ApiError(400, "0x80060888", f"The '{name}' property cannot point at a {target} record.")
            stored[lookup_column.wire_name] = match.group("id").lower()
            continue
        if "@" in key:
            continue  # instance annotations on a property (formatted values echoed back): the reader skips them
        if key.startswith("_") and key.endswith("_value") and (lookup := table.column_for(key)) is not None:
            if web_api:
                raise ApiError(
                    400,
                    "0x80060888",
                    "CRM do not support direct update of Entity Reference properties, Use Navigation properties "
                    "instead.",
                )
            stored[lookup.wire_name] = str(value).lower() if value is not None else None
            continue
        direct = table.columns.get(key)
        if not web_api and direct is not None and direct.is_lookup:
            stored[direct.wire_name] = str(value).lower() if value is not None else None  # set in the app's form
            continue
        column = table.column_for(key)
        if column is None:
            raise errors.undeclared_property(table.entity_set, table.logical_name, key)
        if web_api and not (column.valid_for_create if creating else column.valid_for_update):
            continue  # read-only columns are ignored, as the platform does (createdon, fullname, ...)
        stored[key] = validate(table, column, value)
    return stored


def validate(table: Table, column: Column, value: Any) -> Any:
    """One value against its column's type and metadata; returns it in the stored form."""
    if value is None:
        if column.required == "SystemRequired" and column.name != table.primary_id:
            raise errors.required(table.logical_name, column.name)
        return None
    bad = errors.cannot_convert(table.entity_set, value, _EDM.get(column.type, "Edm.String"))
    if column.type in TEXT_TYPES:
        if not isinstance(value, str):
            raise bad
        if column.max_length is not None and len(value) > column.max_length:
            raise errors.too_long(table.logical_name, column.name, column.max_length)
        return value
    if column.type == "Uniqueidentifier":
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F-]{36}", value.strip("{}")):
            raise bad
        return value.strip("{}").lower()
    if column.type in CHOICE_TYPES:
        if not _is_int(value):
            raise bad
        if value not in column.options:
            raise errors.outside_range(table.logical_name, column.name, value, column.options)
        return value
    if column.type == "MultiSelectPicklist":
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if not all(re.fullmatch(r"-?\d+", p) for p in parts):
            raise bad
        for part in parts:
            if int(part) not in column.options:
                raise errors.outside_range(table.logical_name, column.name, int(part), column.options)
        return ",".join(str(int(p)) for p in parts)
    if column.type == "Boolean":
        if not isinstance(value, bool):
            raise bad
        return value
    if column.type in _INT_RANGE:
        low, high = _INT_RANGE[column.type]
        if not _is_int(value) or not low <= value <= high:
            raise bad
        return value
    if column.type in {"Money", "Decimal", "Double"}:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise bad from None
        return float(number) if not isinstance(value, int) else value
    if column.type == "DateTime":
        if not isinstance(value, str):
            raise bad
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise bad from None
        return value
    return value


def check_required(table: Table, row: Mapping[str, Any]) -> None:
    """After a create: every SystemRequired column the caller could set has a value."""
    for column in table.columns.values():
        if column.required == "SystemRequired" and column.valid_for_create and row.get(column.wire_name) is None:
            raise errors.required(table.logical_name, column.name)


def check_status(table: Table, row: Mapping[str, Any]) -> None:
    """A status reason must belong to the row's state (StatusOptionMetadata.State)."""
    status = table.columns.get("statuscode")
    if status is None or not status.states:
        return
    state, reason = row.get("statecode"), row.get("statuscode")
    if state is not None and reason is not None and status.states.get(int(reason), state) != state:
        raise ApiError(
            400,
            "0x80040203",
            f"{reason} is not a valid status code for state code {table.schema_name or table.logical_name}State."
            f"{state} on {table.logical_name} with Id {row.get(table.primary_id)}.",
        )


def default_status(table: Table, state: int) -> int | None:
    """The first status reason of a state: what Dataverse sets when only statecode changes."""
    status = table.columns.get("statuscode")
    if status is None:
        return None
    return next((value for value, of in status.states.items() if of == state), None)
