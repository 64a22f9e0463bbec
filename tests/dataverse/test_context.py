from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.dataverse.context import ContextError, dumps_context, parse_context, render_context
from shared.dataverse.values import EntityRef, option

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dataverse"
CONTRACTS = "http:\\/\\/schemas.microsoft.com\\/xrm\\/2011\\/Contracts"


def _doc_payload() -> bytes:
    return (FIXTURES / "webhook_update_contact.json").read_bytes()


def test_parses_the_documented_webhook_example() -> None:
    ctx = parse_context(_doc_payload())

    assert ctx.message_name == "Update"
    assert ctx.primary_entity_name == "contact"
    assert ctx.primary_entity_id == "6d81597f-0f9f-e711-8122-000d3aa2331c"
    assert ctx.initiating_user_id == ctx.user_id == "75c2dd85-e89e-e711-8122-000d3aa2331c"
    assert ctx.depth == 1
    assert ctx.stage == 40
    assert ctx.mode == 1
    assert ctx.correlation_id == "b374239d-4233-41a9-8b17-a86cb4f737b5"
    assert ctx.operation_id == "4af10637-4ea2-e711-8122-000d3aa2331c"
    assert ctx.organization_name == "OrgName"
    assert ctx.organization_id == "4ef5b371-e89e-e711-8122-000d3aa2331c"
    # /Date(1506409448000-0700)/: the milliseconds are UTC, the offset only names the writer's zone
    assert ctx.operation_created_on == datetime(2017, 9, 26, 7, 4, 8, tzinfo=UTC)
    assert not ctx.size_exceeded

    attrs = ctx.changed_attributes
    assert attrs["firstname"] == "James"
    assert attrs["modifiedon"] == datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC)
    assert attrs["modifiedby"] == EntityRef("75c2dd85-e89e-e711-8122-000d3aa2331c", "systemuser", None)
    assert attrs["modifiedonbehalfby"] is None
    post = ctx.image("post")
    assert post is not None
    assert post.attributes["fullname"] == "James Glynn (sample)"
    assert ctx.pre_images == {}


def test_model_is_frozen_and_read_only() -> None:
    ctx = parse_context(_doc_payload())
    with pytest.raises(AttributeError):
        ctx.depth = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.changed_attributes["firstname"] = "x"  # type: ignore[index]


def _context_with(attributes: list[dict[str, Any]], formatted: list[dict[str, Any]] | None = None) -> str:
    target = {
        "__type": f"Entity:{CONTRACTS}",
        "Attributes": attributes,
        "FormattedValues": formatted or [],
        "Id": "6d81597f-0f9f-e711-8122-000d3aa2331c",
        "LogicalName": "lead",
    }
    base = json.loads(_doc_payload())
    base["InputParameters"] = [{"key": "Target", "value": target}]
    return json.dumps(base).replace("/", "\\/")


