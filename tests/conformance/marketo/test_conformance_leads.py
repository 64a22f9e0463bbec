"""Leads through marketorestpython: Sync Leads, Get Leads by Filter Type (its POST ``_method=GET`` form and the
plain GET), ``fields`` repeated or comma-separated, paging, describe and describe2, delete."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.exceptions import MarketoException  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.http_lib import HttpLib  # type: ignore[import-untyped,unused-ignore]

from local.simulators.marketo.simulator import MarketoSimulator
from tests.conformance.marketo.conftest import Wiretap

LEADS = "/rest/v1/leads.json"
PEOPLE = [
    {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "title": "Analyst"},
    {"email": "alan@example.com", "firstName": "Alan", "lastName": "Turing", "title": "Mathematician"},
]


def statuses(results: list[dict[str, object]]) -> list[object]:
    return [result["status"] for result in results]


def test_sync_leads_creates_then_updates_and_reports_each_record(mkto: MarketoClient) -> None:
    created = mkto.create_update_leads(PEOPLE, action="createOnly", lookupField="email")
    assert statuses(created) == ["created", "created"]
    again = mkto.create_update_leads(PEOPLE[:1], action="createOnly", lookupField="email")
    assert again == [{"status": "skipped", "reasons": [{"code": "1005", "message": "Lead already exists"}]}]
    ghost = mkto.create_update_leads([{"email": "ghost@example.com"}], action="updateOnly")
    assert ghost[0]["reasons"][0]["code"] == "1004"
    mixed = mkto.create_update_leads([{**PEOPLE[1], "title": "Cryptanalyst"}, {"email": "grace@example.com"}])
    assert statuses(mixed) == ["updated", "created"]  # no action: createOrUpdate by email
    assert mixed[0]["id"] == created[1]["id"]


def test_sync_leads_matches_on_the_lookup_field(mkto: MarketoClient, sim: MarketoSimulator) -> None:
    sim.leads.create_fields([{"name": "dynamicsContactId", "displayName": "Dynamics Contact Id", "dataType": "string"}])
    first = mkto.create_update_leads([{"dynamicsContactId": "c-1", "email": "old@example.com"}])
    moved = mkto.create_update_leads(
        [{"dynamicsContactId": "c-1", "email": "new@example.com"}], lookupField="dynamicsContactId"
    )
    assert statuses(moved) == ["updated"]
    assert moved[0]["id"] == first[0]["id"]
    by_id = mkto.create_update_leads([{"id": first[0]["id"], "title": "CTO"}], action="updateOnly", lookupField="id")
    assert statuses(by_id) == ["updated"]
    with pytest.raises(MarketoException) as refused:  # id is system-managed: updateOnly only
        mkto.create_update_leads([{"id": first[0]["id"]}], action="createOrUpdate", lookupField="id")
    assert refused.value.code == "1003"


def test_get_leads_by_filter_type_is_a_post_with_method_get_in_the_form_body(
    mkto: MarketoClient, wire: Wiretap
) -> None:
    mkto.create_update_leads(PEOPLE)
    found = mkto.get_multiple_leads_by_filter_type("email", ["ada@example.com", "alan@example.com"])
    assert [lead["email"] for lead in found] == ["ada@example.com", "alan@example.com"]
    assert set(found[0]) == {"id", "email", "firstName", "lastName", "createdAt", "updatedAt"}  # the default set
    (query,) = [r for r in wire.to(LEADS) if r.method == "POST" and b"filterType" in r.content]
    assert "_method" not in query.url.params
    assert query.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert ("_method", "GET") in parse_qsl(query.content.decode())


@pytest.mark.parametrize("fields", [["email", "title"], "email,title"], ids=["repeated", "comma-separated"])
def test_fields_may_be_repeated_or_comma_separated(mkto: MarketoClient, wire: Wiretap, fields: list[str] | str) -> None:
    mkto.create_update_leads(PEOPLE)
    found = mkto.get_multiple_leads_by_filter_type("email", "ada@example.com alan@example.com", fields=fields)
    assert found == [
        {"email": "ada@example.com", "title": "Analyst"},
        {"email": "alan@example.com", "title": "Mathematician"},
    ]
    sent = [value for key, value in parse_qsl(wire.requests[-1].content.decode()) if key == "fields"]
    assert sent == (fields if isinstance(fields, list) else [fields])


def test_get_lead_by_id_takes_repeated_fields_in_the_query_string(mkto: MarketoClient, wire: Wiretap) -> None:
    lead_id = mkto.create_update_leads(PEOPLE[:1])[0]["id"]
    assert mkto.get_lead_by_id(lead_id, fields=["email", "lastName"]) == [
        {"email": "ada@example.com", "lastName": "Lovelace"}
    ]
    assert wire.requests[-1].url.params.get_list("fields") == ["email", "lastName"]
    assert mkto.get_lead_by_id(999_999) == []


def test_get_leads_by_filter_type_over_plain_get(mkto: MarketoClient) -> None:
    """The library's own HTTP layer (``HttpLib.get``), as its GET methods use it: token moved to the header."""
    mkto.create_update_leads(PEOPLE)
    mkto.authenticate()
    args = {"access_token": mkto.token, "filterType": "email", "filterValues": "alan@example.com,ada@example.com"}
    answer = HttpLib(max_retry_time_conf=0, requests_timeout=5).get(
        mkto.host + LEADS, {**args, "fields": ["email", "firstName"]}
    )
    assert answer["success"] is True
    assert [lead["firstName"] for lead in answer["result"]] == ["Ada", "Alan"]  # in id order
    assert "nextPageToken" not in answer
    assert "moreResult" not in answer


