"""The reconcile rules of sync-rules.md, one row each."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from shared.core.entities import Side
from shared.core.mapping import EntityMapping, FieldState
from shared.core.policy import Action, Reason, RecordAction, RecordState, Trigger, decide
from shared.core.values import Canonical, ConversionError

FIELDS: list[dict[str, Any]] = [
    {"dynamics": "jobtitle", "marketo": "title", "type": "text"},
    {"dynamics": "telephone1", "marketo": "phone", "type": "text", "one_way": True},
    {
        "dynamics": "leadqualitycode",
        "marketo": "leadRating",
        "type": "choice",
        "options": [{"value": 1, "label": "Hot"}, {"value": 2, "label": "Warm"}],
    },
]


def entity(name: str, **overrides: Any) -> EntityMapping:
    extra: dict[str, Any] = {}
    if name in ("team", "new_project"):
        extra["custom_object"] = "object_c"
    if name == "new_project":
        extra["entity_set"] = "new_projects"
    fields = [{**f, **overrides.get(f["dynamics"], {})} for f in FIELDS]
    return EntityMapping.model_validate({"entity": name, "fields": fields, **extra})


def state(
    baseline: Canonical, dynamics: Canonical, marketo: Canonical, *, column: str = "jobtitle", **kw: Any
) -> RecordState:
    base: dict[str, Canonical] = {"jobtitle": "Engineer", "telephone1": "+1 555 0100", "leadqualitycode": 1}
    return RecordState(
        dynamics={**base, column: dynamics},
        marketo={**base, column: marketo},
        baseline={**base, column: baseline},
        **kw,
    )


def only(decision_fields: tuple[Any, ...], column: str) -> Any:
    return next(f for f in decision_fields if f.field == column)


class Rule(NamedTuple):
    name: str
    entity: str
    column: str
    values: tuple[Canonical, Canonical, Canonical]  # (baseline, dynamics, marketo); baseline None: never synced
    action: Action
    reason: Reason
    winner: Side | None
    agreed: Canonical


ONE_WAY = ("account", "systemuser", "opportunity", "team", "new_project")
W_MKTO, W_DYN, NONE = Action.WRITE_MARKETO, Action.WRITE_DYNAMICS, Action.NONE
MKTO, DYN = Side.MARKETO, Side.DYNAMICS

# fmt: off
RULES = [
    # A change made in one system only always flows to the other (one-way entities: only Dynamics -> Marketo).
    Rule("dynamics-only change flows to marketo (lead)", "lead", "jobtitle", ("Eng", "CTO", "Eng"), W_MKTO, Reason.CHANGED_IN_DYNAMICS, None, "CTO"),
    Rule("marketo-only change flows to dynamics (lead)", "lead", "jobtitle", ("Eng", "Eng", "CTO"), W_DYN, Reason.CHANGED_IN_MARKETO, None, "CTO"),
    Rule("dynamics-only change flows to marketo (contact)", "contact", "jobtitle", ("Eng", "CTO", "Eng"), W_MKTO, Reason.CHANGED_IN_DYNAMICS, None, "CTO"),
    Rule("marketo-only change flows to dynamics (contact)", "contact", "jobtitle", ("Eng", "Eng", "CTO"), W_DYN, Reason.CHANGED_IN_MARKETO, None, "CTO"),
    Rule("a value cleared in dynamics clears marketo", "contact", "jobtitle", ("Eng", None, "Eng"), W_MKTO, Reason.CHANGED_IN_DYNAMICS, None, None),
    *[Rule(f"dynamics-only change flows to marketo ({e})", e, "jobtitle", ("Eng", "CTO", "Eng"), W_MKTO, Reason.CHANGED_IN_DYNAMICS, None, "CTO") for e in ONE_WAY],
    # Collisions: Marketo wins for leads, Dynamics for contacts, Dynamics always for one-way entities.
    Rule("collision on a lead: marketo wins", "lead", "jobtitle", ("Eng", "CTO", "CEO"), W_DYN, Reason.COLLISION_LEAD, MKTO, "CEO"),
    Rule("collision on a contact: dynamics wins", "contact", "jobtitle", ("Eng", "CTO", "CEO"), W_MKTO, Reason.COLLISION_CONTACT, DYN, "CTO"),
    *[Rule(f"collision on a one-way {e}: dynamics wins", e, "jobtitle", ("Eng", "CTO", "CEO"), W_MKTO, Reason.COLLISION_ONE_WAY, DYN, "CTO") for e in ONE_WAY],
    # One-way: a Marketo-side edit is overwritten by the Dynamics value.
    *[Rule(f"marketo edit of a one-way {e} is overwritten", e, "jobtitle", ("Eng", "Eng", "CEO"), W_MKTO, Reason.ONE_WAY_OVERWRITE, None, "Eng") for e in ONE_WAY],
    Rule("marketo edit of a one-way field on a lead is overwritten", "lead", "telephone1", ("1", "1", "2"), W_MKTO, Reason.ONE_WAY_OVERWRITE, None, "1"),
    Rule("collision on a one-way field of a lead: dynamics wins", "lead", "telephone1", ("1", "2", "3"), W_MKTO, Reason.COLLISION_ONE_WAY, DYN, "2"),
    # Nothing to do.
    Rule("unchanged on both sides: nothing", "lead", "jobtitle", ("Eng", "Eng", "Eng"), NONE, Reason.IN_SYNC, None, "Eng"),
    Rule("both sides changed to the same value: nothing", "lead", "jobtitle", ("Eng", "CTO", "CTO"), NONE, Reason.IN_SYNC, None, "CTO"),
    # First sync of a field (no baseline yet).
    Rule("first sync fills an empty dynamics field from marketo", "lead", "jobtitle", (None, None, "CTO"), W_DYN, Reason.FIRST_SYNC_FILL, None, "CTO"),
    Rule("first sync fills an empty marketo field from dynamics", "contact", "jobtitle", (None, "CTO", None), W_MKTO, Reason.FIRST_SYNC_FILL, None, "CTO"),
    Rule("first sync with two values follows the collision rule (lead)", "lead", "jobtitle", (None, "CTO", "CEO"), W_DYN, Reason.COLLISION_LEAD, MKTO, "CEO"),
    Rule("first sync with two values follows the collision rule (contact)", "contact", "jobtitle", (None, "CTO", "CEO"), W_MKTO, Reason.COLLISION_CONTACT, DYN, "CTO"),
    Rule("first sync of a one-way entity copies dynamics, nulls included", "account", "jobtitle", (None, None, "CEO"), W_MKTO, Reason.FIRST_SYNC_ONE_WAY, None, None),
]
# fmt: on


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.name) for r in RULES])
def test_field_rule(rule: Rule) -> None:
    baseline, dynamics, marketo = rule.values
    record = state(baseline, dynamics, marketo, column=rule.column)
    if baseline is None:
        kept = {k: v for k, v in record.baseline.items() if k != rule.column}
        record = RecordState(record.dynamics, record.marketo, kept)
    decision = decide(entity(rule.entity), record)
    assert decision.action is RecordAction.SYNC
    outcome = only(decision.fields, rule.column)
    assert (outcome.action, outcome.reason, outcome.winner) == (rule.action, rule.reason, rule.winner)
    assert decision.new_baseline[rule.column] == rule.agreed
    if rule.action is not Action.NONE:
        assert outcome.value == rule.agreed


def test_the_syncs_own_write_coming_back_is_recognised_as_an_echo() -> None:
    decision = decide(entity("lead"), state("CTO", "CTO", "CTO", trigger=Trigger(Side.MARKETO, by_sync=True)))
    assert {f.reason for f in decision.fields} == {Reason.ECHO}
    assert not decision.has_writes


def test_writes_carry_each_systems_encoding() -> None:
    record = state(1, 2, 1, column="leadqualitycode")
    decision = decide(entity("contact"), record)
    assert decision.marketo_writes == {"leadqualitycode": "Warm"}
    record = state(1, 1, 2, column="leadqualitycode")
    assert decide(entity("lead"), record).dynamics_writes == {"leadqualitycode": 2}


# --- record level --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "syncs"), [(None, True), (True, True), (False, False)])
def test_sync_filter_missing_or_yes_syncs_and_explicit_no_does_not(flag: bool | None, syncs: bool) -> None:
    decision = decide(entity("lead"), state("Eng", "CTO", "Eng", sync_filter=flag))
    assert (decision.action is RecordAction.SYNC) is syncs
    if not syncs:
        assert decision.action is RecordAction.SKIP_FILTERED
        assert decision.fields == ()
        assert "new_synctomkto is No" in decision.reason


def test_sync_filter_no_to_yes_syncs_what_changed_meanwhile() -> None:
    mapping = entity("contact")
    assert decide(mapping, state("Eng", "CTO", "Eng", sync_filter=False)).action is RecordAction.SKIP_FILTERED
    decision = decide(mapping, state("Eng", "CTO", "Eng", sync_filter=True))
    assert decision.marketo_writes == {"jobtitle": "CTO"}


@pytest.mark.parametrize("name", ["lead", "contact"])
def test_a_person_deleted_in_dynamics_is_flagged_not_deleted(name: str) -> None:
    record = RecordState(dynamics=None, marketo={"jobtitle": "Eng"}, baseline={"jobtitle": "Eng"})
    decision = decide(entity(name), record)
    assert decision.action is RecordAction.FLAG_DELETED
    assert not decision.has_writes


def test_a_one_way_record_deleted_in_dynamics_is_kept_in_marketo() -> None:
    record = RecordState(dynamics=None, marketo={"jobtitle": "Eng"}, baseline={"jobtitle": "Eng"})
    assert decide(entity("account"), record).action is RecordAction.KEEP_DELETED


def test_a_new_marketo_person_is_not_pushed_to_dynamics() -> None:
    record = RecordState(dynamics=None, marketo={"jobtitle": "Eng"})
    decision = decide(entity("lead"), record)
    assert decision.action is RecordAction.IGNORE_UNLINKED
    assert "sync person to Dynamics" in decision.reason


def test_a_dynamics_record_without_a_marketo_record_creates_it_with_every_value() -> None:
    record = RecordState(dynamics={"jobtitle": "CTO", "telephone1": None, "leadqualitycode": 2}, marketo=None)
    decision = decide(entity("account"), record)
    assert decision.action is RecordAction.CREATE_IN_MARKETO
    assert decision.marketo_writes == {"jobtitle": "CTO", "telephone1": None, "leadqualitycode": "Warm"}
    assert decision.new_baseline == {"jobtitle": "CTO", "telephone1": None, "leadqualitycode": 2}


def test_a_record_on_neither_side_needs_nothing() -> None:
    assert decide(entity("lead"), RecordState(dynamics=None, marketo=None)).action is RecordAction.NOTHING


def test_a_bad_value_fails_its_field_only_and_keeps_its_baseline() -> None:
    bad = ConversionError("leadqualitycode", "canonical", "unknown option label 'Tepid'")
    record = RecordState(
        dynamics={"jobtitle": "CTO", "telephone1": "1", "leadqualitycode": 1},
        marketo={"jobtitle": "Eng", "telephone1": "1", "leadqualitycode": bad},
        baseline={"jobtitle": "Eng", "telephone1": "1", "leadqualitycode": 1},
    )
    decision = decide(entity("lead"), record)
    assert decision.marketo_writes == {"jobtitle": "CTO"}
    assert [(e.field, e.error) for e in decision.errors] == [("leadqualitycode", bad)]
    assert decision.new_baseline["leadqualitycode"] == 1
    assert decision.summary()["errors"] == {"leadqualitycode": "unknown option label 'Tepid'"}


def test_a_value_that_cannot_be_written_is_an_error_not_a_truncation() -> None:
    mapping = entity("contact", jobtitle={"max_length": 3})
    decision = decide(mapping, state("Eng", "Chief Technology Officer", "Eng"))
    (error,) = decision.errors
    assert error.field == "jobtitle"
    assert error.error is not None
    assert "longer than the Marketo field's 3" in error.error.reason
    assert decision.new_baseline["jobtitle"] == "Eng"


def test_a_broken_field_is_reported_and_the_others_still_sync() -> None:
    mapping = entity("contact", telephone1={"state": FieldState.BROKEN.value})
    decision = decide(mapping, state("Eng", "CTO", "Eng"))
    assert only(decision.fields, "telephone1").reason is Reason.FIELD_BROKEN
    assert decision.marketo_writes == {"jobtitle": "CTO"}


def test_quick_sync_refreshes_a_new_field_from_dynamics_nulls_included() -> None:
    mapping = entity("lead", jobtitle={"state": FieldState.AWAITING_QUICK_SYNC.value})
    record = RecordState(
        dynamics={"jobtitle": None, "telephone1": "1", "leadqualitycode": 1},
        marketo={"jobtitle": "Typed in Marketo", "telephone1": "1", "leadqualitycode": 1},
        baseline={"telephone1": "1", "leadqualitycode": 1},
    )
    outcome = only(decide(mapping, record).fields, "jobtitle")
    assert (outcome.action, outcome.reason, outcome.wire) == (Action.WRITE_MARKETO, Reason.QUICK_SYNC, None)


def test_a_field_not_read_from_one_side_is_left_alone() -> None:
    record = RecordState(dynamics={"jobtitle": "CTO"}, marketo={}, baseline={"jobtitle": "Eng"})
    decision = decide(entity("lead"), record)
    assert only(decision.fields, "jobtitle").reason is Reason.NOT_READ
    assert decision.new_baseline == {"jobtitle": "Eng"}


def test_a_decision_summary_names_fields_but_never_values() -> None:
    summary = decide(entity("lead"), state("Eng", "Secret Title", "Eng")).summary()
    assert summary["to_marketo"] == ["jobtitle"]
    assert "Secret Title" not in repr(summary)
