"""A record's history entry, built from a decision and the state it was made from: pure, one rule a test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.entities import Side
from shared.core.history import VALUE_CHARS, HistoryEntry, Outcome, history_entry, worth_keeping
from shared.core.mapping import EntityMapping
from shared.core.policy import RecordState, Trigger, decide, decide_one_way
from shared.core.values import Canonical, ConversionError

T0 = datetime(2026, 12, 1, 12, 0, 30, 123456, tzinfo=UTC)
FIELDS: list[dict[str, Any]] = [
    {"dynamics": "jobtitle", "marketo": "title", "type": "text"},
    {"dynamics": "firstname", "marketo": "firstName", "type": "text"},
    {"dynamics": "numberofemployees", "marketo": "numberOfEmployees", "type": "integer"},
]
RID = "8C1A2B3C-0000-4000-8000-000000000001"


def entity(name: str) -> EntityMapping:
    return EntityMapping.model_validate({"entity": name, "fields": FIELDS})


def person_state(
    dynamics: dict[str, Any], marketo: dict[str, Any] | None, baseline: dict[str, Any], **kw: Any
) -> RecordState:
    base: dict[str, Canonical] = {"jobtitle": "Engineer", "firstname": "Ada", "numberofemployees": 10}
    return RecordState(
        dynamics={**base, **dynamics},
        marketo={**base, **marketo} if marketo is not None else None,
        baseline={**base, **baseline} if baseline else {},
        **kw,
    )


def test_a_collision_on_a_lead_keeps_both_values_the_baseline_and_marketo_as_the_winner() -> None:
    state = person_state(
        {"jobtitle": "Dynamics title"},
        {"jobtitle": "Marketo title"},
        {"jobtitle": "Engineer"},
        trigger=Trigger(Side.DYNAMICS),
    )
    decision = decide(entity("lead"), state)
    entry = history_entry(RID, decision, state, at=T0, sources=["dataverse_webhook", "marketo_webhook"])
    assert entry is not None
    assert (entry.entity, entry.dynamics_id, entry.action) == ("lead", RID.lower(), "sync")
    assert (entry.source, entry.side, entry.by_sync) == ("dataverse_webhook,marketo_webhook", "dynamics", False)
    (field,) = entry.fields  # the fields in step are left out
    assert field.field == "jobtitle"
    assert (field.dynamics, field.marketo, field.baseline, field.value) == (
        "Dynamics title",
        "Marketo title",
        "Engineer",
        "Marketo title",
    )
    assert (field.action, field.winner) == ("write_dynamics", "marketo")
    assert field.reason == "changed on both sides: Marketo wins for leads"


def test_a_collision_on_a_contact_is_won_by_dynamics() -> None:
    state = person_state({"jobtitle": "D"}, {"jobtitle": "M"}, {"jobtitle": "Engineer"}, trigger=Trigger(Side.MARKETO))
    entry = history_entry(RID, decide(entity("contact"), state), state, at=T0)
    assert entry is not None
    (field,) = entry.fields
    assert (field.action, field.winner, field.value, entry.side) == ("write_marketo", "dynamics", "D", "marketo")


@pytest.mark.parametrize("by_sync", [False, True])
def test_a_decision_that_carries_nothing_gives_no_entry(by_sync: bool) -> None:
    state = person_state({}, {}, {"jobtitle": "Engineer"}, trigger=Trigger(Side.MARKETO, by_sync=by_sync))
    decision = decide(entity("lead"), state)
    assert not worth_keeping(decision)
    assert history_entry(RID, decision, state, at=T0) is None


def test_a_one_sided_change_is_kept_with_its_direction() -> None:
    state = person_state({}, {"firstname": "Augusta"}, {"firstname": "Ada"}, trigger=Trigger(Side.MARKETO))
    entry = history_entry(RID, decide(entity("lead"), state), state, at=T0, sources=["marketo_feed"])
    assert entry is not None
    (field,) = entry.fields
    assert (field.action, field.reason, field.winner) == ("write_dynamics", "changed in Marketo only", None)
    assert (field.dynamics, field.marketo, field.baseline, field.value) == ("Ada", "Augusta", "Ada", "Augusta")


def test_a_create_is_kept_with_what_marketo_gets() -> None:
    state = person_state({}, None, {}, trigger=Trigger(Side.DYNAMICS))
    entry = history_entry(RID, decide(entity("lead"), state), state, at=T0)
    assert entry is not None
    assert entry.action == "create_in_marketo"
    assert {f.field: (f.action, f.marketo, f.value) for f in entry.fields} == {
        "jobtitle": ("write_marketo", None, "Engineer"),
        "firstname": ("write_marketo", None, "Ada"),
        "numberofemployees": ("write_marketo", None, 10),
    }


def test_a_record_kept_out_by_the_sync_filter_is_kept_so_the_admin_sees_why() -> None:
    state = person_state({}, {}, {"jobtitle": "Engineer"}, sync_filter=False)
    entry = history_entry(RID, decide(entity("lead"), state), state, at=T0)
    assert entry is not None
    assert (entry.action, entry.fields) == ("skip_filtered", ())
    assert "new_synctomkto" in entry.reason


def test_a_value_that_cannot_be_converted_is_kept_with_its_reason_and_no_value() -> None:
    bad = ConversionError("numberofemployees", "canonical", "expected a whole number")
    state = person_state({"numberofemployees": bad}, {}, {"numberofemployees": 10})
    entry = history_entry(RID, decide(entity("lead"), state), state, at=T0)
    assert entry is not None
    (field,) = entry.fields
    assert (field.action, field.dynamics, field.marketo, field.error) == ("error", None, 10, "expected a whole number")


def test_a_one_way_upsert_leaves_out_the_unchanged_fields_it_re_sends() -> None:
    mapping = entity("account")
    baseline: dict[str, Canonical] = {"jobtitle": "Engineer", "firstname": "Ada", "numberofemployees": 10}
    dynamics: dict[str, Canonical | ConversionError] = {**baseline, "numberofemployees": 12}
    decision = decide_one_way(mapping, dynamics, baseline, linked=True)
    state = RecordState(dynamics, None, baseline, trigger=Trigger(Side.DYNAMICS))
    entry = history_entry(RID, decision, state, at=T0, sources=["dataverse_catchup"])
    assert entry is not None
    assert entry.action == "upsert_in_marketo"
    assert [(f.field, f.dynamics, f.baseline, f.value) for f in entry.fields] == [("numberofemployees", 12, 10, 12)]
    unchanged = decide_one_way(mapping, baseline, baseline, linked=True)
    assert history_entry(RID, unchanged, RecordState(baseline, None, baseline), at=T0) is None


def test_long_strings_are_cut_and_the_entry_round_trips_through_its_document() -> None:
    long = "x" * (VALUE_CHARS + 500)
    state = person_state({"jobtitle": long}, {}, {"jobtitle": "Engineer"}, trigger=Trigger(Side.DYNAMICS))
    entry = history_entry(RID, decide(entity("lead"), state), state, at=T0)
    assert entry is not None
    (field,) = entry.fields
    assert field.dynamics == field.value == "x" * VALUE_CHARS + "…"
    doc = entry.settled(Outcome.FAILED).as_doc()
    assert doc["at"] == "2026-12-01T12:00:30+00:00"  # to the second, in UTC
    assert doc["trigger"] == {"source": None, "side": "dynamics", "by_sync": False}
    assert doc["outcome"] == "failed"
    assert set(doc["fields"][0]) == {"field", "action", "reason", "dynamics", "marketo", "baseline", "value", "winner"}
    back = HistoryEntry.from_doc(doc)
    assert back.fields == entry.fields
    assert back.outcome is Outcome.FAILED
    assert back.at == T0.replace(microsecond=0)
