"""Per-field rules, one row each: Marketo-owned fields (``direction: to_dynamics``) and a field's own collision
winner (``winner: dynamics | marketo | latest``), beside the entity rule they override (sync-rules.md, round 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.core.entities import Side
from shared.core.mapping import EntityMapping
from shared.core.policy import Action, Reason, RecordAction, RecordState, decide

T = datetime(2026, 12, 1, 12, tzinfo=UTC)
SCORE = {"dynamics": "new_leadscore", "marketo": "leadScore", "type": "integer", "direction": "to_dynamics"}


def entity(name: str, **field: Any) -> EntityMapping:
    return EntityMapping.model_validate(
        {"entity": name, "fields": [{"dynamics": "jobtitle", "marketo": "title", "type": "text", **field}, SCORE]}
    )


def one(mapping: EntityMapping, column: str, b: Any, d: Any, m: Any, **kw: Any) -> Any:
    baseline = {} if b is None else {column: b}
    decision = decide(mapping, RecordState(dynamics={column: d}, marketo={column: m}, baseline=baseline, **kw))
    (found,) = [f for f in decision.fields if f.field == column]
    return found


@pytest.mark.parametrize("name", ["lead", "contact"])
@pytest.mark.parametrize(
    ("b", "d", "m", "action", "reason", "value", "winner"),
    [
        (10, 10, 20, Action.WRITE_DYNAMICS, Reason.MARKETO_OWNED, 20, None),  # Marketo changed: copied over
        (10, 99, 10, Action.WRITE_DYNAMICS, Reason.MARKETO_OWNED_RESTORE, 10, None),  # a Dynamics edit is undone
        (10, 99, 20, Action.WRITE_DYNAMICS, Reason.MARKETO_OWNED, 20, Side.MARKETO),  # both: Marketo, for contacts too
        (None, 99, 20, Action.WRITE_DYNAMICS, Reason.MARKETO_OWNED, 20, None),  # first sync: Marketo's value
        (None, 99, None, Action.WRITE_DYNAMICS, Reason.MARKETO_OWNED, None, None),  # even an empty one
        (10, 10, 10, Action.NONE, Reason.IN_SYNC, None, None),
    ],
)
def test_a_marketo_owned_field_always_follows_marketo(
    name: str, b: Any, d: Any, m: Any, action: Action, reason: Reason, value: Any, winner: Side | None
) -> None:
    found = one(entity(name), "new_leadscore", b, d, m)
    assert (found.action, found.reason, found.winner) == (action, reason, winner)
    if action is Action.WRITE_DYNAMICS:
        assert found.value == value


def test_a_person_created_from_dynamics_does_not_get_a_marketo_owned_value() -> None:
    decision = decide(entity("lead"), RecordState(dynamics={"jobtitle": "Eng", "new_leadscore": 99}, marketo=None))
    assert decision.action is RecordAction.CREATE_IN_MARKETO
    assert decision.marketo_writes == {"jobtitle": "Eng"}
    assert "new_leadscore" not in decision.new_baseline  # the next reconcile copies Marketo's score to Dynamics


@pytest.mark.parametrize(
    ("name", "winner", "action", "reason"),
    [
        ("lead", None, Action.WRITE_DYNAMICS, Reason.COLLISION_LEAD),  # the entity rule, unchanged
        ("contact", None, Action.WRITE_MARKETO, Reason.COLLISION_CONTACT),
        ("lead", "dynamics", Action.WRITE_MARKETO, Reason.COLLISION_FIELD_DYNAMICS),  # "Dynamics wins for this field"
        ("contact", "marketo", Action.WRITE_DYNAMICS, Reason.COLLISION_FIELD_MARKETO),
    ],
)
def test_a_field_may_name_its_own_collision_winner(
    name: str, winner: str | None, action: Action, reason: Reason
) -> None:
    mapping = entity(name, **({"winner": winner} if winner else {}))
    found = one(mapping, "jobtitle", "old", "from Dynamics", "from Marketo")
    assert (found.action, found.reason) == (action, reason)


@pytest.mark.parametrize(
    ("name", "d_modified", "m_modified", "action", "reason"),
    [
        ("lead", T + timedelta(minutes=5), T, Action.WRITE_MARKETO, Reason.COLLISION_LATEST),  # Dynamics later
        ("contact", T, T + timedelta(minutes=5), Action.WRITE_DYNAMICS, Reason.COLLISION_LATEST),  # Marketo later
        ("lead", T, T, Action.WRITE_DYNAMICS, Reason.COLLISION_LEAD),  # a tie: the entity rule
        ("contact", None, T, Action.WRITE_MARKETO, Reason.COLLISION_CONTACT),  # a time unknown: the entity rule
    ],
)
def test_latest_gives_a_collision_to_the_side_modified_last(
    name: str, d_modified: datetime | None, m_modified: datetime | None, action: Action, reason: Reason
) -> None:
    found = one(
        entity(name, winner="latest"),
        "jobtitle",
        "old",
        "from Dynamics",
        "from Marketo",
        dynamics_modified=d_modified,
        marketo_modified=m_modified,
    )
    assert (found.action, found.reason) == (action, reason)


def test_a_change_on_one_side_still_flows_whatever_the_winner() -> None:
    found = one(entity("contact", winner="latest"), "jobtitle", "old", "old", "new", dynamics_modified=T + timedelta(1))
    assert (found.action, found.reason) == (Action.WRITE_DYNAMICS, Reason.CHANGED_IN_MARKETO)


@pytest.mark.parametrize(
    ("name", "field", "message"),
    [
        ("lead", {"one_way": True, "direction": "to_dynamics"}, "contradicts"),
        ("lead", {"one_way": True, "winner": "marketo"}, "winner is for fields that sync both ways"),
        ("lead", {"type": "lookup", "direction": "to_dynamics"}, "cannot flow to Dynamics"),
        ("account", {"winner": "marketo"}, "Dynamics -> Marketo only"),
        ("account", {"direction": "to_dynamics"}, "Dynamics -> Marketo only"),
    ],
)
def test_rules_that_cannot_hold_are_refused_with_the_reason(name: str, field: dict[str, Any], message: str) -> None:
    fields = [{"dynamics": "name", "marketo": "company", "type": "text", **field}]
    with pytest.raises(ValidationError, match=message):
        EntityMapping.model_validate({"entity": name, "fields": fields})
