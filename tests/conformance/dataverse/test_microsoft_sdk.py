"""Microsoft's own Python SDK (PowerPlatform-Dataverse-Client) works against the simulated organisation.

It resolves entity sets through ``EntityDefinitions?$filter=...``, reads ``OData-EntityId`` on create, updates
with ``If-Match: *``, pages with ``Prefer: odata.maxpagesize`` / ``@odata.nextLink``, turns choice labels into
values through ``$expand=OptionSet($select=Options)``, and writes ``$batch`` bodies with change sets whose
``Content-ID`` references (``$1``) it uses in later operations: if the simulator were off the published wire in
any of these, this SDK would fail here.
"""

from __future__ import annotations

import pytest
from PowerPlatform.Dataverse.core.errors import HttpError

from tests.conformance.dataverse.conftest import Org


def test_create_returns_the_id_and_retrieve_honours_select(org: Org) -> None:
    with org.microsoft_sdk() as client:
        account_id = client.records.create("account", {"name": "Contoso", "telephone1": "555-0100"})
        record = client.records.retrieve("account", account_id, select=["name"])
    assert record is not None
    assert record["name"] == "Contoso"
    assert "telephone1" not in record  # only what $select asked for (plus the key)
    assert record["accountid"] == account_id
    assert record.etag == org.sim.etag("account", account_id)
    assert org.sim.get("account", account_id)["telephone1"] == "555-0100"  # type: ignore[index]


def test_update_of_a_missing_row_is_the_documented_404(org: Org) -> None:
    missing = "00000000-0000-0000-0000-0000000000f1"
    with org.microsoft_sdk() as client, pytest.raises(HttpError) as info:
        client.records.update("account", missing, {"name": "Nobody"})
    assert info.value.status_code == 404
    assert info.value.details["service_error_code"] == "0x80040217"
    assert org.sim.get("account", missing) is None  # If-Match: * never creates


def test_update_and_delete(org: Org) -> None:
    contact = org.sim.seed("contact", {"firstname": "Grace", "lastname": "Hopper"})
    with org.microsoft_sdk() as client:
        client.records.update("contact", contact, {"jobtitle": "Rear Admiral"})
        assert client.records.retrieve("contact", contact, select=["jobtitle", "fullname"]).data == {  # type: ignore[union-attr]
            "jobtitle": "Rear Admiral",
            "fullname": "Grace Hopper",
            "contactid": contact,
        }
        client.records.delete("contact", contact)
        assert client.records.retrieve("contact", contact) is None


def test_pages_follow_next_links(org: Org) -> None:
    for n in range(5):
        org.sim.seed("contact", {"lastname": f"Page {n}"})
    with org.microsoft_sdk() as client:
        pages = [list(page) for page in client.records.list_pages("contact", select=["lastname"], page_size=2)]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(r["lastname"] for page in pages for r in page) == [f"Page {n}" for n in range(5)]


def test_filter_orderby_top(org: Org) -> None:
    for name, revenue in (("A", 10), ("B", 30), ("C", 20), ("D", 40)):
        org.sim.seed("account", {"name": name, "revenue": revenue})
    with org.microsoft_sdk() as client:
        found = client.records.list("account", select=["name"], filter="revenue ge 20", orderby=["revenue desc"], top=2)
    assert [r["name"] for r in found] == ["D", "B"]


def test_choice_labels_are_resolved_through_option_set_metadata(org: Org) -> None:
    with org.microsoft_sdk() as client:
        lead = client.records.create("lead", {"lastname": "Label", "leadsourcecode": "Web"})
    assert org.sim.get("lead", lead)["leadsourcecode"] == 8  # type: ignore[index]


def test_table_definitions_and_columns(org: Org) -> None:
    with org.microsoft_sdk() as client:
        info = client.tables.get("contact")
        strings = client.tables.list_columns(
            "contact", select=["LogicalName", "MaxLength"], filter="AttributeType eq 'String'"
        )
        column = client.tables.get_column("contact", "jobtitle")
    assert info is not None
    assert (info.logical_name, info.entity_set_name) == ("contact", "contacts")
    lengths = {c["LogicalName"]: c.get("MaxLength") for c in strings}
    assert lengths["jobtitle"] == 100
    assert lengths["emailaddress1"] == 100
    assert column is not None
    assert (column["LogicalName"], column["AttributeType"], column["MaxLength"]) == ("jobtitle", "String", 100)


def test_batch_with_a_change_set_and_content_id_references(org: Org) -> None:
    account = org.sim.seed("account", {"name": "Fourth Coffee"})
    with org.microsoft_sdk() as client:
        batch = client.batch.new()
        batch.records.create("account", {"name": "Outside the change set"})
        with batch.changeset() as change_set:
            contact = change_set.records.create("contact", {"firstname": "Ref", "lastname": "Erenced"})
            change_set.records.update("account", account, {"primarycontactid@odata.bind": contact})
        batch.records.retrieve("account", account, select=["name", "_primarycontactid_value"])
        result = batch.execute()
    assert [r.status_code for r in result.responses] == [204, 204, 204, 200]
    assert not result.has_errors
    created_contact = result.responses[1].entity_id
    assert created_contact is not None
    assert org.sim.get("account", account)["_primarycontactid_value"] == created_contact  # type: ignore[index]
    assert result.responses[3].data is not None
    assert result.responses[3].data["_primarycontactid_value"] == created_contact


def test_a_failed_change_set_rolls_back_and_reports_the_real_error(org: Org) -> None:
    with org.microsoft_sdk() as client:
        batch = client.batch.new()
        with batch.changeset() as change_set:
            change_set.records.create("account", {"name": "Rolled back"})
            change_set.records.create("contact", {"lastname": "x" * 51})
        result = batch.execute(continue_on_error=True)
    assert result.has_errors
    (failure,) = result.failed
    assert (failure.status_code, failure.error_code) == (400, "0x80044331")
    assert "exceeded the maximum allowed length of '50'" in (failure.error_message or "")
    assert [r["name"] for r in org.sim.rows("account")] == []
