"""Value conversion: every Dataverse type users map, both directions, and clear errors for bad values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.mapping import FieldMapping, FieldType, SyncMapping
from shared.core.values import (
    Canonical,
    ConversionError,
    from_dynamics,
    from_marketo,
    read_dynamics_record,
    read_marketo_record,
)
from shared.core.writes import to_dynamics, to_marketo

OPTIONS = ({"value": 1, "label": "Hot"}, {"value": 2, "label": "Warm"}, {"value": 3, "label": "Cold"})


def field(kind: str, **extra: Any) -> FieldMapping:
    if kind in ("choice", "multi_choice"):
        extra.setdefault("options", OPTIONS)
    if kind == "lookup":
        extra.setdefault("lookup_part", "id")
    return FieldMapping.model_validate({"dynamics": "new_x", "marketo": "x", "type": kind, **extra})


GUID = "5f4e5d3c-2b1a-4c9d-8e7f-6a5b4c3d2e1f"
REF: dict[str, Any] = {
    "__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
    "Id": GUID.upper(),
    "KeyAttributes": [],
    "LogicalName": "systemuser",
    "Name": "Grace Hopper",
    "RowVersion": None,
}


@pytest.mark.parametrize(
    ("kind", "extra", "dynamics_value", "canonical"),
    [
        ("text", {}, "Ada", "Ada"),
        ("text", {}, "", None),
        ("memo", {}, "line one\nline two", "line one\nline two"),
        ("integer", {}, 240, 240),
        ("integer", {}, "240", 240),
        ("bigint", {}, 9007199254740993, 9007199254740993),
        ("decimal", {}, 2154.32, "2154.32"),
        ("decimal", {}, Decimal("2154.320"), "2154.32"),
        ("decimal", {}, 0, "0"),
        ("money", {}, {"__type": "Money:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 2154.32}, "2154.32"),
        ("money", {}, 100, "100"),
        ("double", {}, 87.25, 87.25),
        ("boolean", {}, True, True),
        ("boolean", {}, False, False),
        ("date", {}, "2026-12-15", "2026-12-15"),
        ("date", {}, "/Date(1797292800000)/", "2026-12-15"),
        ("datetime", {}, "/Date(1506384247000)/", "2017-09-26T00:04:07Z"),
        ("datetime", {}, "\\/Date(1506409448000-0700)\\/", "2017-09-26T07:04:08Z"),
        ("datetime", {}, "2017-09-26T00:04:07Z", "2017-09-26T00:04:07Z"),
        ("datetime", {}, "2017-09-26T02:04:07.123+02:00", "2017-09-26T00:04:07Z"),
        ("datetime", {}, datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC), "2017-09-26T00:04:07Z"),
        ("datetime", {}, datetime(2017, 9, 26, 2, 4, 7, tzinfo=timezone(timedelta(hours=2))), "2017-09-26T00:04:07Z"),
        ("choice", {}, 2, 2),
        ("choice", {}, {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 3}, 3),
        ("multi_choice", {}, "3,1", "1;3"),
        ("multi_choice", {}, [{"Value": 3}, {"Value": 1}], "1;3"),
        ("multi_choice", {}, (2,), "2"),
        ("multi_choice", {}, [], None),
        ("lookup", {}, REF, GUID),
        ("lookup", {}, GUID.upper(), GUID),
        ("lookup", {"lookup_part": "name"}, REF, "Grace Hopper"),
        ("text", {}, None, None),
        ("choice", {}, None, None),
    ],
)
def test_dynamics_values_in_every_encoding_read_to_one_canonical_form(
    kind: str, extra: dict[str, Any], dynamics_value: object, canonical: Canonical
) -> None:
    assert from_dynamics(field(kind, **extra), dynamics_value) == canonical


@pytest.mark.parametrize(
    ("kind", "marketo_value", "canonical"),
    [
        ("text", "Ada", "Ada"),
        ("integer", 240, 240),
        ("integer", "240", 240),
        ("money", 2154.32, "2154.32"),
        ("double", "87.25", 87.25),
        ("boolean", "true", True),
        ("boolean", "No", False),
        ("boolean", 1, True),
        ("date", "2026-12-15", "2026-12-15"),
        ("datetime", "2017-09-26T00:04:07Z", "2017-09-26T00:04:07Z"),
        ("datetime", "2017-09-26T00:04:07+0000", "2017-09-26T00:04:07Z"),
        ("choice", "Warm", 2),
        ("choice", " warm ", 2),
        ("choice", "", None),
        ("multi_choice", "Cold;Hot", "1;3"),
        ("multi_choice", "", None),
        ("lookup", GUID.upper(), GUID),
    ],
)
def test_marketo_values_read_to_the_same_canonical_form(kind: str, marketo_value: object, canonical: Canonical) -> None:
    assert from_marketo(field(kind), marketo_value) == canonical


@pytest.mark.parametrize(
    ("kind", "canonical", "to_marketo_value", "to_dynamics_value"),
    [
        ("text", "Ada", "Ada", "Ada"),
        ("money", "2154.32", 2154.32, 2154.32),
        ("decimal", "100", 100.0, 100),
        ("choice", 2, "Warm", 2),
        ("multi_choice", "1;3", "Hot;Cold", "1,3"),
        ("date", "2026-12-15", "2026-12-15", "2026-12-15"),
        ("datetime", "2017-09-26T00:04:07Z", "2017-09-26T00:04:07Z", "2017-09-26T00:04:07Z"),
        ("boolean", False, False, False),
        ("text", None, None, None),
    ],
)
def test_canonical_values_write_in_each_systems_encoding(
    kind: str, canonical: Canonical, to_marketo_value: object, to_dynamics_value: object
) -> None:
    f = field(kind)
    assert to_marketo(f, canonical) == to_marketo_value
    assert to_dynamics(f, canonical) == to_dynamics_value


@pytest.mark.parametrize(
    ("kind", "extra", "reader", "value", "reason"),
    [
        ("integer", {}, from_dynamics, "twelve", "expected a whole number"),
        ("integer", {}, from_dynamics, 2**31, "outside the range"),
        ("integer", {}, from_dynamics, True, "got a boolean"),
        ("integer", {}, from_dynamics, float("nan"), "expected a whole number"),
        ("bigint", {}, from_marketo, 2**63, "outside the range"),
        ("decimal", {}, from_marketo, "12,5", "expected a decimal number"),
        ("double", {}, from_marketo, "inf", "expected a floating-point number"),
        ("boolean", {}, from_marketo, "maybe", "expected yes/no"),
        ("date", {}, from_marketo, "2026-02-30", "not a date"),
        ("datetime", {}, from_dynamics, "/Date(abc)/", "not a date/time"),
        ("datetime", {}, from_marketo, "next tuesday", "not a date/time"),
        ("choice", {}, from_marketo, "Lukewarm", "unknown option label 'Lukewarm'"),
        ("choice", {}, from_dynamics, "Hot", "expected an option value"),
        ("multi_choice", {}, from_marketo, "Hot;Tepid", "unknown option label 'Tepid'"),
        ("multi_choice", {}, from_dynamics, "1,x", "expected option values"),
        ("lookup", {}, from_dynamics, "not-a-guid", "expected a record id"),
        ("text", {}, from_dynamics, ["a"], "expected text"),
    ],
)
def test_a_value_that_cannot_be_read_is_an_error_value_naming_field_and_reason(
    kind: str, extra: dict[str, Any], reader: Any, value: object, reason: str
) -> None:
    result = reader(field(kind, **extra), value)
    assert isinstance(result, ConversionError)
    assert result.field == "new_x"
    assert reason in result.reason
    assert str(result).startswith("field 'new_x': ")


def test_text_longer_than_the_marketo_field_is_an_error_never_truncated() -> None:
    result = to_marketo(field("text", max_length=5), "Lovelace")
    assert isinstance(result, ConversionError)
    assert result.reason == "text of 8 characters is longer than the Marketo field's 5"


def test_text_longer_than_the_dynamics_column_is_an_error_never_truncated() -> None:
    result = to_dynamics(field("text", dynamics_max_length=3), "Lovelace")
    assert isinstance(result, ConversionError)
    assert "longer than the Dynamics field's 3" in result.reason


def test_an_option_value_without_a_label_cannot_be_written_to_marketo() -> None:
    result = to_marketo(field("choice"), 9)
    assert isinstance(result, ConversionError)
    assert "option value 9 has no label" in result.reason


def test_lookups_and_one_way_fields_never_write_to_dynamics() -> None:
    for f in (field("lookup"), field("text", one_way=True)):
        result = to_dynamics(f, GUID)
        assert isinstance(result, ConversionError)
        assert "Dynamics -> Marketo only" in result.reason


def test_records_read_by_mapping_keyed_by_dynamics_column(sample_mapping: SyncMapping) -> None:
    contact = sample_mapping.get("contact")
    dynamics = read_dynamics_record(contact.fields, {"firstname": "Ada", "preferredcontactmethodcode": 2, "x": 1})
    marketo = read_marketo_record(contact.fields, {"firstName": "Ada", "preferredContactMethod": "Email"})
    assert dynamics == {"firstname": "Ada", "preferredcontactmethodcode": 2}
    assert {k: v for k, v in marketo.items() if v is not None} == dynamics
    assert marketo["jobtitle"] is None  # Marketo leaves out requested fields that have no value


# --- properties: a value survives the trip through either system unchanged -----------------------------------

_text = st.text(min_size=1, max_size=60)
_instants = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)

CANONICAL_BY_TYPE: dict[FieldType, st.SearchStrategy[Canonical]] = {
    FieldType.TEXT: _text,
    FieldType.MEMO: _text,
    FieldType.INTEGER: st.integers(-(2**31), 2**31 - 1),
    FieldType.BIGINT: st.integers(-(2**63), 2**63 - 1),
    FieldType.DECIMAL: st.decimals(min_value=-(10**12), max_value=10**12, places=4).map(
        lambda d: from_dynamics(field("decimal"), d)  # type: ignore[arg-type, return-value]
    ),
    FieldType.MONEY: st.decimals(min_value=-(10**12), max_value=10**12, places=2).map(
        lambda d: from_dynamics(field("money"), d)  # type: ignore[arg-type, return-value]
    ),
    FieldType.DOUBLE: st.floats(allow_nan=False, allow_infinity=False),
    FieldType.BOOLEAN: st.booleans(),
    FieldType.DATE: st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)).map(date.isoformat),
    FieldType.DATETIME: _instants.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    FieldType.CHOICE: st.sampled_from([1, 2, 3]),
    FieldType.MULTI_CHOICE: st.sets(st.sampled_from([1, 2, 3]), min_size=1).map(
        lambda s: ";".join(str(v) for v in sorted(s))
    ),
    FieldType.LOOKUP: st.uuids().map(str),
}


@given(st.sampled_from(sorted(CANONICAL_BY_TYPE)).flatmap(lambda k: st.tuples(st.just(k), CANONICAL_BY_TYPE[k])))
def test_canonical_to_marketo_and_back_is_the_identity(case: tuple[FieldType, Canonical]) -> None:
    kind, value = case
    f = field(kind.value)
    wire = to_marketo(f, value)
    assert not isinstance(wire, ConversionError)
    assert from_marketo(f, wire) == value


@given(
    st.sampled_from(sorted(set(CANONICAL_BY_TYPE) - {FieldType.LOOKUP})).flatmap(
        lambda k: st.tuples(st.just(k), CANONICAL_BY_TYPE[k])
    )
)
def test_canonical_to_dynamics_and_back_is_the_identity(case: tuple[FieldType, Canonical]) -> None:
    kind, value = case
    f = field(kind.value)
    wire = to_dynamics(f, value)
    assert not isinstance(wire, ConversionError)
    assert from_dynamics(f, wire) == value


@given(
    st.sampled_from(sorted(FieldType)),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.lists(st.integers()),
        st.dictionaries(st.text(), st.integers()),
    ),
)
def test_reading_any_value_never_raises(kind: FieldType, value: object) -> None:
    f = field(kind.value)
    for reader in (from_dynamics, from_marketo):
        result = reader(f, value)
        assert result is None or isinstance(result, ConversionError | str | int | float | bool)


# --- fast paths: the forms both APIs send read exactly as the general path reads them --------------------------


def _normalised_by_decimal(number: float) -> str:
    as_double = Decimal(repr(number)).normalize()
    return "0" if as_double.is_zero() else format(as_double, "f")


@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70)))
def test_a_decimal_reads_as_its_double_normalised_by_the_decimal_module(value: float) -> None:
    assert from_dynamics(field("decimal"), value) == _normalised_by_decimal(float(value))
    assert from_marketo(field("money"), value) == _normalised_by_decimal(float(value))


@given(_instants)
def test_a_canonical_instant_reads_as_itself_and_other_forms_of_the_moment_read_to_it(moment: datetime) -> None:
    f, text = field("datetime"), moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert from_dynamics(f, text) == from_marketo(f, text) == text
    assert from_dynamics(f, moment.astimezone(timezone(timedelta(hours=-5))).isoformat()) == text


def test_an_instant_in_the_canonical_shape_that_is_no_moment_is_an_error() -> None:
    assert isinstance(from_dynamics(field("datetime"), "2026-02-30T10:00:00Z"), ConversionError)
    assert isinstance(from_marketo(field("datetime"), "2026-11-20T25:00:00Z"), ConversionError)


@given(st.uuids())
def test_a_lookup_reads_any_form_of_a_guid_as_its_lower_case_form(guid: UUID) -> None:
    f = field("lookup")
    for form in (str(guid), str(guid).upper(), "{" + str(guid) + "}"):
        assert from_dynamics(f, form) == from_marketo(f, form) == str(guid)
    name = field("lookup", lookup_part="name")
    assert from_dynamics(name, str(guid)) == from_marketo(name, str(guid)) == str(guid)  # a name, kept as is
    assert from_dynamics(name, str(guid).upper()) == str(guid).upper()
