"""Custom objects, companies, opportunities and their roles, sales persons through marketorestpython."""

from __future__ import annotations

import json

import pytest
from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.exceptions import MarketoException  # type: ignore[import-untyped,unused-ignore]

from local.simulators.marketo.simulator import MarketoSimulator
from tests.conformance.marketo.conftest import Wiretap

CARS = "/rest/v1/customobjects/car_c.json"


@pytest.fixture
def cars(sim: MarketoSimulator) -> str:
    sim.define_custom_object("car_c", dedupe_fields=("vin",), fields={"vin": "string", "year": "integer"})
    return "car_c"


def test_custom_objects_sync_by_dedupe_fields_in_input_order(mkto: MarketoClient, cars: str) -> None:
    created = mkto.create_update_custom_objects(cars, [{"vin": "V1", "year": 2001}, {"vin": "V2"}])
    assert [(r["seq"], r["status"]) for r in created] == [(0, "created"), (1, "created")]
    synced = mkto.create_update_custom_objects(
        cars, [{"vin": "V2", "year": 2002}, {"vin": "V3"}], action="updateOnly", dedupeBy="dedupeFields"
    )
    assert synced[0] == {"seq": 0, "status": "updated", "marketoGUID": created[1]["marketoGUID"]}
    assert synced[1]["status"] == "skipped"
    assert synced[1]["reasons"][0]["code"] == "1004"


def test_custom_objects_are_queried_with_a_json_body_posted_with_method_get(
    mkto: MarketoClient, cars: str, wire: Wiretap
) -> None:
    created = mkto.create_update_custom_objects(cars, [{"vin": "V1", "year": 2001}, {"vin": "V2", "year": 2002}])
    found = mkto.get_custom_objects(
        cars, [{"vin": "V2"}, {"vin": "V9"}, {"vin": "V1"}], "dedupeFields", ["vin", "year"]
    )
    assert found == [{"seq": 0, "vin": "V2", "year": 2002}, {"seq": 2, "vin": "V1", "year": 2001}]  # seq: input
    query = wire.to(CARS)[-1]
    assert (query.method, query.url.params["_method"]) == ("POST", "GET")
    assert json.loads(query.content)["filterType"] == "dedupeFields"
    by_guid = mkto.get_custom_objects(cars, [{"marketoGUID": created[1]["marketoGUID"]}], "idField")
    assert [row["vin"] for row in by_guid] == ["V2"]


def test_custom_object_query_pages_by_next_page_token(mkto: MarketoClient, cars: str, wire: Wiretap) -> None:
    mkto.create_update_custom_objects(cars, [{"vin": f"V{n}"} for n in range(5)])
    found = mkto.get_custom_objects(cars, [{"vin": f"V{n}"} for n in range(5)], "dedupeFields", batchSize=2)
    assert [row["vin"] for row in found] == [f"V{n}" for n in range(5)]
    assert [json.loads(r.content).get("nextPageToken") is None for r in wire.to(CARS)[1:]] == [True, False, False]


def test_custom_objects_describe_list_and_delete(mkto: MarketoClient, cars: str) -> None:
    (described,) = mkto.describe_custom_object(cars)
    assert (described["idField"], described["dedupeFields"]) == ("marketoGUID", ["vin"])
    assert {"vin", "year", "marketoGUID"} <= {field["name"] for field in described["fields"]}
    assert [row["name"] for row in mkto.get_list_of_custom_objects(names=cars)] == [cars]
    mkto.create_update_custom_objects(cars, [{"vin": "V1"}])
    deleted = mkto.delete_custom_objects(cars, [{"vin": "V1"}, {"vin": "V1"}], deleteBy="dedupeFields")
    assert [r["status"] for r in deleted] == ["deleted", "skipped"]
    assert deleted[1]["reasons"][0]["code"] == "1013"
    assert mkto.get_custom_objects(cars, [{"vin": "V1"}], "dedupeFields") == []


def test_an_unknown_custom_object_is_610(mkto: MarketoClient) -> None:
    with pytest.raises(MarketoException) as refused:
        mkto.describe_custom_object("nope_c")
    assert refused.value.code == "610"


def test_companies_sync_and_are_read_with_a_form_posted_with_method_get(mkto: MarketoClient, wire: Wiretap) -> None:
    created = mkto.create_update_companies([{"externalCompanyId": f"c{n}", "company": f"Co {n}"} for n in range(5)])
    assert [r["status"] for r in created] == ["created"] * 5
    found = mkto.get_companies("externalCompanyId", ["c3", "c1"], fields=["externalCompanyId", "company"])
    assert found == [
        {"seq": 0, "externalCompanyId": "c3", "company": "Co 3"},
        {"seq": 1, "externalCompanyId": "c1", "company": "Co 1"},
    ]
    sent = wire.requests[-1]
    assert sent.url.params["_method"] == "GET"
    assert sent.headers["content-type"].startswith("application/x-www-form-urlencoded")
    paged = mkto.get_companies("externalCompanyId", [f"c{n}" for n in range(5)], batchSize=2)
    assert [row["externalCompanyId"] for row in paged] == [f"c{n}" for n in range(5)]
    assert mkto.describe_company()[0]["dedupeFields"] == ["externalCompanyId"]
    assert [r["status"] for r in mkto.delete_companies([{"externalCompanyId": "c0"}])] == ["deleted"]


def test_opportunities_and_roles_link_to_leads(mkto: MarketoClient, sim: MarketoSimulator) -> None:
    lead = sim.add_lead(email="buyer@example.com")
    (opp,) = mkto.create_update_opportunities([{"externalOpportunityId": "o1", "name": "Deal"}])
    roles = mkto.create_update_opportunities_roles(
        [
            {"externalOpportunityId": "o1", "leadId": lead, "role": "Buyer"},
            {"externalOpportunityId": "o9", "leadId": lead, "role": "Buyer"},
        ]
    )
    assert [r["status"] for r in roles] == ["created", "skipped"]
    found = mkto.get_opportunities("externalOpportunityId", ["o1"], fields=["name", "marketoGUID"])
    assert found == [{"seq": 0, "name": "Deal", "marketoGUID": opp["marketoGUID"]}]
    by_lead = mkto.get_opportunity_roles("leadId", [str(lead)], fields=["role", "externalOpportunityId"])
    assert by_lead == [{"seq": 0, "role": "Buyer", "externalOpportunityId": "o1"}]
    assert mkto.describe_opportunity_role()[0]["dedupeFields"] == ["externalOpportunityId", "leadId", "role"]


def test_sales_persons_sync_and_query(mkto: MarketoClient) -> None:
    created = mkto.create_update_sales_persons([{"externalSalesPersonId": "s1", "email": "rep@example.com"}])
    assert created[0]["status"] == "created"
    assert mkto.get_sales_persons("email", ["rep@example.com"], fields=["externalSalesPersonId"]) == [
        {"seq": 0, "externalSalesPersonId": "s1"}
    ]
    with pytest.raises(MarketoException) as refused:  # not among describe's searchableFields
        mkto.get_sales_persons("title", ["Rep"])
    assert refused.value.code == "1003"
