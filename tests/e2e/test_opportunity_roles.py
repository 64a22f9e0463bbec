"""An opportunity's roles in Marketo follow its contacts in Dynamics: the primary contact, the Potential Customer
when it is a contact, and its stakeholders (connections with a role), through the webhooks and the catch-up."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import World


def _contact(world: World, first: str) -> tuple[str, int]:
    contact_id = world.create(
        "contact", firstname=first, lastname="Example", emailaddress1=f"{first.lower()}@example.com"
    )
    world.settle()
    return contact_id, int(world.person(email=f"{first.lower()}@example.com")["id"])


def _roles(world: World, opportunity_id: str) -> set[tuple[int, str, bool]]:
    records: list[dict[str, Any]] = list(world.mk.objects["roles"].records.values())
    return {
        (int(r["leadId"]), r["role"], bool(r.get("isPrimary")))
        for r in records
        if r["externalOpportunityId"] == opportunity_id
    }


def _connect(world: World, opportunity_id: str, contact_id: str, role_id: str) -> str:
    return world.create(
        "connection",
        **{
            "record1id_opportunity@odata.bind": f"/opportunities({opportunity_id})",
            "record2id_contact@odata.bind": f"/contacts({contact_id})",
            "record2roleid@odata.bind": f"/connectionroles({role_id})",
        },
    )


def test_a_new_primary_contact_replaces_the_old_ones_role(world: World) -> None:
    ada, ada_person = _contact(world, "Ada")
    grace, grace_person = _contact(world, "Grace")
    opportunity = world.create(
        "opportunity", name="Engines for the Navy", **{"parentcontactid@odata.bind": f"/contacts({ada})"}
    )
    world.settle()
    assert _roles(world, opportunity) == {(ada_person, "Primary Contact", True)}
    world.update("opportunity", opportunity, **{"parentcontactid@odata.bind": f"/contacts({grace})"})  # only that
    world.settle()
    assert _roles(world, opportunity) == {(grace_person, "Primary Contact", True)}
    deletes = world.mk.calls["POST /rest/v1/opportunities/roles/delete.json"]
    world.update("opportunity", opportunity, name="Engines for the Royal Navy")
    world.settle()
    assert _roles(world, opportunity) == {(grace_person, "Primary Contact", True)}
    assert world.mk.calls["POST /rest/v1/opportunities/roles/delete.json"] == deletes  # in step: no role call
    assert world.store.list_errors() == []


def test_a_potential_customer_that_is_a_contact_becomes_a_role(world: World) -> None:
    ada, ada_person = _contact(world, "Ada")
    account = world.create("account", name="Analytical Engines")
    opportunity = world.create(
        "opportunity", name="Engines for the Navy", **{"customerid_contact@odata.bind": f"/contacts({ada})"}
    )
    world.settle()
    assert _roles(world, opportunity) == {(ada_person, "Potential Customer", True)}  # no primary contact: primary
    world.update("opportunity", opportunity, **{"customerid_account@odata.bind": f"/accounts({account})"})
    world.settle()
    assert _roles(world, opportunity) == set()  # an account is no role


def test_stakeholders_become_roles_and_go_when_their_connection_goes(world: World) -> None:
    ada, ada_person = _contact(world, "Ada")
    grace, grace_person = _contact(world, "Grace")
    decider = world.create("connectionrole", name="Decision Maker", category=1000)
    opportunity = world.create(
        "opportunity", name="Engines for the Navy", **{"parentcontactid@odata.bind": f"/contacts({ada})"}
    )
    world.settle()
    connection = _connect(world, opportunity, grace, decider)
    world.settle()
    assert _roles(world, opportunity) == {
        (ada_person, "Primary Contact", True),
        (grace_person, "Decision Maker", False),
    }
    world.delete("connection", connection)
    world.settle()
    assert _roles(world, opportunity) == {(ada_person, "Primary Contact", True)}
    assert world.store.list_errors() == []


def test_the_catch_up_follows_connections_the_webhooks_missed(world: World) -> None:
    ada, ada_person = _contact(world, "Ada")
    influencer = world.create("connectionrole", name="Influencer", category=1000)
    opportunity = world.create("opportunity", name="Engines for the Navy")
    world.settle()
    world.fire("dataverse_catchup")  # the initial read: delta links from here on
    world.dv.sender = lambda url, headers, body: 0  # the webhooks are lost: only the catch-up sees the changes
    connection = _connect(world, opportunity, ada, influencer)
    world.fire("dataverse_catchup")
    assert _roles(world, opportunity) == {(ada_person, "Influencer", False)}
    calls = world.mk.calls["POST /rest/v1/opportunities/roles.json"]
    world.fire("dataverse_catchup")  # nothing new: the opportunity is in step, not queued again
    assert world.mk.calls["POST /rest/v1/opportunities/roles.json"] == calls
    world.delete("connection", connection)
    world.fire("dataverse_catchup")  # a removed row names only itself: its opportunity is found by its baseline
    assert _roles(world, opportunity) == set()


def test_a_primary_contact_change_alone_is_seen_by_the_catch_up(world: World) -> None:
    ada, _ = _contact(world, "Ada")
    grace, grace_person = _contact(world, "Grace")
    opportunity = world.create(
        "opportunity", name="Engines for the Navy", **{"parentcontactid@odata.bind": f"/contacts({ada})"}
    )
    world.settle()
    world.fire("dataverse_catchup")
    world.dv.sender = lambda url, headers, body: 0
    world.update("opportunity", opportunity, **{"parentcontactid@odata.bind": f"/contacts({grace})"})
    world.fire("dataverse_catchup")  # no mapped column changed, yet it is no echo: the role contact did
    assert _roles(world, opportunity) == {(grace_person, "Primary Contact", True)}


def test_a_lead_qualified_with_an_opportunity_gives_it_the_new_contact_as_primary_role(world: World) -> None:
    world.create("lead", firstname="Ada", lastname="Lovelace", emailaddress1="ada@example.com", subject="Engines")
    world.settle()
    lead_id = world.dv.rows("lead")[0]["leadid"]
    person = int(world.person(email="ada@example.com")["id"])
    created = world.as_admin_app().qualify_lead(lead_id, create_opportunity=True)  # contact and opportunity at once
    world.settle()
    opportunity = next(ref.id for ref in created if ref.logical_name == "opportunity")
    assert _roles(world, opportunity) == {(person, "Primary Contact", True)}  # the lead's person, now the contact's


def test_a_contact_and_its_opportunity_created_together_still_give_the_role(world: World) -> None:
    world.fire("dataverse_catchup")
    world.dv.sender = lambda url, headers, body: 0  # both reach the sync in one catch-up run, so in one batch
    contact = world.create("contact", firstname="Ada", lastname="Lovelace", emailaddress1="ada@example.com")
    opportunity = world.create(
        "opportunity", name="Engines for the Navy", **{"parentcontactid@odata.bind": f"/contacts({contact})"}
    )
    world.fire("dataverse_catchup")
    assert _roles(world, opportunity) == {(int(world.person(email="ada@example.com")["id"]), "Primary Contact", True)}
