"""From Dataverse column metadata to the mapped field: value types, the built field, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.fields import ColumnFacts, build_field, derive_type
from shared.core.mapping import FieldState, FieldType, LookupPart

CHOICES = {1: "Bronze", 2: "Silver"}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (ColumnFacts("String", 100), FieldType.TEXT),
        (ColumnFacts("Memo"), FieldType.MEMO),
        (ColumnFacts("Integer"), FieldType.INTEGER),
        (ColumnFacts("BigInt"), FieldType.BIGINT),
        (ColumnFacts("Decimal"), FieldType.DECIMAL),
        (ColumnFacts("Double"), FieldType.DOUBLE),
        (ColumnFacts("Money"), FieldType.MONEY),
        (ColumnFacts("Boolean", options={0: "No", 1: "Yes"}), FieldType.BOOLEAN),
        (ColumnFacts("DateTime"), FieldType.DATETIME),
        (ColumnFacts("DateTime", date_only=True), FieldType.DATE),
        (ColumnFacts("Picklist", options=CHOICES), FieldType.CHOICE),
        (ColumnFacts("State", options=CHOICES), FieldType.CHOICE),
        (ColumnFacts("Status", options=CHOICES), FieldType.CHOICE),
        (ColumnFacts("MultiSelectPicklist", options=CHOICES), FieldType.MULTI_CHOICE),
        (ColumnFacts("Virtual", options=CHOICES), FieldType.MULTI_CHOICE),
        (ColumnFacts("Lookup"), FieldType.LOOKUP),
        (ColumnFacts("Customer"), FieldType.LOOKUP),
        (ColumnFacts("Owner"), FieldType.LOOKUP),
    ],
)
def test_value_type_follows_the_dataverse_attribute_type(facts: ColumnFacts, expected: FieldType) -> None:
    assert derive_type(facts) is expected


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (ColumnFacts("Uniqueidentifier"), "columns of type Uniqueidentifier cannot be synced"),
        (ColumnFacts("PartyList"), "columns of type PartyList cannot be synced"),
        (ColumnFacts("EntityName"), "columns of type EntityName cannot be synced"),
        (ColumnFacts("Image"), "columns of type Image cannot be synced"),
        (ColumnFacts("Virtual"), "columns of type Virtual cannot be synced unless they are multi-select choices"),
    ],
)
def test_unsupported_types_are_named(facts: ColumnFacts, reason: str) -> None:
    assert derive_type(facts) == reason
    assert not isinstance(derive_type(facts), FieldType)


@pytest.mark.parametrize(
    ("facts", "extra", "expected"),
    [
        (
            ColumnFacts("String", 80),
            {"marketo_length": 255},
            {"type": "text", "dynamics_max_length": 80, "max_length": 255},
        ),
        (ColumnFacts("Memo", None), {}, {"type": "memo"}),
        (
            ColumnFacts("Picklist", options={3: "Gold", 1: "Bronze"}),
            {},
            {"type": "choice", "options": [{"value": 1, "label": "Bronze"}, {"value": 3, "label": "Gold"}]},
        ),
        (ColumnFacts("Lookup"), {"lookup_part": LookupPart.NAME}, {"type": "lookup", "lookup_part": "name"}),
        (ColumnFacts("Money"), {"one_way": True}, {"type": "money", "one_way": True}),
        (ColumnFacts("DateTime", date_only=True), {}, {"type": "date"}),
    ],
)
def test_the_built_field_carries_metadata_and_waits_for_its_quick_sync(
    facts: ColumnFacts, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    built = build_field(facts, dynamics="new_x", marketo="x", **extra)
    assert not isinstance(built, str)
    assert built.state is FieldState.AWAITING_QUICK_SYNC
    dumped = built.model_dump(mode="json", exclude_defaults=True)
    assert {k: dumped[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("facts", "extra", "problem"),
    [
        (ColumnFacts("Picklist", options={}), {}, "choice field needs its option metadata"),
        (ColumnFacts("Picklist", options={1: "A", 2: "a"}), {}, "option labels must be unique"),
        (ColumnFacts("MultiSelectPicklist", options={1: "A;B"}), {}, "cannot contain ';'"),
        (ColumnFacts("Picklist", options={1: ""}), {}, "at least 1 character"),
        (ColumnFacts("String", 10), {"lookup_part": LookupPart.ID}, "lookup_part is only for lookup columns"),
        (ColumnFacts("Uniqueidentifier"), {}, "cannot be synced"),
    ],
)
def test_metadata_that_does_not_fit_is_refused_with_the_reason(
    facts: ColumnFacts, extra: dict[str, Any], problem: str
) -> None:
    built = build_field(facts, dynamics="new_x", marketo="x", **extra)
    assert isinstance(built, str)
    assert problem in built
