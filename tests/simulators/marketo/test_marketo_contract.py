"""The simulator answers with the shapes Marketo's documentation shows (same keys, same JSON types)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from tests.marketo_harness import Harness

FIXTURES = Path(__file__).parents[2] / "fixtures" / "marketo"
# Documented as "present if applicable" (a field's max length exists only for sized types).
OPTIONAL_KEYS = frozenset({"length"})


ADOBE_DOCS = ("https://experienceleague.adobe.com/", "https://developer.adobe.com/marketo-apis/")


def doc(name: str) -> Any:
    recorded = json.loads((FIXTURES / name).read_text())
    assert recorded["_source"].startswith(ADOBE_DOCS)
    return recorded["response"]


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_shape(documented: Any, simulated: Any, where: str = "$") -> None:
    if documented is None:  # documented null: any value (or null) is fine
        return
    assert kind(simulated) == kind(documented), f"{where}: {kind(simulated)} != {kind(documented)}"
    if isinstance(documented, dict):
        same = set(simulated) - OPTIONAL_KEYS == set(documented) - OPTIONAL_KEYS
        assert same, f"{where}: keys {sorted(simulated)} != {sorted(documented)}"
        for key, value in documented.items():
            if key in simulated:
                assert_shape(value, simulated[key], f"{where}.{key}")
    elif isinstance(documented, list) and documented and simulated:
        for index, item in enumerate(simulated):
            # Each simulated item must look like one of the documented items (e.g. created vs skipped records).
            candidates = [
                d for d in documented if not isinstance(d, dict) or set(d) - OPTIONAL_KEYS == set(item) - OPTIONAL_KEYS
            ]
            assert candidates, f"{where}[{index}]: no documented item has keys {sorted(item)}"
            problems = []
            for candidate in candidates:
                try:
                    assert_shape(candidate, item, f"{where}[{index}]")
                    break
                except AssertionError as exc:
                    problems.append(str(exc))
            else:
                raise AssertionError("; ".join(problems))


class Raw:
    """Plain HTTP calls with a valid token: the simulator seen without the client in between."""

    def __init__(self, h: Harness) -> None:
        h.client.describe_leads()
        self.h = h
        self.headers = {"Authorization": f"Bearer {h.client.auth.current()}"}

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.h.http.get(self.h.base_url + path, params=params, headers=self.headers)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.h.http.post(self.h.base_url + path, json=body, headers=self.headers)


@pytest.fixture
def raw(h: Harness) -> Raw:
    return Raw(h)


def test_identity_token(h: Harness) -> None:
    answer = h.http.get(
        h.base_url + "/identity/oauth/token",
        params={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET},
    )
    assert_shape(doc("identity_token.json"), answer.json())
    assert answer.json()["expires_in"] == 3599


def test_error_envelope(h: Harness) -> None:
    answer = h.http.get(h.base_url + "/rest/v1/leads/describe.json", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 200
    assert_shape(doc("error_response.json"), answer.json())


def test_leads(raw: Raw) -> None:
    people = [
        {"email": f"{n}@usa.gov", "firstName": n.title(), "lastName": "X", "postalCode": "04828"}
        for n in ("abe", "george")
    ]
    created = raw.post("/rest/v1/leads.json", {"action": "createOnly", "lookupField": "email", "input": people})
    assert_shape(doc("sync_leads_created.json"), created.json())
    mixed = raw.post("/rest/v1/leads.json", {"action": "createOnly", "input": [{"email": "new@x.com"}, people[0]]})
    assert_shape(doc("sync_leads_skipped.json"), mixed.json())
    found = raw.get("/rest/v1/leads.json", filterType="email", filterValues="abe@usa.gov,george@usa.gov")
    assert_shape(doc("leads_by_filter.json"), found.json())
    first_page = raw.get(
        "/rest/v1/leads.json",
        filterType="email",
        filterValues="abe@usa.gov,george@usa.gov",
        fields="id,email,firstName,postalCode",
        batchSize="1",
    )
    assert_shape(doc("leads_page_with_next_page_token.json"), first_page.json())
    assert_shape(doc("leads_describe.json"), raw.get("/rest/v1/leads/describe.json").json())
    assert_shape(doc("leads_describe2.json"), raw.get("/rest/v1/leads/describe2.json").json())
    assert_shape(doc("lead_schema_fields.json"), raw.get("/rest/v1/leads/schema/fields.json").json())
    fields = [{"displayName": "Acme Access Code", "name": "acmeAccessCode", "dataType": "string"}]
    assert_shape(
        doc("create_lead_fields.json"), raw.post("/rest/v1/leads/schema/fields.json", {"input": fields}).json()
    )


def test_activity_feeds(raw: Raw) -> None:
    token = raw.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2025-01-01T00:00:00Z")
    assert_shape(doc("paging_token.json"), token.json())
    lead = raw.h.sim.add_lead(email="a@x.com", firstName="A", lastName="B")
    raw.h.sim.change_lead(lead, firstName="C")
    changes = raw.get(
        "/rest/v1/activities/leadchanges.json", nextPageToken=token.json()["nextPageToken"], fields="firstName"
    ).json()
    assert [item["activityTypeId"] for item in changes["result"]] == [12, 13]
    assert_shape(doc("lead_changes.json"), {**changes, "result": changes["result"][1:]})
    raw.h.sim.delete_lead(lead)
    deleted = raw.get("/rest/v1/activities/deletedleads.json", nextPageToken=token.json()["nextPageToken"])
    assert_shape(doc("deleted_leads.json"), deleted.json())


def test_bulk_import(raw: Raw) -> None:
    files = {"file": ("leads.csv", b"email,firstName\na@x.com,A\nb@x.com,B\n", "text/csv")}
    created = raw.h.http.post(
        raw.h.base_url + "/bulk/v1/leads.json", data={"format": "csv"}, files=files, headers=raw.headers
    )
    assert_shape(doc("bulk_import_created.json"), created.json())
    raw.h.clock.advance(5)
    status = raw.get(f"/bulk/v1/leads/batch/{created.json()['result'][0]['batchId']}.json")
    assert status.json()["result"][0]["status"] == "Complete"
    assert_shape(doc("bulk_import_status.json"), status.json())


@pytest.mark.parametrize(
    "case",
    [
        ("/rest/v1/companies/sync.json", "/rest/v1/companies/describe.json", "externalCompanyId", {}, "companies"),
        (
            "/rest/v1/opportunities.json",
            "/rest/v1/opportunities/describe.json",
            "externalOpportunityId",
            {"name": "D"},
            "opportunities",
        ),
        (
            "/rest/v1/salespersons.json",
            "/rest/v1/salespersons/describe.json",
            "externalSalesPersonId",
            {},
            "salespersons",
        ),
        ("/rest/v1/customobjects/car_c.json", "/rest/v1/customobjects/car_c/describe.json", "vin", {}, "custom_object"),
    ],
)
def test_objects(raw: Raw, case: tuple[str, str, str, dict[str, Any], str]) -> None:
    sync_path, describe_path, key, extra, prefix = case
    raw.h.sim.define_custom_object("car_c", dedupe_fields=("vin",), fields={"vin": "string", "year": "integer"})
    raw.post(sync_path, {"input": [{key: "k1", **extra}]})
    batch = [{key: "k1", **extra}, {key: "k2", **extra}]
    if prefix == "custom_object":  # its doc sample also shows a skipped record
        batch.append({key: "k3", "ghost": 1})
    synced = raw.post(sync_path, {"input": batch}).json()
    assert [item["status"] for item in synced["result"]][:2] == ["updated", "created"]
    assert_shape(doc(f"{prefix}_sync.json"), synced)
    assert_shape(doc(f"{prefix}_describe.json"), raw.get(describe_path).json())


def test_opportunity_roles(raw: Raw) -> None:
    lead = raw.h.sim.add_lead(email="r@x.com")
    raw.post("/rest/v1/opportunities.json", {"input": [{"externalOpportunityId": "o1", "name": "Deal"}]})
    role = {"externalOpportunityId": "o1", "leadId": lead, "role": "Buyer"}
    raw.post("/rest/v1/opportunities/roles.json", {"input": [role]})
    synced = raw.post("/rest/v1/opportunities/roles.json", {"input": [role, {**role, "role": "Payer"}]})
    assert [item["status"] for item in synced.json()["result"]] == ["updated", "created"]
    assert_shape(doc("opportunity_roles_sync.json"), synced.json())
    assert_shape(doc("opportunity_roles_describe.json"), raw.get("/rest/v1/opportunities/roles/describe.json").json())
