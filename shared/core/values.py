"""Value conversion between Dataverse, the core's canonical form, and Marketo.

Both systems encode the same value differently (a Dataverse choice is an integer, the Marketo field holds its
label; Dataverse dates arrive as ``/Date(ms)/`` in plugin contexts and as ISO 8601 from the Web API). The core
compares values in one **canonical** form, a JSON scalar, so a baseline can be stored as plain JSON:

    text, memo        str (an empty string is null: neither system tells them apart)
    integer, bigint   int
    decimal, money    str, the normalised decimal as it survives a trip through a double (Marketo stores
                      doubles; comparing at that precision stops a rounded value echoing back as a change)
    double            float
    boolean           bool
    date              "YYYY-MM-DD"
    datetime          "YYYY-MM-DDTHH:MM:SSZ" (UTC, whole seconds: Marketo keeps no fractions)
    choice            int (the option value, stable when labels are renamed)
    multi_choice      "v1;v2" option values in ascending order
    lookup            str (lower-case GUID, or the display name for ``lookup_part: name``)

A value that cannot be converted becomes a :class:`ConversionError` value naming the field and the reason:
never an exception that stops a batch, never a silent truncation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final, TypeGuard
from uuid import UUID

from shared.core.mapping import FieldMapping, FieldType, LookupPart

Canonical = str | int | float | bool | None
"""A value in the core's comparison form (see the module docstring)."""

_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)
_DATE_RE = re.compile(r"^\\?/Date\((-?\d+)(?:[+-]\d{4})?\)\\?/$")
_WHOLE_RE = re.compile(r"\s*[+-]?\d+\s*")
_OPTION_RE = re.compile(r"\s*-?\d+\s*")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CANONICAL_INSTANT_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")  # how both APIs send a UTC instant
_CANONICAL_GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PLAIN: Final = (str, int, float)  # never a plugin context's wrapper (isinstance of Mapping is an ABC check)
_ID: Final = LookupPart.ID
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


@dataclass(frozen=True, slots=True)
class ConversionError:
    """A value that could not be converted; recorded as a record-level sync error."""

    field: str
    target: str  # "canonical", "marketo" or "dynamics": what we were converting into
    reason: str
    source: str = ""  # reading into "canonical": the side the value came from, "dynamics" or "marketo"

    def __str__(self) -> str:
        return f"field '{self.field}': {self.reason}"


class _Invalid(Exception):
    """Internal: raised by converters, turned into a ConversionError value at the boundary."""


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- into canonical -------------------------------------------------------------------------------------


def _text(value: object, _: FieldMapping) -> Canonical:
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    raise _Invalid(f"expected text, got {type(value).__name__} {_preview(value)}")


def _is_whole(value: float | Decimal) -> bool:
    try:
        return math.isfinite(value) and value == int(value)
    except (ValueError, ArithmeticError):  # signalling NaN and friends
        return False


def _integer(bounds: tuple[int, int]) -> Callable[[object, FieldMapping], Canonical]:
    def convert(value: object, _: FieldMapping) -> Canonical:
        if isinstance(value, bool):
            raise _Invalid(f"expected a whole number, got a boolean {value}")
        if isinstance(value, int):
            number = value
        elif (isinstance(value, float | Decimal) and _is_whole(value)) or (
            isinstance(value, str) and _WHOLE_RE.fullmatch(value)
        ):
            number = int(value)
        elif value == "":
            return None
        else:
            raise _Invalid(f"expected a whole number, got {_preview(value)}")
        if not bounds[0] <= number <= bounds[1]:
            raise _Invalid(f"{number} is outside the range {bounds[0]}..{bounds[1]}")
        return number

    return convert


def _unwrap_value(value: object) -> object:
    """OptionSetValue / Money objects as they appear in plugin contexts: ``{"Value": x}``."""
    if not isinstance(value, _PLAIN) and isinstance(value, Mapping) and "Value" in value:
        return value["Value"]
    return value


def _as_float(value: object) -> float:
    try:
        return float(value) if isinstance(value, (int, float, Decimal, str)) else math.nan
    except (ValueError, ArithmeticError):
        return math.nan


def _finite_number(value: object, kind: str) -> float | None:
    """A number in any side's encoding (None for an empty string); booleans and NaN or infinity refused."""
    if isinstance(value, bool):
        raise _Invalid(f"expected a number, got a boolean {value}")
    if value == "":
        return None
    number = _as_float(value)
    if not math.isfinite(number):
        raise _Invalid(f"expected {kind}, got {_preview(value)}")
    return number


def _decimal(value: object, _: FieldMapping) -> Canonical:
    number = _finite_number(_unwrap_value(value), "a decimal number")
    if number is None:
        return None
    text = repr(number)
    if "e" not in text:  # positional already: its normalised form is itself without a trailing ".0"
        text = text[:-2] if text.endswith(".0") else text
        return "0" if text == "-0" else text
    as_double = Decimal(text).normalize()
    return "0" if as_double.is_zero() else format(as_double, "f")


