"""The role set of an opportunity, decided as values: which roles it should have, and the diff to write."""

from __future__ import annotations

import pytest

from shared.core.mapping import EntityMapping
from shared.dataverse.context import parse_context, render_context
from shared.dataverse.records import Record
from shared.dataverse.values import EntityRef
from shared.pipeline.connections import Stakeholder, connection_notification, stakeholder
from shared.pipeline.dataverse_side import customer_contact, primary_contact, sales_owner
from shared.pipeline.notification import Source
from shared.pipeline.reconcile.roles import (
    CONTACT_WAITS,
    LEGACY_ROLE_KEY,
    ROLES_KEY,
    Role,
    RolePlan,
    RoleSources,
    after_writes,
    desired_roles,
    plan_roles,
    roles_text,
    sent_roles,
)
from tests.pipeline.reconcile_harness import Stack, stack

__all__ = ["stack"]

ADA, GRACE, ALAN = (
    "c0000000-0000-0000-0000-00000000000a",
    "c0000000-0000-0000-0000-00000000000b",
    "c0000000-0000-0000-0000-00000000000c",
)
PERSONS = {ADA: 1, GRACE: 2, ALAN: 3}
OPP = "0f000000-0000-0000-0000-000000000001"


def test_the_primary_contact_is_the_primary_role() -> None:
    assert desired_roles(RoleSources(primary=ADA), PERSONS) == {Role(1, "Primary Contact", True)}


def test_a_customer_contact_is_a_role_primary_only_without_a_primary_contact() -> None:
    assert desired_roles(RoleSources(customer=ADA), PERSONS) == {Role(1, "Potential Customer", True)}
    assert desired_roles(RoleSources(primary=GRACE, customer=ADA), PERSONS) == {
        Role(2, "Primary Contact", True),
        Role(1, "Potential Customer", False),
    }


def test_stakeholders_take_their_connection_roles_name_or_stakeholder() -> None:
    sources = RoleSources(
        stakeholders=(Stakeholder("k1", GRACE, "Decision Maker", "r1"), Stakeholder("k2", ALAN, None, None))
    )
    assert desired_roles(sources, PERSONS) == {Role(2, "Decision Maker"), Role(3, "Stakeholder")}


def test_a_contact_without_a_person_has_no_role_yet() -> None:
    assert desired_roles(RoleSources(primary=ADA), {}) == frozenset()


def test_the_same_person_in_the_same_role_twice_is_one_role_primary_if_either_is() -> None:
    sources = RoleSources(primary=ADA, stakeholders=(Stakeholder("k1", ADA, "Primary Contact", "r1"),))
    assert desired_roles(sources, PERSONS) == {Role(1, "Primary Contact", True)}


def test_a_new_primary_contact_replaces_the_old_role() -> None:
    plan = plan_roles({Role(2, "Primary Contact", True)}, {Role(1, "Primary Contact", True)})
    assert plan == RolePlan(upserts=(Role(2, "Primary Contact", True),), deletes=(Role(1, "Primary Contact", True),))


def test_roles_in_step_need_no_write_and_a_changed_primary_flag_is_an_upsert() -> None:
    roles = {Role(1, "Primary Contact", True), Role(2, "Decision Maker")}
    assert plan_roles(roles, roles) == RolePlan()
    plan = plan_roles({Role(1, "Potential Customer", False)}, {Role(1, "Potential Customer", True)})
    assert plan == RolePlan(upserts=(Role(1, "Potential Customer", False),))


def test_a_failed_write_keeps_the_role_as_it_was_so_it_is_tried_again() -> None:
    sent = {Role(1, "Primary Contact", True)}
    plan = plan_roles({Role(2, "Primary Contact", True)}, sent)
    assert after_writes(sent, plan) == {Role(2, "Primary Contact", True)}
    assert after_writes(sent, plan, [Role(1, "Primary Contact", True)]) == {
        Role(1, "Primary Contact", True),
        Role(2, "Primary Contact", True),
    }
    kept = after_writes(sent, plan, [Role(2, "Primary Contact", True)])
    assert kept == frozenset()
    assert plan_roles({Role(2, "Primary Contact", True)}, kept).upserts == (Role(2, "Primary Contact", True),)


def test_the_sent_roles_round_trip_through_the_baseline_and_a_legacy_baseline_is_read() -> None:
    roles = {Role(2, "Decision Maker"), Role(1, "Primary Contact", True)}
    assert sent_roles({ROLES_KEY: roles_text(roles)}, PERSONS) == roles
    assert sent_roles({LEGACY_ROLE_KEY: ADA}, PERSONS) == {Role(1, "Primary Contact", True)}
    assert sent_roles({ROLES_KEY: "not json"}, PERSONS) == frozenset()
    assert sent_roles({}, PERSONS) == frozenset()


