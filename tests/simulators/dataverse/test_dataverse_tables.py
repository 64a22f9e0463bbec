"""The standard tables carry Dataverse's recorded column metadata, and the simulator enforces what the platform does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.simulators.dataverse import DataverseSimulator
from local.simulators.dataverse.schema import STANDARD_TABLES, TABLES_DIR
from local.tenants import SimulatedTenants
from shared.core.mapping import load_mapping
from tests.simulators.dataverse.conftest import Web

ROOT = Path(__file__).parents[3]


@pytest.mark.parametrize("name", STANDARD_TABLES)
def test_every_recorded_table_names_its_source(name: str) -> None:
    raw = json.loads((TABLES_DIR / f"{name}.json").read_text())
    source = raw["source"]
    assert source["url"].startswith("https://learn.microsoft.com/")
    assert source["retrieved"]
    assert source["page_date"]
    assert source["path"].endswith(f"{name}.md")
    assert raw["LogicalName"] == name
    names = [a["LogicalName"] for a in raw["Attributes"]]
    assert len(names) == len(set(names))
    assert raw["PrimaryIdAttribute"] in names


@pytest.mark.parametrize(
    ("table", "column", "kind", "max_length", "required"),
    [
        ("lead", "subject", "String", 300, "ApplicationRequired"),
        ("lead", "firstname", "String", 50, "Recommended"),
        ("lead", "lastname", "String", 50, "ApplicationRequired"),
        ("lead", "emailaddress1", "String", 100, "None"),
        ("lead", "telephone1", "String", 50, "None"),
        ("lead", "mobilephone", "String", 20, "None"),
        ("contact", "jobtitle", "String", 100, "None"),
        ("contact", "lastname", "String", 50, "ApplicationRequired"),
        ("contact", "mobilephone", "String", 50, "None"),
        ("account", "name", "String", 160, "ApplicationRequired"),
        ("opportunity", "name", "String", 300, "ApplicationRequired"),
        ("systemuser", "internalemailaddress", "String", 100, "SystemRequired"),
        ("team", "name", "String", 160, "SystemRequired"),
        ("lead", "description", "Memo", 2000, "None"),
    ],
)
def test_standard_columns_have_the_documented_metadata(
    table: str, column: str, kind: str, max_length: int, required: str
) -> None:
    found = DataverseSimulator().tables[table].columns[column]
    assert (found.type, found.max_length, found.required) == (kind, max_length, required)


def test_choices_states_and_lookups_are_the_documented_ones() -> None:
    tables = DataverseSimulator().tables
    lead = tables["lead"]
    assert lead.columns["leadsourcecode"].options == {
        1: "Advertisement",
        2: "Employee Referral",
        3: "External Referral",
        4: "Partner",
        5: "Public Relations",
        6: "Seminar",
        7: "Trade Show",
        8: "Web",
        9: "Word of Mouth",
        10: "Other",
    }
    assert lead.columns["statecode"].options == {0: "Open", 1: "Qualified", 2: "Disqualified"}
    assert lead.columns["statuscode"].states == {1: 0, 2: 0, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2}
    assert lead.columns["exchangerate"].valid_for_update is False
    assert tables["contact"].columns["parentcustomerid"].all_targets == ("account", "contact")
    assert tables["contact"].columns["originatingleadid"].valid_for_create is False
    assert tables["contact"].columns["birthdate"].behavior == "DateOnly"
    assert "ownerid" not in tables["systemuser"].columns  # business-owned


def test_the_web_api_enforces_max_length_and_system_required_but_not_application_required(web: Web) -> None:
    assert web.post("leads", {"subject": "Topic only"}).status_code == 204  # lastname is ApplicationRequired
    status, code, message = web.error(web.post("contacts", {"lastname": "L", "jobtitle": "x" * 101}))
    assert (status, code) == (400, "0x80044331")
    assert message.endswith(
        "The length of the 'jobtitle' attribute of the 'contact' entity exceeded the maximum allowed length of '100'."
    )
    status, code, _ = web.error(web.post("systemusers", {"firstname": "No", "lastname": "Mail"}))
    assert (status, code) == (400, "0x80040203")  # domainname / internalemailaddress are SystemRequired


def test_read_only_columns_are_ignored_and_lookups_go_through_navigation_properties(web: Web) -> None:
    account = web.sim.seed("account", {"name": "Parent"})
    created = web.post(
        "contacts",
        {"lastname": "Kid", "fullname": "ignored", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
        Prefer="return=representation",
    ).json()
    assert created["fullname"] == "Kid"
    assert created["_parentcustomerid_value"] == account
    status, code, message = web.error(web.post("contacts", {"lastname": "X", "_parentcustomerid_value": account}))
    assert (status, code) == (400, "0x80060888")
    assert "Use Navigation properties" in message
    status, code, _ = web.error(
        web.post("contacts", {"lastname": "Y", "parentcustomerid@odata.bind": f"/accounts({account})"})
    )
    assert (status, code) == (400, "0x80048d19")  # a customer lookup has one navigation property per target


def test_a_status_reason_must_belong_to_the_state(web: Web) -> None:
    lead = web.sim.seed("lead", {"lastname": "S"})
    assert web.patch(f"leads({lead})", {"statecode": 2}).status_code == 204
    assert web.sim.get("lead", lead)["statuscode"] == 4  # type: ignore[index]  # the state's first reason
    assert web.patch(f"leads({lead})", {"statecode": 0, "statuscode": 3}).status_code == 400


def test_provisioning_keeps_standard_columns_and_adds_the_mappings_custom_ones() -> None:
    mapping = load_mapping((ROOT / "config" / "mapping.json").read_text())
    tenants = SimulatedTenants(mapping)
    lead = tenants.dataverse.tables["lead"]
    assert lead.columns["jobtitle"].max_length == 100  # not the mapping's Marketo length
    assert lead.columns["industrycode"].options[2] == "Agriculture and Non-petrol Natural Resource Extraction"
    for entity in mapping.entities:
        columns = tenants.dataverse.tables[entity.entity].columns
        assert {f.dynamics for f in entity.fields} <= set(columns)
    engagement = lead.columns["new_engagementscore"]
    assert (engagement.type, engagement.custom) == ("Double", True)
