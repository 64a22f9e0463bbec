"""Attribute values as the sync sees them, and the two wire encodings they arrive in.

Dataverse hands the same column value over in two dialects: the .NET ``DataContractJsonSerializer`` form inside a
RemoteExecutionContext (``/Date(ms)/``, ``{"__type": "Money:...", "Value": 1.5}``) and the Web API's OData JSON
(ISO dates, plain numbers, ``_x_value`` lookups). Both are brought to one normal form here so the mapping code never
sees either dialect:

    DateTime                      -> aware ``datetime`` in UTC
    OptionSetValue                -> ``int``
    OptionSetValueCollection      -> ``tuple[int, ...]``
    Money                         -> ``Decimal``
    EntityReference               -> ``EntityRef``
    bool / int / float / str / None -> as is
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
ENTITY_TYPE = f"Entity:{CONTRACTS}"
ENTITY_REFERENCE_TYPE = f"EntityReference:{CONTRACTS}"
OPTION_SET_TYPE = f"OptionSetValue:{CONTRACTS}"
MONEY_TYPE = f"Money:{CONTRACTS}"
OPTION_SET_COLLECTION_TYPE = f"OptionSetValueCollection:{CONTRACTS}"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# ``/Date(1506409448000-0700)/``: the milliseconds are UTC; the offset only says which zone the writer was in.
_DATE = re.compile(r"^/Date\((-?\d{1,15})([+-]\d{4})?\)/$")


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A lookup value: which record, in which table, and its primary name when the payload carried one."""

    id: str
    logical_name: str
    name: str | None = None


Value: TypeAlias = (
    bool | int | float | str | Decimal | datetime | EntityRef | tuple[int, ...] | list[Any] | dict[str, Any] | None
)


class ValueShapeError(ValueError):
    """A value did not have the shape its type promised."""


def parse_net_date(text: str, what: str = "value") -> datetime | None:
    """``/Date(ms)/`` or ``/Date(ms+hhmm)/`` -> aware UTC datetime; ``None`` when ``text`` is not such a date."""
    match = _DATE.match(text)
    if match is None:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    except OverflowError as exc:
        raise ValueShapeError(f"{what}: date out of range: {text!r}") from exc


def format_net_date(value: datetime, *, offset: str | None = None) -> str:
    """The inverse of :func:`parse_net_date` (``offset`` like ``-0700`` is informational, as in Dataverse)."""
    if value.tzinfo is None:
        raise ValueShapeError("naive datetime: Dataverse dates are UTC")
    millis = (value - _EPOCH) // timedelta(milliseconds=1)
    return f"/Date({millis}{offset or ''})/"


def normalize_guid(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueShapeError(f"{what}: expected a GUID string, got {type(value).__name__}")
    return value.strip("{}").lower()


def _to_decimal(raw: object, what: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal | str):
        raise ValueShapeError(f"{what}: expected a number, got {type(raw).__name__}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueShapeError(f"{what}: not a finite number")
    try:
        result = Decimal(str(raw)) if isinstance(raw, float) else Decimal(raw)
    except InvalidOperation as exc:
        raise ValueShapeError(f"{what}: not a number: {raw!r}") from exc
    if not result.is_finite():
        raise ValueShapeError(f"{what}: not a finite number")
    return result


def _option_value(raw: dict[str, Any], what: str) -> int:
    value = raw.get("Value")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueShapeError(f"{what}: OptionSetValue.Value must be an integer")
    return value


def _entity_ref(raw: dict[str, Any], what: str) -> EntityRef:
    logical_name = raw.get("LogicalName")
    if not isinstance(logical_name, str):
        raise ValueShapeError(f"{what}: EntityReference.LogicalName must be a string")
    name = raw.get("Name")
    if name is not None and not isinstance(name, str):
        raise ValueShapeError(f"{what}: EntityReference.Name must be a string or null")
    return EntityRef(normalize_guid(raw.get("Id"), f"{what}: EntityReference.Id"), logical_name, name)


def _is_option(item: object) -> bool:
    return isinstance(item, dict) and str(item.get("__type", "")).startswith("OptionSetValue:")


def decode_context_value(raw: object, what: str = "value") -> Value:
    """One attribute value from a RemoteExecutionContext, in normal form."""
    if raw is None or isinstance(raw, bool | int | str):
        if isinstance(raw, str):
            date = parse_net_date(raw, what)
            if date is not None:
                return date
        return raw
    if isinstance(raw, float):
        return raw
    if isinstance(raw, Decimal):  # the parser reads JSON numbers with a fraction as Decimal; plain ones are floats
        return float(raw)
    if isinstance(raw, list):
        if raw and all(_is_option(item) for item in raw):
            return tuple(_option_value(item, what) for item in raw)
        return [decode_context_value(item, what) for item in raw]
    if isinstance(raw, dict):
        kind = raw.get("__type")
        kind = kind.split(":", 1)[0] if isinstance(kind, str) else None
        if kind == "OptionSetValue":
            return _option_value(raw, what)
        if kind == "Money":
            return _to_decimal(raw.get("Value"), f"{what}: Money.Value")
        if kind == "EntityReference":
            return _entity_ref(raw, what)
        if kind == "OptionSetValueCollection":
            items = raw.get("Value", raw.get("Items"))
            if not isinstance(items, list):
                raise ValueShapeError(f"{what}: OptionSetValueCollection without a list of options")
            return tuple(_option_value(i, what) if isinstance(i, dict) else _int(i, what) for i in items)
        return {str(k): v for k, v in raw.items()}
    raise ValueShapeError(f"{what}: unsupported JSON value of type {type(raw).__name__}")


def _int(raw: object, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueShapeError(f"{what}: option values must be integers")
    return raw


def encode_context_value(value: Value) -> object:
    """A normal-form value back into the RemoteExecutionContext dialect (used to render contexts)."""
    if isinstance(value, datetime):
        return format_net_date(value)
    if isinstance(value, Decimal):
        return {"__type": MONEY_TYPE, "Value": float(value)}
    if isinstance(value, EntityRef):
        return {
            "__type": ENTITY_REFERENCE_TYPE,
            "Id": value.id,
            "KeyAttributes": [],
            "LogicalName": value.logical_name,
            "Name": value.name,
            "RowVersion": None,
        }
    if isinstance(value, tuple):
        return [{"__type": OPTION_SET_TYPE, "Value": v} for v in value]
    return value


def option(value: int) -> dict[str, Any]:
    """An OptionSetValue in the context dialect (an ``int`` alone would render as a plain integer column)."""
    return {"__type": OPTION_SET_TYPE, "Value": value}
