"""From a Dataverse column's metadata to the mapped field the sync converts it as.

Pure: the caller reads the metadata (attribute type, lengths, options, date-only behaviour) and hands it over as
:class:`ColumnFacts`; what comes back is a :class:`FieldMapping` or the reason, in words, why the column cannot be
mapped. The same rules serve the fields endpoints and anything else that maps a column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.core.mapping import FieldMapping, FieldState, FieldType, LookupPart

TYPES: dict[str, FieldType] = {
    "String": FieldType.TEXT,
    "Memo": FieldType.MEMO,
    "Integer": FieldType.INTEGER,
    "BigInt": FieldType.BIGINT,
    "Decimal": FieldType.DECIMAL,
    "Double": FieldType.DOUBLE,
    "Money": FieldType.MONEY,
    "Boolean": FieldType.BOOLEAN,
    "DateTime": FieldType.DATETIME,
    "Picklist": FieldType.CHOICE,
    "State": FieldType.CHOICE,
    "Status": FieldType.CHOICE,
    "MultiSelectPicklist": FieldType.MULTI_CHOICE,
    "Virtual": FieldType.MULTI_CHOICE,  # the Web API reports multi-select choices as Virtual
    "Lookup": FieldType.LOOKUP,
    "Customer": FieldType.LOOKUP,
    "Owner": FieldType.LOOKUP,
}
"""Dataverse AttributeType -> the value type the sync converts it as."""

OPTION_METADATA: dict[str, str] = {
    "Picklist": "Picklist",
    "State": "State",
    "Status": "Status",
    "MultiSelectPicklist": "MultiSelectPicklist",
    "Virtual": "MultiSelectPicklist",
}
"""AttributeType -> the metadata cast its options are read from."""


@dataclass(frozen=True, slots=True)
class ColumnFacts:
    """What Dataverse metadata says about one column, as far as mapping it is concerned."""

    attribute_type: str
    max_length: int | None = None
    options: dict[int, str] | None = None  # None: not read (or not a choice)
    date_only: bool = False


def derive_type(facts: ColumnFacts) -> FieldType | str:
    """The value type of a column, or why it cannot be synced."""
    kind = TYPES.get(facts.attribute_type)
    if kind is None:
        return f"columns of type {facts.attribute_type} cannot be synced"
    if facts.attribute_type == "Virtual" and not facts.options:
        return "columns of type Virtual cannot be synced unless they are multi-select choices"
    if kind is FieldType.DATETIME and facts.date_only:
        return FieldType.DATE
    return kind


def build_field(
    facts: ColumnFacts,
    *,
    dynamics: str,
    marketo: str,
    one_way: bool = False,
    lookup_part: LookupPart | None = None,
    marketo_length: int | None = None,
    state: FieldState = FieldState.AWAITING_QUICK_SYNC,
) -> FieldMapping | str:
    """The mapped field for a column, or why it cannot be mapped (type, options or lengths that do not fit)."""
    kind = derive_type(facts)
    if not isinstance(kind, FieldType):  # FieldType is a str too: test for it, not for the reason
        return kind
    values: dict[str, Any] = {"dynamics": dynamics, "marketo": marketo, "type": kind, "state": state}
    if one_way:
        values["one_way"] = True
    if kind in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
        values["options"] = [{"value": v, "label": label} for v, label in sorted((facts.options or {}).items())]
    if kind in (FieldType.TEXT, FieldType.MEMO):
        values["dynamics_max_length"] = facts.max_length
        values["max_length"] = marketo_length
    if lookup_part is not None:
        if kind is not FieldType.LOOKUP:
            return f"lookup_part is only for lookup columns, not {facts.attribute_type}"
        values["lookup_part"] = lookup_part
    try:
        return FieldMapping.model_validate(values)
    except ValidationError as exc:
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
