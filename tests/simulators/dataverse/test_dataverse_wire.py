"""Wire rules the simulator follows, each named for the documented behaviour (the conformance suite drives the
same rules through independent client libraries; these pin the details)."""

from __future__ import annotations

import pytest

from local.simulators.dataverse.wire import Prefer
from tests.simulators.dataverse.conftest import Web


def test_prefer_is_a_list_whose_values_may_be_quoted() -> None:
    prefer = Prefer.parse(
        'odata.maxpagesize=7, odata.include-annotations="OData.Community.Display.V1.FormattedValue,'
        'Microsoft.Dynamics.CRM.*",return=representation,odata.track-changes'
    )
    assert (prefer.max_page_size, prefer.return_representation, prefer.track_changes) == (7, True, True)
    assert prefer.annotations.wants("OData.Community.Display.V1.FormattedValue")
    assert prefer.annotations.wants("Microsoft.Dynamics.CRM.lookuplogicalname")
    assert not Prefer.parse("odata.maxpagesize=99999").max_page_size > 5000
    assert not Prefer.parse(None).annotations


def test_only_the_annotations_asked_for_are_returned(web: Web) -> None:
    account = web.sim.seed("account", {"name": "Fourth Coffee"})
    contact = web.sim.seed("contact", {"lastname": "Lookup", "_parentcustomerid_value": account})
    url = f"contacts({contact})?$select=_parentcustomerid_value"
    names = web.get(url, Prefer='odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"').json()
    assert names["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue" not in names
    everything = web.get(url, Prefer='odata.include-annotations="*"').json()
    assert everything["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Fourth Coffee"
    assert everything["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == (
        "parentcustomerid_account"
    )


def test_filter_functions_count_and_unknown_properties(web: Web) -> None:
    for name in ("Contoso", "Fabrikam", "Contoso Pharma"):
        web.sim.seed("account", {"name": name})
    body = web.get("accounts?$select=name&$filter=startswith(name,'contoso')&$count=true").json()
    assert (body["@odata.count"], sorted(r["name"] for r in body["value"])) == (2, ["Contoso", "Contoso Pharma"])
    status, code, message = web.error(web.get("accounts?$filter=nosuch eq 1"))
    assert (status, code) == (400, "0x80060888")
    assert message == "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.account'."
    assert web.get("accounts?$skip=1").status_code == 400  # "$skip is not supported"


def test_change_tracking_is_refused_on_a_table_that_does_not_track_changes(web: Web) -> None:
    web.sim.tables["team"].change_tracking = False
    assert web.get("teams?$select=name", Prefer="odata.track-changes").status_code == 400


def test_a_changed_row_is_read_again_in_full_after_its_delta_token_is_used(web: Web) -> None:
    lead = web.sim.seed("lead", {"lastname": "A"})
    first = web.get("leads?$select=lastname", Prefer="odata.track-changes,odata.maxpagesize=1").json()
    assert "@odata.deltaLink" in first
    web.sim.user_update("lead", lead, {"lastname": "B"}, user_id=web.user)
    web.sim.user_update("lead", lead, {"lastname": "C"}, user_id=web.user)
    delta = web.get(first["@odata.deltaLink"]).json()
    assert [r["lastname"] for r in delta["value"]] == ["C"]  # one entry per changed row, its latest version


@pytest.mark.parametrize(
    ("part", "message"),
    [
        ("GET accounts HTTP/1.1\r\n\r\n", "GET requests are not allowed inside a change set."),
        ("PATCH $9 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}", "'$9' does not exist in the batch context"),
    ],
)
def test_a_change_set_refuses_gets_and_unknown_references(web: Web, part: str, message: str) -> None:
    body = (
        "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
        "--c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
        f"{part}\r\n--c--\r\n--b--\r\n"
    )
    response = web.http.post("$batch", content=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert response.status_code == 400
    assert message in response.text


def test_created_rows_are_owned_by_the_caller_and_stamped(web: Web) -> None:
    created = web.post("leads", {"lastname": "Owned"}, Prefer="return=representation").json()
    assert created["_ownerid_value"] == created["_createdby_value"] == created["_modifiedby_value"] == web.user
    assert (created["statecode"], created["statuscode"]) == (0, 1)
    assert created["createdon"] == created["modifiedon"]