def _record(**values: object) -> Record:
    return Record("x", None, values)


def test_role_contacts_and_the_sales_owner_come_from_the_right_kind_of_record() -> None:
    opportunity = EntityMapping(entity="opportunity")
    row = _record(
        parentcontactid=EntityRef(ADA, "contact"),
        customerid=EntityRef(GRACE, "account"),
        ownerid=EntityRef(ALAN, "team"),
    )
    assert (primary_contact(row), customer_contact(row), sales_owner(row, opportunity)) == (ADA, None, None)
    row = _record(customerid=EntityRef(GRACE, "contact"), ownerid=EntityRef(ALAN, "systemuser"))
    assert (customer_contact(row), sales_owner(row, opportunity)) == (GRACE, ALAN)
    assert sales_owner(row, EntityMapping(entity="team", custom_object="team_c")) is None
    assert customer_contact(_record(customerid=EntityRef(GRACE, ""))) is None  # polymorphic: the kind must be named


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"record1id": EntityRef(OPP, "opportunity"), "record2id": EntityRef(ADA, "contact"), "statecode": 0}, True),
        ({"record1id": EntityRef(OPP, "opportunity"), "record2id": EntityRef(ADA, "account"), "statecode": 0}, False),
        ({"record1id": EntityRef(OPP, "opportunity"), "record2id": EntityRef(ADA, "contact"), "statecode": 1}, False),
        ({"record1id": EntityRef(ADA, "contact"), "record2id": EntityRef(OPP, "opportunity"), "statecode": 0}, False),
    ],
)
def test_a_stakeholder_is_an_active_connection_from_an_opportunity_to_a_contact(
    values: dict[str, object], expected: bool
) -> None:
    assert (stakeholder(Record("k1", None, values)) is not None) is expected


def test_a_connection_change_names_its_opportunity() -> None:
    context = render_context(
        message_name="Delete",
        entity_name="connection",
        entity_id="0a000000-0000-0000-0000-000000000001",
        user_id="0b000000-0000-0000-0000-000000000001",
        pre_images={
            "PreImage": {"record1id": EntityRef(OPP, "opportunity", None), "record2id": EntityRef(ADA, "contact", None)}
        },
    )
    note = connection_notification(parse_context(context), source=Source.DATAVERSE_WEBHOOK)
    assert note is not None
    assert (note.entity, note.dynamics_id) == ("opportunity", OPP)
    unrelated = render_context(
        message_name="Create",
        entity_name="connection",
        entity_id="0a000000-0000-0000-0000-000000000002",
        user_id="0b000000-0000-0000-0000-000000000001",
        attributes={"record1id": EntityRef(ADA, "contact", None), "record2id": EntityRef(GRACE, "contact", None)},
    )
    assert connection_notification(parse_context(unrelated), source=Source.DATAVERSE_WEBHOOK) is None


# --- through the reconciler: one batch naming an opportunity and its new contact ----------------------------------


def test_an_opportunity_and_its_new_contact_in_one_batch_give_the_role_at_once(stack: Stack) -> None:
    contact = stack.create("contact", firstname="Ada", lastname="Lovelace", emailaddress1="ada@example.com")
    opportunity = stack.create("opportunity", name="Engines", **{"parentcontactid@odata.bind": f"/contacts({contact})"})
    report = stack.sync(stack.changed("opportunity", opportunity), stack.changed("contact", contact))
    assert not report.errors
    assert not report.requeued  # persons first: the contact has its person when roles go
    person = int(stack.person("ada@example.com")["id"])
    roles = [r for r in stack.mk.objects["roles"].records.values() if r["externalOpportunityId"] == opportunity]
    assert [(r["leadId"], r["role"], r["isPrimary"]) for r in roles] == [(person, "Primary Contact", True)]


def test_an_opportunity_whose_contact_has_not_synced_yet_is_decided_again_a_few_times(stack: Stack) -> None:
    contact = stack.create("contact", firstname="Ada", lastname="Lovelace", emailaddress1="ada@example.com")
    opportunity = stack.create("opportunity", name="Engines", **{"parentcontactid@odata.bind": f"/contacts({contact})"})
    report = stack.sync(stack.changed("opportunity", opportunity))
    assert [(n.entity, n.dynamics_id, n.attempt) for n in report.requeued] == [("opportunity", opportunity, 1)]
    last = stack.sync(stack.changed("opportunity", opportunity, attempt=CONTACT_WAITS - 1))
    assert last.requeued == []  # it gives up quietly: the role comes at its next reconcile
    assert last.errors == []
