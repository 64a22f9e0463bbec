"""Which way each Dynamics entity syncs, what it becomes in Marketo, and who wins a collision.

The table mirrors ``sync-rules.md``: lead and contact sync both ways with a person; everything else flows from
Dynamics to Marketo only, and for those Dynamics always wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    BOTH = "both"
    TO_MARKETO = "dynamics_to_marketo"


class Side(StrEnum):
    DYNAMICS = "dynamics"
    MARKETO = "marketo"


class MarketoObject(StrEnum):
    PERSON = "person"
    COMPANY = "company"
    SALES_PERSON = "sales_person"
    OPPORTUNITY = "opportunity"
    CUSTOM_OBJECT = "custom_object"


@dataclass(frozen=True, slots=True)
class EntityRule:
    """How one Dynamics entity syncs. ``marketo_key`` is the Marketo field that holds the Dynamics id."""

    logical_name: str
    marketo_object: MarketoObject
    direction: Direction
    collision_winner: Side
    marketo_key: str

    @property
    def two_way(self) -> bool:
        return self.direction is Direction.BOTH


_KNOWN: dict[str, EntityRule] = {
    rule.logical_name: rule
    for rule in (
        # A person linked to a Dynamics lead: Marketo wins collisions (marketing owns leads).
        EntityRule("lead", MarketoObject.PERSON, Direction.BOTH, Side.MARKETO, "dynamicsLeadId"),
        # A person linked to a Dynamics contact: Dynamics wins (sales owns contacts).
        EntityRule("contact", MarketoObject.PERSON, Direction.BOTH, Side.DYNAMICS, "dynamicsContactId"),
        EntityRule("account", MarketoObject.COMPANY, Direction.TO_MARKETO, Side.DYNAMICS, "externalCompanyId"),
        EntityRule(
            "systemuser", MarketoObject.SALES_PERSON, Direction.TO_MARKETO, Side.DYNAMICS, "externalSalesPersonId"
        ),
        EntityRule(
            "opportunity", MarketoObject.OPPORTUNITY, Direction.TO_MARKETO, Side.DYNAMICS, "externalOpportunityId"
        ),
        EntityRule("team", MarketoObject.CUSTOM_OBJECT, Direction.TO_MARKETO, Side.DYNAMICS, "dynamicsId"),
    )
}

BUILT_IN = frozenset(_KNOWN)


def rule_for(logical_name: str) -> EntityRule:
    """The rule for an entity; any entity not in the table is a custom entity, synced one way as a custom object."""
    name = logical_name.strip().lower()
    if not name:
        raise ValueError("an entity logical name is required")
    known = _KNOWN.get(name)
    if known is not None:
        return known
    return EntityRule(name, MarketoObject.CUSTOM_OBJECT, Direction.TO_MARKETO, Side.DYNAMICS, "dynamicsId")