def _double(value: object, _: FieldMapping) -> Canonical:
    return _finite_number(value, "a floating-point number")


def _boolean(value: object, _: FieldMapping) -> Canonical:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        if word == "":
            return None
    raise _Invalid(f"expected yes/no, got {_preview(value)}")


def _instant(value: object) -> datetime:
    """Any of the encodings of a point in time, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        match = _DATE_RE.match(text)
        if match:
            # The milliseconds are UTC; a trailing offset only says where the user was.
            return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid(f"not a date/time: {_preview(value)}") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise _Invalid(f"expected a date/time, got {type(value).__name__} {_preview(value)}")


def _date(value: object, _: FieldMapping) -> Canonical:
    if value == "":
        return None
    if isinstance(value, str) and _ISO_DATE_RE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise _Invalid(f"not a date: {_preview(value)}") from None
    return _instant(value).date().isoformat()


def _datetime(value: object, _: FieldMapping) -> Canonical:
    if value == "":
        return None
    if type(value) is str and _CANONICAL_INSTANT_RE.fullmatch(value):
        try:
            datetime.fromisoformat(value)  # a real moment: the slow path below says why not
        except ValueError:
            pass
        else:
            return value  # already canonical: what parsing and formatting it again would give
    return _instant(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _choice_from_dynamics(value: object, field: FieldMapping) -> Canonical:
    value = _unwrap_value(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an option value, got {_preview(value)}")
    return value


def _label_to_value(label: str, field: FieldMapping) -> int:
    found = field.values_by_label.get(label.strip().casefold())
    if found is None:
        known = ", ".join(repr(o.label) for o in field.options[:10])
        raise _Invalid(f"unknown option label {_preview(label)} (known: {known})")
    return found


def _choice_from_marketo(value: object, field: FieldMapping) -> Canonical:
    if isinstance(value, str):
        return _label_to_value(value, field) if value.strip() else None
    raise _Invalid(f"expected an option label, got {_preview(value)}")


def _join_options(values: list[int]) -> Canonical:
    return ";".join(str(v) for v in sorted(set(values))) or None


def _multi_from_dynamics(value: object, field: FieldMapping) -> Canonical:
    if isinstance(value, str):  # Web API: "1,3"
        parts = [p for p in value.split(",") if p.strip()]
        if not all(_OPTION_RE.fullmatch(p) for p in parts):
            raise _Invalid(f"expected option values like '1,3', got {_preview(value)}")
        return _join_options([int(p) for p in parts])
    if isinstance(value, list | tuple):
        items = [_unwrap_value(v) for v in value]
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            raise _Invalid(f"expected a list of option values, got {_preview(value)}")
        return _join_options([i for i in items if isinstance(i, int)])
    raise _Invalid(f"expected option values, got {_preview(value)}")


def _multi_from_marketo(value: object, field: FieldMapping) -> Canonical:
    if not isinstance(value, str):
        raise _Invalid(f"expected ';'-separated option labels, got {_preview(value)}")
    return _join_options([_label_to_value(p, field) for p in value.split(";") if p.strip()])


def _canonical_id(value: object, field: FieldMapping) -> TypeGuard[str]:
    """A lower-case GUID for a lookup's id, the form both APIs send: already what ``str(UUID(value))`` gives."""
    return type(value) is str and _CANONICAL_GUID_RE.fullmatch(value) is not None and field.lookup_part is _ID


def _lookup_from_dynamics(value: object, field: FieldMapping) -> Canonical:
    if _canonical_id(value, field):
        return value
    if isinstance(value, Mapping):  # EntityReference as it appears in a plugin context
        ref_id, ref_name = value.get("Id"), value.get("Name")
    elif hasattr(value, "id"):  # a parsed reference value
        ref_id, ref_name = getattr(value, "id", None), getattr(value, "name", None)
    else:
        ref_id, ref_name = value, value
    if field.lookup_part is LookupPart.NAME:
        if ref_name is None or isinstance(ref_name, str):
            return ref_name or None
        raise _Invalid(f"expected a display name, got {_preview(ref_name)}")
    try:
        return str(UUID(str(ref_id))) if ref_id not in (None, "") else None
    except ValueError:
        raise _Invalid(f"expected a record id (GUID), got {_preview(ref_id)}") from None


def _lookup_from_marketo(value: object, field: FieldMapping) -> Canonical:
    if _canonical_id(value, field):
        return value
    if field.lookup_part is LookupPart.NAME:
        return _text(value, field)
    if not isinstance(value, str):
        raise _Invalid(f"expected a record id (GUID), got {_preview(value)}")
    try:
        return str(UUID(value)) if value else None
    except ValueError:
        raise _Invalid(f"expected a record id (GUID), got {_preview(value)}") from None


