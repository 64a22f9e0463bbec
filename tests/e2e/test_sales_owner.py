"""Persons, companies and opportunities carry their Dynamics owner's sales person (``externalSalesPersonId``), as
Marketo Sales Insight needs from a non-native CRM integration; a team owner has no sales person."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import World


def _user(world: World, first: str, last: str) -> str:
    user_id = world.create("systemuser", firstname=first, lastname=last, internalemailaddress=f"{first}@example.com")
    world.settle()
    return user_id


def _owned_by(user_id: str) -> dict[str, str]:
    return {"ownerid@odata.bind": f"/systemusers({user_id})"}


def _company(world: World, account_id: str) -> dict[str, Any]:
    (found,) = [c for c in world.mk.objects["companies"].records.values() if c["externalCompanyId"] == account_id]
    return found


def test_a_person_carries_its_owners_sales_person_and_follows_an_owner_change(world: World) -> None:
    grace = _user(world, "Grace", "Hopper")
    alan = _user(world, "Alan", "Turing")
    sales_persons = {p["externalSalesPersonId"] for p in world.mk.objects["salespersons"].records.values()}
    assert {grace, alan} <= sales_persons  # the users are Marketo sales persons first
    lead = world.create(
        "lead", firstname="Ada", lastname="Lovelace", emailaddress1="ada@example.com", **_owned_by(grace)
    )
    contact = world.create("contact", firstname="Mary", lastname="Somerville", emailaddress1="mary@example.com")
    world.settle()
    assert world.person(email="ada@example.com")["externalSalesPersonId"] == grace
    assert world.person(email="mary@example.com")["externalSalesPersonId"] == world.tenants.admin_user_id  # its creator
    world.update("lead", lead, **_owned_by(alan))  # the owner alone changes
    world.update("contact", contact, **_owned_by(grace))
    world.settle()
    assert world.person(email="ada@example.com")["externalSalesPersonId"] == alan
    assert world.person(email="mary@example.com")["externalSalesPersonId"] == grace
    assert world.store.list_errors() == []


def test_a_company_carries_its_owners_sales_person_and_follows_an_owner_change(world: World) -> None:
    grace = _user(world, "Grace", "Hopper")
    alan = _user(world, "Alan", "Turing")
    account = world.create("account", name="Analytical Engines", **_owned_by(grace))
    world.settle()
    assert _company(world, account)["externalSalesPersonId"] == grace
    calls = world.mk.calls["POST /rest/v1/companies/sync.json"]
    world.update("account", account, **_owned_by(alan))
    world.settle()
    assert _company(world, account)["externalSalesPersonId"] == alan
    assert world.mk.calls["POST /rest/v1/companies/sync.json"] == calls + 1
    world.update("account", account, name="Analytical Engines Ltd")  # the owner unchanged: sent with the upsert
    world.settle()
    assert _company(world, account)["externalSalesPersonId"] == alan


def test_a_team_owner_has_no_sales_person(world: World) -> None:
    grace = _user(world, "Grace", "Hopper")
    team = world.create("team", name="Inside Sales")
    lead = world.create(
        "lead", firstname="Ada", lastname="Lovelace", emailaddress1="ada@example.com", **_owned_by(grace)
    )
    account = world.create("account", name="Analytical Engines", **_owned_by(grace))
    world.settle()
    world.update("lead", lead, **{"ownerid@odata.bind": f"/teams({team})"})
    world.update("account", account, **{"ownerid@odata.bind": f"/teams({team})"})
    world.settle()
    assert world.person(email="ada@example.com").get("externalSalesPersonId") is None
    assert _company(world, account).get("externalSalesPersonId") is None


def test_an_opportunity_carries_its_owners_sales_person(world: World) -> None:
    grace = _user(world, "Grace", "Hopper")
    opportunity = world.create("opportunity", name="Engines for the Navy", **_owned_by(grace))
    world.settle()
    (found,) = [
        o for o in world.mk.objects["opportunities"].records.values() if o["externalOpportunityId"] == opportunity
    ]
    assert found["externalSalesPersonId"] == grace
