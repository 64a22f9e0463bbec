"""One record's failure is one sync error; its baseline keeps the old values, so the change is retried; the
rest of the batch goes on. A person the sync cannot tell apart from another is refused, never written."""

from __future__ import annotations

from dataclasses import replace

from shared.store.model import TO_DYNAMICS, TO_MARKETO
from tests.pipeline.reconcile_harness import ADA, GRACE, Stack, stack

__all__ = ["stack"]

LEADS = "POST /rest/v1/leads.json"


def test_a_record_marketo_skips_keeps_its_old_baseline_so_the_change_is_sent_again(stack: Stack) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    grace_id, grace = stack.synced_person("lead", **GRACE)
    old = stack.store.get_link("lead", lead_id).baseline  # type: ignore[union-attr]
    title = stack.mk.leads.fields["title"]
    stack.mk.leads.fields["title"] = replace(title, data_type="integer")  # Marketo now refuses the title
    stack.update("lead", lead_id, jobtitle="Chief Engineer")
    stack.update("lead", grace_id, lastname="Murray Hopper")

    stack.sync(stack.changed("lead", lead_id), stack.changed("lead", grace_id))

    (error,) = stack.store.list_errors()
    assert (error.record_id, error.operation, error.direction, error.code) == (lead_id, "update", TO_MARKETO, "1003")
    kept = stack.store.get_link("lead", lead_id).baseline  # type: ignore[union-attr]
    assert {k: v for k, v in kept.items() if k in old} == old  # what it held stands (new agreements may join)
    assert stack.mk.lead(person["id"])["title"] == "Engineer"  # type: ignore[index]
    assert stack.mk.lead(grace["id"])["lastName"] == "Murray Hopper"  # type: ignore[index]
    stack.mk.leads.fields["title"] = title  # fixed in Marketo
    stack.sync(stack.changed("lead", lead_id))  # any later change of the record
    assert stack.mk.lead(person["id"])["title"] == "Chief Engineer"  # type: ignore[index]
    assert stack.store.get_link("lead", lead_id).baseline != old  # type: ignore[union-attr]


def test_a_failed_write_back_keeps_that_records_baseline_and_the_other_record_is_written(stack: Stack) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    grace_id, grace = stack.synced_person("lead", **GRACE)
    old = stack.store.get_link("lead", lead_id).baseline  # type: ignore[union-attr]
    column = stack.dv.tables["lead"].columns["jobtitle"]
    stack.dv.tables["lead"].columns["jobtitle"] = replace(column, max_length=10)  # Dataverse refuses longer titles
    stack.mk.change_lead(person["id"], title="Chief Engineer")
    stack.mk.change_lead(grace["id"], title="Commodore")

    stack.sync(stack.changed_in_marketo(person["id"]), stack.changed_in_marketo(grace["id"]))

    (error,) = stack.store.list_errors()
    assert (error.record_id, error.operation, error.direction, error.code) == (
        lead_id,
        "update",
        TO_DYNAMICS,
        "0x80044331",
    )
    assert "jobtitle" in error.message  # Dataverse's own words, not just its status
    kept = stack.store.get_link("lead", lead_id).baseline  # type: ignore[union-attr]
    assert {k: v for k, v in kept.items() if k in old} == old  # what it held stands (new agreements may join)
    assert stack.dv.get("lead", lead_id)["jobtitle"] == "Engineer"  # type: ignore[index]
    assert stack.dv.get("lead", grace_id)["jobtitle"] == "Commodore"  # type: ignore[index]
    stack.dv.tables["lead"].columns["jobtitle"] = column  # fixed in Dynamics
    stack.sync(stack.changed_in_marketo(person["id"]))
    assert stack.dv.get("lead", lead_id)["jobtitle"] == "Chief Engineer"  # type: ignore[index]


def test_an_email_already_linked_to_another_record_is_one_duplicate_person_error_and_no_write(stack: Stack) -> None:
    ada_id, person = stack.synced_person("lead", **ADA)
    writes = stack.mk.calls[LEADS]
    twin_id = stack.create("lead", **{**ADA, "firstname": "Augusta", "jobtitle": "Countess"})

    report = stack.sync(stack.changed("lead", twin_id))
    stack.sync(stack.changed("lead", twin_id))  # and again: refused every time, nothing written

    assert [e.code for e in report.errors] == ["duplicate-person"]
    assert str(person["id"]) in report.errors[0].message
    assert ada_id in report.errors[0].message
    assert stack.mk.calls[LEADS] == writes
    assert stack.mk.find_leads("email", "ada@example.com") == [person]
    assert stack.store.get_link("lead", twin_id) is None


def test_a_lead_qualified_into_a_contact_is_left_alone_when_it_changes_again(stack: Stack) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    contact_id = stack.create("contact", **ADA, originatingleadid=lead_id)
    stack.sync(stack.changed("contact", contact_id))  # the contact takes the lead's person along
    assert stack.store.get_link("lead", lead_id).followed_by == f"contact:{contact_id}"  # type: ignore[union-attr]
    reads = stack.mk.calls["GET /rest/v1/leads.json"]

    report = stack.sync(stack.changed("lead", lead_id))

    assert [why for _, why in report.ignored] == [f"lead qualified into contact:{contact_id}: the person follows it"]
    assert report.errors == []
    assert stack.mk.calls["GET /rest/v1/leads.json"] == reads  # not matched by e-mail again
    assert stack.mk.lead(person["id"])["dynamicsContactId"] == contact_id  # type: ignore[index]
