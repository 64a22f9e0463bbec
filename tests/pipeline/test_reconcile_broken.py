"""A mapped column or field deleted while the sync runs is marked broken in the stored mapping and reported once;
the batch that met it, and every batch after, syncs the other fields."""

from __future__ import annotations

from shared.core.mapping import SYNC_FILTER_COLUMN, FieldState
from tests.pipeline.reconcile_harness import ADA, GRACE, Stack, stack

__all__ = ["stack"]


def _state(stack: Stack, entity: str, column: str) -> FieldState:
    return stack.live().repository.load().mapping.get(entity).by_column[column].state


def test_a_column_deleted_mid_batch_is_marked_broken_once_and_the_other_fields_keep_syncing(stack: Stack) -> None:
    ada_id, ada = stack.synced_person("lead", **ADA)
    grace_id, grace = stack.synced_person("lead", **GRACE)
    del stack.dv.tables["lead"].columns["mobilephone"]  # an admin deletes a synced column
    stack.update("lead", ada_id, jobtitle="Chief Engineer")
    stack.update("lead", grace_id, jobtitle="Commodore")
    reconciler = stack.reconciler()

    report = reconciler.run([stack.changed("lead", ada_id), stack.changed("lead", grace_id)])

    (error,) = stack.store.list_errors()
    assert (error.code, error.field, error.entity) == ("column-missing", "mobilephone", "lead")
    assert "the mapped column 'mobilephone' no longer exists in Dynamics" in error.message
    assert _state(stack, "lead", "mobilephone") is FieldState.BROKEN
    assert stack.mapping_changes == ["reload"]  # the process is told its cached mapping is stale
    assert [rid for _, rid, _ in report.decisions] == [ada_id, grace_id]
    assert stack.mk.lead(ada["id"])["title"] == "Chief Engineer"  # type: ignore[index]
    assert stack.mk.lead(grace["id"])["title"] == "Commodore"  # type: ignore[index]

    stack.update("lead", ada_id, jobtitle="Countess")
    reconciler.run([stack.changed("lead", ada_id)])  # the next batch reads without the column at once
    assert stack.mk.lead(ada["id"])["title"] == "Countess"  # type: ignore[index]
    assert len(stack.store.list_errors()) == 1


def test_a_reconciler_with_a_stale_mapping_catches_up_without_reporting_again(stack: Stack) -> None:
    ada_id, ada = stack.synced_person("lead", **ADA)
    del stack.dv.tables["lead"].columns["mobilephone"]
    stack.sync(stack.changed("lead", ada_id))  # another instance met it first and marked it
    stack.update("lead", ada_id, jobtitle="Chief Engineer")
    stale = stack.reconciler(stack.mapping)  # this instance still has the mapping from before

    stack.sync(stack.changed("lead", ada_id), reconciler=stale)

    assert len(stack.store.list_errors(search="no longer exists")) == 1
    assert stale.mapping.get("lead").by_column["mobilephone"].state is FieldState.BROKEN
    assert stack.mapping_changes == ["reload", "reload"]
    assert stack.mk.lead(ada["id"])["title"] == "Chief Engineer"  # type: ignore[index]


def test_a_field_deleted_in_marketo_is_marked_broken_once_for_each_person_entity_in_the_batch(stack: Stack) -> None:
    lead_id, lead_person = stack.synced_person("lead", **ADA)
    contact_id, contact_person = stack.synced_person("contact", **GRACE)
    del stack.mk.leads.fields["mobilePhone"]  # a Marketo admin deletes a field both person entities map
    stack.update("lead", lead_id, jobtitle="Chief Engineer")
    stack.update("contact", contact_id, jobtitle="Commodore")

    stack.sync(stack.changed("lead", lead_id), stack.changed("contact", contact_id))
    stack.sync(stack.changed("lead", lead_id), stack.changed("contact", contact_id))

    errors = stack.store.list_errors()
    assert sorted((e.entity, e.code, e.field) for e in errors) == [
        ("contact", "column-missing", "mobilephone"),
        ("lead", "column-missing", "mobilephone"),
    ]
    assert all("the Marketo field 'mobilePhone'" in e.message for e in errors)
    assert _state(stack, "lead", "mobilephone") is FieldState.BROKEN
    assert _state(stack, "contact", "mobilephone") is FieldState.BROKEN
    assert stack.mk.lead(lead_person["id"])["title"] == "Chief Engineer"  # type: ignore[index]
    assert stack.mk.lead(contact_person["id"])["title"] == "Commodore"  # type: ignore[index]


def test_a_vanished_sync_filter_column_turns_the_filter_off_and_the_record_still_syncs(stack: Stack) -> None:
    ada_id, ada = stack.synced_person("lead", **ADA)
    del stack.dv.tables["lead"].columns[SYNC_FILTER_COLUMN]
    stack.update("lead", ada_id, jobtitle="Chief Engineer")

    stack.sync(stack.changed("lead", ada_id))

    (error,) = stack.store.list_errors()
    assert (error.code, error.field) == ("column-missing", SYNC_FILTER_COLUMN)
    assert "the sync filter column no longer exists" in error.message
    assert stack.live().repository.load().mapping.get("lead").sync_filter is False
    assert stack.mk.lead(ada["id"])["title"] == "Chief Engineer"  # type: ignore[index]


def test_a_field_deleted_from_a_marketo_object_is_marked_broken_once_and_the_records_sync_without_it(
    stack: Stack,
) -> None:
    acme = stack.create("account", name="Acme", telephone1="+1 555 0100", websiteurl="https://acme.example")
    globex = stack.create("account", name="Globex", telephone1="+1 555 0200")
    companies = stack.mk.objects["companies"]
    companies.fields = [f for f in companies.fields if f.name != "mainPhone"]  # a Marketo admin deletes it

    report = stack.sync(stack.changed("account", acme), stack.changed("account", globex))

    (error,) = stack.store.list_errors()  # one report for the field, none for the records
    assert (error.entity, error.code, error.field) == ("account", "column-missing", "telephone1")
    assert "the Marketo field 'mainPhone' (mapped to 'telephone1') no longer exists in Marketo" in error.message
    assert _state(stack, "account", "telephone1") is FieldState.BROKEN
    assert stack.mapping_changes == ["reload"]
    assert [e.id for e in report.errors] == [error.id]
    synced = {c["externalCompanyId"]: c for c in companies.records.values()}
    assert (synced[acme]["company"], synced[acme]["website"], synced[globex]["company"]) == (
        "Acme",
        "https://acme.example",
        "Globex",
    )
    assert "mainPhone" not in synced[acme]
    link = stack.store.get_link("account", acme)
    assert link is not None
    assert "telephone1" not in link.baseline  # never agreed on: a restored field is sent again
    assert link.baseline["name"] == "Acme"

    stack.update("account", acme, name="Acme Corp")
    stack.sync(stack.changed("account", acme))  # the next batch upserts without the field at once
    assert {c["externalCompanyId"]: c for c in companies.records.values()}[acme]["company"] == "Acme Corp"
    assert len(stack.store.list_errors()) == 1