Reader = Callable[[object, FieldMapping], Canonical]

_FROM_DYNAMICS: Final[dict[FieldType, Reader]] = {
    FieldType.TEXT: _text,
    FieldType.MEMO: _text,
    FieldType.INTEGER: _integer(_INT32),
    FieldType.BIGINT: _integer(_INT64),
    FieldType.DECIMAL: _decimal,
    FieldType.MONEY: _decimal,
    FieldType.DOUBLE: _double,
    FieldType.BOOLEAN: _boolean,
    FieldType.DATE: _date,
    FieldType.DATETIME: _datetime,
    FieldType.CHOICE: _choice_from_dynamics,
    FieldType.MULTI_CHOICE: _multi_from_dynamics,
    FieldType.LOOKUP: _lookup_from_dynamics,
}
_FROM_MARKETO: Final[dict[FieldType, Reader]] = {
    **_FROM_DYNAMICS,
    FieldType.CHOICE: _choice_from_marketo,
    FieldType.MULTI_CHOICE: _multi_from_marketo,
    FieldType.LOOKUP: _lookup_from_marketo,
}


def _read(
    table: Mapping[FieldType, Reader], field: FieldMapping, value: object, source: str
) -> Canonical | ConversionError:
    if value is None:
        return None
    try:
        return table[field.type](value, field)
    except _Invalid as exc:
        return ConversionError(field.dynamics, "canonical", str(exc), source)


def from_dynamics(field: FieldMapping, value: object) -> Canonical | ConversionError:
    """A Dataverse value (Web API JSON or plugin-context encoding) in canonical form."""
    return _read(_FROM_DYNAMICS, field, value, "dynamics")


def from_marketo(field: FieldMapping, value: object) -> Canonical | ConversionError:
    """A Marketo value (REST JSON or webhook token text) in canonical form."""
    return _read(_FROM_MARKETO, field, value, "marketo")


_Reading = tuple[str, str, Reader, FieldMapping]  # the column, the name the side knows it by, its reader, the field
_READINGS: dict[tuple[int, str], tuple[tuple[FieldMapping, ...], tuple[_Reading, ...]]] = {}
_ABSENT: Final = object()  # a name missing from a Dataverse record: its column is left out


def _readings(fields: tuple[FieldMapping, ...], source: str) -> tuple[_Reading, ...]:
    """Each field's reader for one side, looked up once per fields tuple (mappings are immutable and few): a
    record's read then costs one call per field."""
    cached = _READINGS.get((id(fields), source))
    if cached is not None and cached[0] is fields:
        return cached[1]
    table = _FROM_DYNAMICS if source == "dynamics" else _FROM_MARKETO
    readings = tuple((f.dynamics, f.dynamics if source == "dynamics" else f.marketo, table[f.type], f) for f in fields)
    if len(_READINGS) > 256:  # mappings are reloaded now and then; never let old ones pile up
        _READINGS.clear()
    _READINGS[(id(fields), source)] = (fields, readings)
    return readings


def _read_record(
    readings: tuple[_Reading, ...], record: Mapping[str, object], source: str, absent: object
) -> dict[str, Canonical | ConversionError]:
    """``absent``: what a name missing from the record reads as (``_ABSENT``: the column is left out)."""
    found: dict[str, Canonical | ConversionError] = {}
    get = record.get
    for column, name, reader, field in readings:
        value = get(name, absent)
        if value is None:
            found[column] = None
        elif value is not _ABSENT:
            try:
                found[column] = reader(value, field)
            except _Invalid as exc:
                found[column] = ConversionError(column, "canonical", str(exc), source)
    return found


def read_dynamics_record(
    fields: tuple[FieldMapping, ...], record: Mapping[str, object]
) -> dict[str, Canonical | ConversionError]:
    """Canonical values of a Dataverse record, keyed by column; columns absent from the record are left out."""
    return _read_record(_readings(fields, "dynamics"), record, "dynamics", _ABSENT)


def read_marketo_record(
    fields: tuple[FieldMapping, ...], record: Mapping[str, object]
) -> dict[str, Canonical | ConversionError]:
    """Canonical values of a Marketo record, keyed by the *Dynamics* column they pair with.

    Marketo leaves requested fields without a value out of its answer ("if a particular field is requested but
    not returned, the value is implied to be null"), so a missing field reads as null.
    """
    return _read_record(_readings(fields, "marketo"), record, "marketo", None)


def modified_time(value: object) -> datetime | None:
    """A record's modified time as either side sends it (Dataverse ``modifiedon``, Marketo ``updatedAt``: ISO 8601
    with a ``Z`` or an offset, or a datetime already), in UTC; None when absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
