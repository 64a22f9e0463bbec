"""Canonical values out into each system's wire form: the write half of :mod:`shared.core.values`.

Each field's conversion is built once (:func:`writer`), so the reconcile loop converts a value in one call that
reads nothing from the field; :func:`to_marketo` and :func:`to_dynamics` are the same conversions for one value.
A value either side cannot take becomes a :class:`ConversionError` value, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from shared.core.mapping import FieldMapping, FieldType
from shared.core.values import Canonical, ConversionError, _Invalid

Writer = Callable[[Canonical], Any]
"""A field's write conversion: a canonical value in one system's wire form, or a ConversionError."""

# Enum members named once: Python 3.11 looks ``FieldType.X`` up at ~100-200 ns a time.
_TEXTUAL: Final = frozenset({FieldType.TEXT, FieldType.MEMO})
_DECIMALS: Final = frozenset({FieldType.DECIMAL, FieldType.MONEY})
_CHOICE: Final = FieldType.CHOICE
_MULTI_CHOICE: Final = FieldType.MULTI_CHOICE
_WRITE_FAILURES: Final = (_Invalid, InvalidOperation, ValueError)
_WRITERS: dict[tuple[int, str], tuple[FieldMapping, Writer]] = {}


def to_marketo(field: FieldMapping, value: Canonical) -> Any:
    """The JSON value to send to Marketo for a canonical value, or a ConversionError."""
    return writer(field, "marketo")(value)


def to_dynamics(field: FieldMapping, value: Canonical) -> Any:
    """The Web API JSON value to PATCH into Dataverse for a canonical value, or a ConversionError."""
    return writer(field, "dynamics")(value)


def writer(field: FieldMapping, target: str) -> Writer:
    """The field's write conversion into ``target`` ("marketo" or "dynamics"), built once per field (mappings are
    immutable and few), so a hot loop converts a value in one call that reads nothing from the field."""
    cached = _WRITERS.get((id(field), target))
    if cached is not None and cached[0] is field:
        return cached[1]
    convert = _marketo_writer(field) if target == "marketo" else _dynamics_writer(field)
    if len(_WRITERS) > 4096:  # mappings are reloaded now and then; never let old ones pile up
        _WRITERS.clear()
    _WRITERS[(id(field), target)] = (field, convert)
    return convert


def _unchanged(value: Canonical) -> Any:
    return value


def _text_writer(column: str, target: str, limit: int | None, system: str) -> Writer:
    if limit is None:
        return _unchanged

    def text(value: Canonical) -> Any:
        if isinstance(value, str) and len(value) > limit:
            return ConversionError(
                column, target, f"text of {len(value)} characters is longer than the {system} field's {limit}"
            )
        return value

    return text


def _guarded(column: str, target: str, convert: Writer) -> Writer:
    """``convert`` with its failures as ConversionError values, and null passed through."""

    def write(value: Canonical) -> Any:
        if value is None:
            return None
        try:
            return convert(value)
        except _WRITE_FAILURES as exc:
            return ConversionError(column, target, str(exc))

    return write


def _marketo_writer(field: FieldMapping) -> Writer:
    kind, column = field.type, field.dynamics
    if kind in _TEXTUAL:
        return _text_writer(column, "marketo", field.max_length, "Marketo")
    if kind in _DECIMALS:
        return _guarded(column, "marketo", lambda value: float(value) if isinstance(value, str) else value)
    if kind is _CHOICE:
        labels = field.labels_by_value

        def choice(value: Canonical) -> Any:
            if isinstance(value, int):
                label = labels.get(value)
                if label is None:
                    raise _Invalid(f"option value {value} has no label in the mapping's option metadata (refresh it)")
                return label
            return value

        return _guarded(column, "marketo", choice)
    if kind is _MULTI_CHOICE:
        order = field.option_order

        def multi_choice(value: Canonical) -> Any:
            if not isinstance(value, str):
                return value
            return ";".join(sorted(_labels(field, value), key=lambda lbl: order[field.values_by_label[lbl.casefold()]]))

        return _guarded(column, "marketo", multi_choice)
    return _unchanged


def _dynamics_writer(field: FieldMapping) -> Writer:
    kind, column = field.type, field.dynamics
    if not field.to_dynamics_allowed:
        return lambda value: (
            None if value is None else ConversionError(column, "dynamics", "this field syncs Dynamics -> Marketo only")
        )
    if kind in _TEXTUAL:
        return _text_writer(column, "dynamics", field.dynamics_max_length, "Dynamics")
    if kind in _DECIMALS:

        def decimal(value: Canonical) -> Any:
            if not isinstance(value, str):
                return value
            number = Decimal(value)  # a JSON number for the Web API (canonical decimals are already double-exact)
            return int(number) if number == number.to_integral_value() else float(number)

        return _guarded(column, "dynamics", decimal)
    if kind is _MULTI_CHOICE:
        return _guarded(
            column, "dynamics", lambda value: ",".join(value.split(";")) if isinstance(value, str) else value
        )
    if kind is _CHOICE:
        options = field.labels_by_value

        def choice(value: Canonical) -> Any:
            if isinstance(value, int) and value not in options:
                raise _Invalid(f"option value {value} is not an option of this Dynamics column")
            return value

        return _guarded(column, "dynamics", choice)
    return _unchanged


def _labels(field: FieldMapping, canonical: str) -> list[str]:
    labels = []
    for part in canonical.split(";"):
        label = field.labels_by_value.get(int(part))
        if label is None:
            raise _Invalid(f"option value {part} has no label in the mapping's option metadata (refresh it)")
        labels.append(label)
    return labels
