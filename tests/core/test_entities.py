"""The direction and collision tables of sync-rules.md, row by row."""

from __future__ import annotations

import pytest

from shared.core.entities import Direction, MarketoObject, Side, rule_for


@pytest.mark.parametrize(
    ("entity", "marketo_object", "direction"),
    [
        ("lead", MarketoObject.PERSON, Direction.BOTH),
        ("contact", MarketoObject.PERSON, Direction.BOTH),
        ("account", MarketoObject.COMPANY, Direction.TO_MARKETO),
        ("systemuser", MarketoObject.SALES_PERSON, Direction.TO_MARKETO),
        ("opportunity", MarketoObject.OPPORTUNITY, Direction.TO_MARKETO),
        ("team", MarketoObject.CUSTOM_OBJECT, Direction.TO_MARKETO),
        ("new_project", MarketoObject.CUSTOM_OBJECT, Direction.TO_MARKETO),
    ],
)
def test_each_entity_maps_to_its_marketo_object_in_its_direction(
    entity: str, marketo_object: MarketoObject, direction: Direction
) -> None:
    rule = rule_for(entity)
    assert (rule.marketo_object, rule.direction) == (marketo_object, direction)


@pytest.mark.parametrize(
    ("entity", "winner"),
    [
        ("lead", Side.MARKETO),
        ("contact", Side.DYNAMICS),
        ("account", Side.DYNAMICS),
        ("systemuser", Side.DYNAMICS),
        ("opportunity", Side.DYNAMICS),
        ("team", Side.DYNAMICS),
        ("new_anything", Side.DYNAMICS),
    ],
)
def test_collision_winner_is_marketo_for_leads_and_dynamics_for_everything_else(entity: str, winner: Side) -> None:
    assert rule_for(entity).collision_winner is winner


def test_entity_names_are_case_insensitive() -> None:
    assert rule_for(" Lead ") == rule_for("lead")


def test_an_empty_entity_name_is_refused() -> None:
    with pytest.raises(ValueError, match="logical name is required"):
        rule_for("  ")