def test_every_value_encoding_is_normalised() -> None:
    ref: dict[str, Any] = {
        "__type": f"EntityReference:{CONTRACTS}",
        "Id": "{C7877889-0F5F-EE11-8DEF-000D3ADBEF1F}",
        "KeyAttributes": [],
        "LogicalName": "systemuser",
        "Name": "Ada",
        "RowVersion": None,
    }
    attrs: list[dict[str, Any]] = [
        {"key": "date", "value": "/Date(1697526000000)/"},
        {"key": "date_offset", "value": "/Date(1506409448000-0700)/"},
        {"key": "date_negative", "value": "/Date(-86400000)/"},
        {"key": "choice", "value": {"__type": f"OptionSetValue:{CONTRACTS}", "Value": 342490000}},
        {"key": "money", "value": {"__type": f"Money:{CONTRACTS}", "Value": 2154.32}},
        {"key": "money_int", "value": {"__type": f"Money:{CONTRACTS}", "Value": 100}},
        {"key": "owner", "value": ref},
        {
            "key": "choices",
            "value": [
                {"__type": f"OptionSetValue:{CONTRACTS}", "Value": 1},
                {"__type": f"OptionSetValue:{CONTRACTS}", "Value": 2},
            ],
        },
        {
            "key": "choices_collection",
            "value": {"__type": f"OptionSetValueCollection:{CONTRACTS}", "Value": [{"Value": 3}, {"Value": 4}]},
        },
        {"key": "flag", "value": False},
        {"key": "count", "value": 321},
        {"key": "ratio", "value": 10.12},
        {"key": "name", "value": "plain"},
        {"key": "nothing", "value": None},
    ]
    formatted = [{"key": "choice", "value": "Zero"}, {"key": "money", "value": "€2,154.32"}]
    ctx = parse_context(_context_with(attrs, formatted))
    got = ctx.changed_attributes

    assert got["date"] == datetime(2023, 10, 17, 7, 0, tzinfo=UTC)
    assert got["date_offset"] == datetime(2017, 9, 26, 7, 4, 8, tzinfo=UTC)
    assert got["date_negative"] == datetime(1969, 12, 31, tzinfo=UTC)
    assert got["choice"] == 342490000
    assert got["money"] == Decimal("2154.32")
    assert isinstance(got["money"], Decimal)
    assert got["money_int"] == Decimal(100)
    assert got["owner"] == EntityRef("c7877889-0f5f-ee11-8def-000d3adbef1f", "systemuser", "Ada")
    assert got["choices"] == (1, 2)
    assert got["choices_collection"] == (3, 4)
    assert got["flag"] is False
    assert got["count"] == 321
    assert got["ratio"] == pytest.approx(10.12)
    assert isinstance(got["ratio"], float)
    assert got["name"] == "plain"
    assert got["nothing"] is None
    assert ctx.formatted_values == {"choice": "Zero", "money": "€2,154.32"}


def test_delete_target_is_an_entity_reference() -> None:
    body = render_context(
        message_name="Delete",
        entity_name="lead",
        entity_id="6d81597f-0f9f-e711-8122-000d3aa2331c",
        user_id="75c2dd85-e89e-e711-8122-000d3aa2331c",
        pre_images={"pre": {"emailaddress1": "a@example.com"}},
    )
    ctx = parse_context(dumps_context(body))
    assert ctx.message_name == "Delete"
    assert ctx.target is None
    assert ctx.target_reference == EntityRef("6d81597f-0f9f-e711-8122-000d3aa2331c", "lead", None)
    pre = ctx.image("pre")
    assert pre is not None
    assert pre.attributes == {"emailaddress1": "a@example.com"}


def test_size_exceeded_context_still_names_the_record() -> None:
    body = json.loads(_doc_payload())
    for key in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
        del body[key]
    ctx = parse_context(json.dumps(body))
    assert ctx.size_exceeded
    assert ctx.primary_entity_name == "contact"
    assert ctx.primary_entity_id == "6d81597f-0f9f-e711-8122-000d3aa2331c"
    assert ctx.target is None
    assert ctx.changed_attributes == {}
    # the header wins when the caller has it
    assert parse_context(_doc_payload(), size_exceeded=True).size_exceeded


