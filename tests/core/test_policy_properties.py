"""Rules that must hold for every order of events (hypothesis).

A small world (one record, both systems, the stored baseline) is driven through edits and notifications; the
sync's handling of a notification is the real decision core: read both sides, decide, apply the writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.entities import Side
from shared.core.mapping import EntityMapping
from shared.core.policy import Action, Decision, RecordAction, RecordState, Trigger, decide
from shared.core.values import Canonical

CHOICES = [{"value": 1, "label": "Hot"}, {"value": 2, "label": "Warm"}]
FIELDS: list[dict[str, Any]] = [
    {"dynamics": "jobtitle", "marketo": "title", "type": "text"},
    {"dynamics": "telephone1", "marketo": "phone", "type": "text", "one_way": True},
    {"dynamics": "leadqualitycode", "marketo": "leadRating", "type": "choice", "options": CHOICES},
]
MAPPINGS = {
    name: EntityMapping.model_validate({"entity": name, "fields": FIELDS}) for name in ("lead", "contact", "account")
}
VALUES: dict[str, list[Canonical]] = {
    "jobtitle": ["a", "b", "c", None],
    "telephone1": ["1", "2", None],
    "leadqualitycode": [1, 2, None],
}
COLUMNS = sorted(VALUES)


@dataclass
class World:
    dynamics: dict[str, Canonical]
    marketo: dict[str, Canonical]
    baseline: dict[str, Canonical] = field(default_factory=dict)

    def copy(self) -> World:
        return World(dict(self.dynamics), dict(self.marketo), dict(self.baseline))


def apply(decision: Decision, world: World) -> None:
    """What the pipeline does with a decision, minus the I/O."""
    assert decision.action is RecordAction.SYNC
    for f in decision.fields:
        if f.action is Action.WRITE_DYNAMICS:
            world.dynamics[f.field] = f.value
        elif f.action is Action.WRITE_MARKETO:
            world.marketo[f.field] = f.value
    world.baseline = dict(decision.new_baseline)


def handle(mapping: EntityMapping, world: World, trigger: Trigger | None = None) -> Decision:
    decision = decide(mapping, RecordState(world.dynamics, world.marketo, world.baseline, trigger=trigger))
    apply(decision, world)
    return decision


def expected(mapping: EntityMapping, column: str, base: dict[str, Canonical], d: Canonical, m: Canonical) -> Canonical:
    """The rule table of sync-rules.md, written independently of the policy as an oracle."""
    one_way = not mapping.rule.two_way or column == "telephone1"
    dynamics_wins = one_way or mapping.entity == "contact"
    if d == m or one_way:
        return d
    if column not in base:
        if d is None:
            return m
        if m is None:
            return d
        return d if dynamics_wins else m
    b = base[column]
    if m == b:
        return d
    if d == b:
        return m
    return d if dynamics_wins else m


def values() -> st.SearchStrategy[dict[str, Canonical]]:
    return st.fixed_dictionaries({c: st.sampled_from(VALUES[c]) for c in COLUMNS})


entities = st.sampled_from(sorted(MAPPINGS))
edits = st.lists(
    st.tuples(st.sampled_from([Side.DYNAMICS, Side.MARKETO]), st.sampled_from(COLUMNS)).flatmap(
        lambda e: st.tuples(st.just(e[0]), st.just(e[1]), st.sampled_from(VALUES[e[1]]))
    ),
    max_size=8,
)


@given(entities, values(), values(), values(), st.sets(st.sampled_from(COLUMNS)))
def test_after_the_decided_writes_both_sides_agree_and_match_the_rule_table(
    name: str, base: dict[str, Canonical], dyn: dict[str, Canonical], mkt: dict[str, Canonical], unsynced: set[str]
) -> None:
    mapping = MAPPINGS[name]
    baseline = {k: v for k, v in base.items() if k not in unsynced}
    world = World(dict(dyn), dict(mkt), baseline)
    handle(mapping, world)
    assert world.dynamics == world.marketo == world.baseline
    for column in COLUMNS:
        assert world.dynamics[column] == expected(mapping, column, baseline, dyn[column], mkt[column]), column


@given(entities, values(), values(), values())
def test_deciding_again_after_the_writes_has_nothing_to_do(
    name: str, base: dict[str, Canonical], dyn: dict[str, Canonical], mkt: dict[str, Canonical]
) -> None:
    mapping = MAPPINGS[name]
    world = World(dict(dyn), dict(mkt), dict(base))
    handle(mapping, world)
    settled = world.copy()
    again = handle(mapping, world, Trigger(Side.MARKETO, by_sync=True))
    assert not again.has_writes
    assert world == settled


@settings(max_examples=300)
@given(entities, values(), edits, st.randoms(use_true_random=False), st.integers(0, 3))
def test_the_final_state_does_not_depend_on_the_order_notifications_arrive(
    name: str, start: dict[str, Canonical], changes: list[tuple[Side, str, Canonical]], rng: Any, duplicates: int
) -> None:
    mapping = MAPPINGS[name]
    world = World(dict(start), dict(start), dict(start))
    for side, column, value in changes:  # edits made while the sync was not looking (paused, or in flight)
        (world.dynamics if side is Side.DYNAMICS else world.marketo)[column] = value
    before = world.copy()
    notifications = [Trigger(side) for side, _, _ in changes] + [Trigger(Side.DYNAMICS)] * duplicates
    in_order = before.copy()
    for trigger in notifications:
        handle(mapping, in_order, trigger)
    shuffled = list(notifications)
    rng.shuffle(shuffled)
    any_order = before.copy()
    for trigger in shuffled:
        handle(mapping, any_order, trigger)
    assert any_order == in_order
    if notifications:
        assert in_order.dynamics == in_order.marketo
        for column in COLUMNS:
            oracle = expected(mapping, column, before.baseline, before.dynamics[column], before.marketo[column])
            assert in_order.dynamics[column] == oracle


@settings(max_examples=300)
@given(entities, values(), edits, st.lists(st.booleans(), min_size=8, max_size=8))
def test_edits_interleaved_with_sync_runs_always_converge(
    name: str, start: dict[str, Canonical], changes: list[tuple[Side, str, Canonical]], run_after: list[bool]
) -> None:
    mapping = MAPPINGS[name]
    world = World(dict(start), dict(start), dict(start))
    for (side, column, value), run in zip(changes, run_after, strict=False):
        (world.dynamics if side is Side.DYNAMICS else world.marketo)[column] = value
        if run:
            handle(mapping, world, Trigger(side))
    handle(mapping, world)  # the last notification, or the catch-up timer
    assert world.dynamics == world.marketo == world.baseline
    assert not handle(mapping, world).has_writes
