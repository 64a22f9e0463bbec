"""A field whose collisions go to the side modified last reads both records' modified times (Dataverse
``modifiedon``, Marketo ``updatedAt``) and only then; the decision is the core's (tests/core/test_field_rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.mapping import FieldWinner, SyncMapping
from shared.pipeline.dataverse_side import dataverse_select
from shared.pipeline.marketo_side import person_fields
from tests.pipeline.reconcile_harness import Stack, stack

__all__ = ["stack"]


def _latest_jobtitle(mapping: SyncMapping) -> SyncMapping:
    data = mapping.model_dump(mode="json")
    for entity in data["entities"]:
        if entity["entity"] == "lead":
            for f in entity["fields"]:
                if f["dynamics"] == "jobtitle":
                    f["winner"] = FieldWinner.LATEST.value
    return SyncMapping.model_validate(data)


def test_the_modified_times_are_read_only_for_a_latest_field(stack: Stack) -> None:
    s = stack
    plain, latest = s.mapping.get("lead"), _latest_jobtitle(s.mapping).get("lead")
    assert "modifiedon" not in dataverse_select(plain)
    assert "updatedAt" not in person_fields(plain)
    assert "modifiedon" in dataverse_select(latest)
    assert "updatedAt" in person_fields(latest)


def test_a_lead_collision_on_a_latest_field_goes_to_the_later_dynamics_edit(stack: Stack) -> None:
    s = stack
    mapping = _latest_jobtitle(s.mapping)
    lead, person = s.synced_person(
        "lead", firstname="Lia", lastname="Late", emailaddress1="lia@example.com", jobtitle="v1"
    )
    s.mk.change_lead(person["id"], title="from Marketo")  # first...
    later = datetime.now(UTC) + timedelta(minutes=5)
    s.dv._now = lambda: later
    s.update("lead", lead, jobtitle="from Dynamics")  # ...then Dynamics, five minutes later
    report = s.sync(s.changed("lead", lead), s.changed_in_marketo(int(person["id"])), reconciler=s.reconciler(mapping))
    assert not report.errors
    assert s.mk.lead(int(person["id"]))["title"] == "from Dynamics"  # type: ignore[index]  # Marketo would win a lead
    assert s.dv.get("lead", lead)["jobtitle"] == "from Dynamics"  # type: ignore[index]