def test_results_past_batch_size_come_page_by_page_with_next_page_token(
    mkto: MarketoClient, sim: MarketoSimulator, wire: Wiretap
) -> None:
    emails = [f"p{n}@example.com" for n in range(7)]
    mkto.create_update_leads([{"email": email, "company": "Acme"} for email in emails])
    found = mkto.get_multiple_leads_by_filter_type("company", ["Acme"], fields=["email"], batchSize=3)
    assert [lead["email"] for lead in found] == emails
    assert sim.calls["GET /rest/v1/leads.json"] == 3  # the last page has no nextPageToken: no fourth call
    tokens = [dict(parse_qsl(r.content.decode())).get("nextPageToken") for r in wire.to(LEADS)[1:]]
    assert tokens[0] is None
    assert all(tokens[1:])


def test_describe_lists_rest_fields_and_describe2_the_searchable_ones(mkto: MarketoClient) -> None:
    described = {row["rest"]["name"]: row for row in mkto.describe()}
    assert described["email"]["dataType"] == "email"
    assert described["id"]["rest"]["readOnly"] is True
    (lead,) = mkto.describe2()
    assert lead["name"] == "API Lead"
    assert {"email", "id"} <= {field["name"] for field in lead["fields"]}
    assert ["email"] in lead["searchableFields"]
    mkto.create_update_leads(PEOPLE)
    for (name,) in lead["searchableFields"]:  # every field describe2 calls searchable is a valid filterType
        mkto.get_multiple_leads_by_filter_type(name, ["x"], fields=["email"])


def test_fields_describe2_leaves_out_are_refused_as_filter_type(mkto: MarketoClient) -> None:
    searchable = {name for (name,) in mkto.describe2()[0]["searchableFields"]}
    assert "firstName" not in searchable
    with pytest.raises(MarketoException) as refused:
        mkto.get_multiple_leads_by_filter_type("firstName", ["Ada"])
    assert refused.value.code == "1011"


def test_deleted_leads_are_gone_and_show_in_the_deleted_leads_feed(mkto: MarketoClient) -> None:
    ids = [result["id"] for result in mkto.create_update_leads(PEOPLE)]
    token = mkto.get_paging_token(sinceDatetime="2020-01-01T00:00:00Z")
    assert mkto.delete_lead([ids[0], 424242]) == [
        {"id": ids[0], "status": "deleted"},
        {"id": 424242, "status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    assert mkto.get_lead_by_id(ids[0]) == []
    deleted = mkto.get_deleted_leads(nextPageToken=token)
    assert [(item["leadId"], item["activityTypeId"]) for item in deleted] == [(ids[0], 37)]