def test_render_round_trips_through_the_parser() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    body = render_context(
        message_name="Create",
        entity_name="lead",
        entity_id="11111111-2222-3333-4444-555555555555",
        user_id="aaaaaaaa-0000-0000-0000-000000000001",
        initiating_user_id="aaaaaaaa-0000-0000-0000-000000000002",
        attributes={
            "createdon": when,
            "revenue": Decimal("12.50"),
            "leadsourcecode": option(3),
            "new_interests": (1, 2),
            "parentaccountid": EntityRef("bbbbbbbb-0000-0000-0000-000000000001", "account", "Contoso"),
        },
        post_images={"post": {"emailaddress1": "x@example.com"}},
        depth=2,
    )
    raw = dumps_context(body)
    assert b"\\/Date(" in raw  # escaped like Dataverse writes it
    ctx = parse_context(raw)
    assert ctx.initiating_user_id == "aaaaaaaa-0000-0000-0000-000000000002"
    assert ctx.depth == 2
    attrs = ctx.changed_attributes
    assert attrs["createdon"] == when
    assert attrs["revenue"] == Decimal("12.5")
    assert attrs["leadsourcecode"] == 3
    assert attrs["new_interests"] == (1, 2)
    assert attrs["parentaccountid"] == EntityRef("bbbbbbbb-0000-0000-0000-000000000001", "account", "Contoso")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda b: b.pop("MessageName"), "missing key 'MessageName'"),
        (lambda b: b.update(Depth="1"), "context.Depth: expected int, got str"),
        (lambda b: b.update(Depth=True), "context.Depth: expected int, got bool"),
        (lambda b: b.update(PrimaryEntityId="not-a-guid"), "PrimaryEntityId: not a GUID"),
        (lambda b: b.update(InputParameters={"Target": 3}), "expected an Entity or EntityReference, got int"),
        (lambda b: b.update(InputParameters=[{"value": 1}]), "InputParameters[0]: missing key 'key'"),
        (lambda b: b.update(InputParameters=7), "expected a list of key/value pairs, got int"),
        (lambda b: b.update(OperationCreatedOn="yesterday"), "not a /Date(...)/ value"),
        (lambda b: b.update(PostEntityImages=[{"key": "post", "value": "x"}]), "expected an entity object"),
    ],
)
def test_malformed_contexts_raise_context_error_naming_the_problem(mutate: Any, expected: str) -> None:
    body = json.loads(_doc_payload())
    mutate(body)
    with pytest.raises(ContextError) as info:
        parse_context(json.dumps(body))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ({"__type": f"OptionSetValue:{CONTRACTS}", "Value": "1"}, "OptionSetValue.Value must be an integer"),
        ({"__type": f"Money:{CONTRACTS}", "Value": "abc"}, "Money.Value: not a number"),
        ({"__type": f"Money:{CONTRACTS}", "Value": None}, "Money.Value: expected a number"),
        ({"__type": f"EntityReference:{CONTRACTS}", "Id": 5, "LogicalName": "x"}, "expected a GUID string"),
        ("/Date(999999999999999)/", "date out of range"),
    ],
)
def test_malformed_values_raise_context_error(attribute: Any, expected: str) -> None:
    with pytest.raises(ContextError, match="Attributes\\['bad'\\]") as info:
        parse_context(_context_with([{"key": "bad", "value": attribute}]))
    assert expected in str(info.value)


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe", b"[]", b"null", b"{", "\ufeff[1]", b'{"MessageName": 1}'])
def test_non_context_payloads_raise_context_error(payload: bytes | str) -> None:
    with pytest.raises(ContextError):
        parse_context(payload)


def test_bom_prefixed_body_parses() -> None:
    assert parse_context(b"\xef\xbb\xbf" + _doc_payload()).message_name == "Update"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
_keys = st.sampled_from(
    ["MessageName", "PrimaryEntityName", "PrimaryEntityId", "Depth", "InputParameters", "PostEntityImages",
     "UserId", "InitiatingUserId", "CorrelationId", "OrganizationId", "OrganizationName", "OperationCreatedOn",
     "__type", "Attributes", "key", "value", "Value", "Id", "LogicalName", "FormattedValues"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=8))
def test_fuzzed_dicts_only_ever_raise_context_error(payload: dict[str, Any]) -> None:
    with contextlib.suppress(ContextError):
        parse_context(json.dumps(payload))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzzed_mutations_of_the_doc_example_only_raise_context_error(data: st.DataObject) -> None:
    body = json.loads(_doc_payload())
    node: Any = body
    # walk somewhere into the document and replace what is there with arbitrary JSON
    for _ in range(data.draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], dict | list):
                node[key] = data.draw(_json)
                break
            node = node[key]
        elif isinstance(node, list) and node:
            node = node[data.draw(st.integers(0, len(node) - 1))]
        else:
            break
    if isinstance(node, dict) and node:
        node[data.draw(st.sampled_from(sorted(node)))] = data.draw(_json)
    with contextlib.suppress(ContextError):
        parse_context(json.dumps(body))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzzed_raw_bytes_only_raise_context_error(payload: bytes | str) -> None:
    with contextlib.suppress(ContextError):
        parse_context(payload)
