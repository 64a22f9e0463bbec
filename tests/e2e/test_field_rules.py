"""Per-field rules end to end: the shipped mapping's Marketo-owned lead score (``new_leadscore`` <- ``leadScore``,
``direction: to_dynamics``) flows Marketo -> Dynamics only, on leads and contacts."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import World


@pytest.mark.parametrize("entity", ["lead", "contact"])
def test_marketo_owns_the_lead_score(world: World, entity: str) -> None:
    record = world.create(entity, firstname="Sam", lastname="Score", emailaddress1="sam@example.com", new_leadscore=7)
    world.settle()
    person = world.person(email="sam@example.com")
    assert person.get("leadScore") in (None, 0)  # the new person did not get Dynamics' 7: Marketo scores
    world.mk.change_lead(person["id"], leadScore=42)  # Marketo scores the person
    world.settle()
    assert world.row(entity, record)["new_leadscore"] == 42
    world.update(entity, record, new_leadscore=99)  # someone edits it in Dynamics
    world.settle()
    assert world.row(entity, record)["new_leadscore"] == 42  # restored: Marketo owns it
    assert world.mk.lead(person["id"])["leadScore"] == 42  # type: ignore[index]
    world.update(entity, record, jobtitle="Lead scorer")  # the other fields flow as before
    world.settle()
    assert world.mk.lead(person["id"])["title"] == "Lead scorer"  # type: ignore[index]
