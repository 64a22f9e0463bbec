"""The reconcile decision: for one record, which way each mapped field flows and who wins a collision.

Decide, then act: :func:`decide` is pure and returns a :class:`Decision` value (what to write where, why, and
the new baseline); the pipeline carries it out. The rules (``sync-rules.md``):

* A field changed on one side only flows to the other; on a one-way entity or field only Dynamics -> Marketo,
  so a Marketo-side edit is overwritten by the Dynamics value, even one Marketo holds in a form the field cannot
  take (a lookup set to a name, not a record id): that is not an error, Dynamics wins.
* Changed on both sides since the last sync (the baseline): Marketo wins for leads, Dynamics for contacts,
  Dynamics always for one-way entities and fields; a field may name its own winner (Dynamics, Marketo, or the
  side whose record was modified last).
* A Marketo-owned field (``direction: to_dynamics``: lead score, last interesting moment) flows to Dynamics only:
  a Marketo edit always wins and a Dynamics edit is overwritten; a person created from Dynamics does not get it.
* Both sides equal: nothing to do. When the change that woke us was the sync's own write, that is an echo.
* Sync filter ``new_synctomkto``: explicit No keeps the record out; missing, empty or Yes syncs.
* Deleted in Dynamics: a person gets its "deleted in Dynamics" flag; nothing is ever deleted in Marketo.
* A Marketo person with no Dynamics record is not pushed to Dynamics (only the explicit "sync person" action).

The decision depends only on the current values of both sides and the baseline (and, for a "latest" field,
both records' modified times), never on the notification's content, which is why duplicate, late and
out-of-order notifications converge to the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NamedTuple, cast

from shared.core.decision import Action, Decision, FieldDecision, Reason, RecordAction, RecordState, Trigger
from shared.core.entities import MarketoObject, Side
from shared.core.mapping import EntityMapping, FieldMapping, FieldState, FieldWinner
from shared.core.values import Canonical, ConversionError
from shared.core.writes import Writer, writer

__all__ = [
    "Action",
    "Decision",
    "FieldDecision",
    "Reason",
    "RecordAction",
    "RecordState",
    "Trigger",
    "decide",
    "decide_one_way",
]

# Python 3.11 reads an enum member through its metaclass's ``__getattr__`` hook, at ~150 ns a time, more than
# most steps of a field's decision: the per-field paths below use these names, bound once.
_NONE, _ERROR = Action.NONE, Action.ERROR
_TO_MARKETO, _TO_DYNAMICS = Action.WRITE_MARKETO, Action.WRITE_DYNAMICS
_CHANGED_IN_DYNAMICS, _CHANGED_IN_MARKETO = Reason.CHANGED_IN_DYNAMICS, Reason.CHANGED_IN_MARKETO
_CONVERSION_FAILED, _REFRESH = Reason.CONVERSION_FAILED, Reason.REFRESH
_DYNAMICS, _MARKETO = Side.DYNAMICS, Side.MARKETO
_SYNC = RecordAction.SYNC


_MISSING: Final = object()
_NEW: Final = tuple.__new__  # builds a FieldDecision or Decision in one C call (their ``__new__`` is Python code)


def decide(mapping: EntityMapping, state: RecordState) -> Decision:
    """Decide what to do for one record. Pure: the same inputs always give the same decision."""
    if state.dynamics is not None and state.marketo is not None and state.sync_filter is not False:
        return _reconcile(mapping, state)  # the common case first: both records read
    entity = mapping.entity
    if state.dynamics is None:
        if state.marketo is None:
            return Decision(entity, RecordAction.NOTHING, "the record exists on neither side")
        linked = bool(state.baseline) if state.linked is None else state.linked
        if not linked:
            return Decision(
                entity,
                RecordAction.IGNORE_UNLINKED,
                "a Marketo record with no Dynamics record is not pushed to Dynamics (use 'sync person to Dynamics')",
            )
        if mapping.rule.marketo_object is MarketoObject.PERSON:
            return Decision(
                entity, RecordAction.FLAG_DELETED, "deleted in Dynamics: the person is flagged, nothing is deleted"
            )
        return Decision(entity, RecordAction.KEEP_DELETED, "deleted in Dynamics: the Marketo record is kept")
    if state.sync_filter is False:
        return Decision(entity, RecordAction.SKIP_FILTERED, "new_synctomkto is No: the record is kept out of the sync")
    return _create(mapping, state.dynamics)


def decide_one_way(
    mapping: EntityMapping,
    dynamics: Mapping[str, Canonical | ConversionError] | None,
    baseline: Mapping[str, Canonical],
    *,
    linked: bool,
    sync_filter: bool | None = None,
    marketo: Mapping[str, Canonical | ConversionError] | None = None,
) -> Decision:
    """A one-way record, usually decided without reading its Marketo side (Marketo reports no edits of these
    objects).

    When anything changed since the last sync, the whole record is upserted: the changed fields, and the
    unchanged ones too, so any Marketo-side edit is overwritten (Dynamics always wins). Nothing changed: no call.

    ``marketo``: what the Marketo object holds, when it was read (the verification sweep found it differing,
    :mod:`shared.pipeline.verify`); a column absent from it counts as not held (``{}``: the object is gone from
    Marketo). A field whose Marketo value differs from Dynamics then counts as changed too, so the record is
    upserted and the Marketo edit is overwritten, though nothing changed in Dynamics; when Marketo already holds
    what Dynamics holds, nothing is written.
    """
    entity = mapping.entity
    if dynamics is None:
        if linked:
            return Decision(entity, RecordAction.KEEP_DELETED, "deleted in Dynamics: the Marketo record is kept")
        return Decision(entity, RecordAction.NOTHING, "the record exists on neither side")
    if sync_filter is False:
        return Decision(entity, RecordAction.SKIP_FILTERED, "new_synctomkto is No: the record is kept out of the sync")
    plans, broken = _plan(mapping)
    changed = not linked or any(
        dynamics.get(p.column, _MISSING) != baseline.get(p.column, _MISSING) for p in plans if p.column in dynamics
    )
    drift: frozenset[str] = frozenset() if marketo is None or not linked else _drifted(plans, dynamics, marketo)
    if not changed and not drift:
        why = "unchanged since the last sync" if marketo is None else "Marketo holds what Dynamics holds"
        return Decision(entity, RecordAction.SYNC, why, tuple(p.in_sync for p in plans), dict(baseline))
    decisions: list[FieldDecision] = []
    new_baseline = dict(baseline)
    for p in plans:
        raw = dynamics.get(p.column, _MISSING)
        if raw is _MISSING:
            decisions.append(p.not_read)
            continue
        if type(raw) is ConversionError:
            decisions.append(FieldDecision(p.column, _ERROR, _CONVERSION_FAILED, error=raw))
            continue
        value = cast(Canonical, raw)
        before = baseline.get(p.column, _MISSING)
        if before is _MISSING:
            reason = Reason.QUICK_SYNC if p.quick_sync else Reason.FIRST_SYNC_ONE_WAY
        else:
            reason = _REFRESH if _same(before, value) else _CHANGED_IN_DYNAMICS
        if p.column in drift and reason is _REFRESH:
            reason = Reason.ONE_WAY_OVERWRITE
        decided = _write_marketo(p, value, reason)
        if (
            reason is _CHANGED_IN_DYNAMICS
            and marketo is not None
            and not _same(marketo.get(p.column, _MISSING), before)
            and decided.action is not _ERROR
        ):  # Marketo was edited too: a collision, which Dynamics always wins on a one-way entity
            decided = decided._replace(reason=Reason.COLLISION_ONE_WAY, winner=_DYNAMICS)
        if decided.action is not _ERROR:
            new_baseline[p.column] = value
        decisions.append(decided)
    action = RecordAction.UPSERT_IN_MARKETO if linked else RecordAction.CREATE_IN_MARKETO
    why = "restored from Dynamics: Marketo held other values" if drift and not changed else "pushed from Dynamics"
    return Decision(entity, action, why, (*decisions, *broken), new_baseline)


def _same(a: object, b: object) -> bool:
    return a == b and type(a) is type(b)


def _drifted(
    plans: tuple[_FieldPlan, ...],
    dynamics: Mapping[str, Canonical | ConversionError],
    marketo: Mapping[str, Canonical | ConversionError],
) -> frozenset[str]:
    """The columns whose Marketo value is not the Dynamics one (unreadable or absent counts as not)."""
    return frozenset(
        p.column
        for p in plans
        if p.column in dynamics
        and type(dynamics[p.column]) is not ConversionError
        and not _same(marketo.get(p.column, _MISSING), dynamics[p.column])
    )


def _create(mapping: EntityMapping, dynamics: Mapping[str, Canonical | ConversionError]) -> Decision:
    decisions = []
    baseline: dict[str, Canonical] = {}
    for p in _prepared(mapping).plans:
        value = dynamics.get(p.column, _MISSING)
        if value is _MISSING or p.field.marketo_owned:
            continue  # not read, or Marketo's own data: the new person keeps what Marketo gives it
        if type(value) is ConversionError:
            decisions.append(FieldDecision(p.column, Action.ERROR, Reason.CONVERSION_FAILED, error=value))
            continue
        decided = _write_marketo(p, cast(Canonical, value), Reason.CREATE)
        decisions.append(decided)
        if decided.action is not Action.ERROR:
            baseline[p.column] = decided.value
    return Decision(mapping.entity, RecordAction.CREATE_IN_MARKETO, Reason.CREATE.value, tuple(decisions), baseline)


class _FieldPlan(NamedTuple):
    """A mapped field prepared for the hot loop: flags read once, no-op outcomes built once."""

    field: FieldMapping
    column: str
    two_way: bool
    owned: bool  # Marketo-owned: flows to Dynamics only
    winner: Side | None  # the field's own collision winner
    latest: bool  # the side modified last wins its collisions
    quick_sync: bool
    in_sync: FieldDecision
    echo: FieldDecision
    not_read: FieldDecision
    to_marketo: Writer
    to_dynamics: Writer


_Row = tuple[str, FieldDecision, _FieldPlan]  # a field's column, its outcome when both sides agree, its plan


class _Prepared(NamedTuple):
    mapping: EntityMapping
    entity: str
    winner: Side  # the entity's collision winner
    plans: tuple[_FieldPlan, ...]
    broken: tuple[FieldDecision, ...]
    rows: tuple[_Row, ...]
    echo_rows: tuple[_Row, ...]  # the same, for a change that was the sync's own write


_PLANS: dict[int, _Prepared] = {}
_WINNERS: dict[FieldWinner | None, Side] = {FieldWinner.DYNAMICS: _DYNAMICS, FieldWinner.MARKETO: _MARKETO}


def _plan(mapping: EntityMapping) -> tuple[tuple[_FieldPlan, ...], tuple[FieldDecision, ...]]:
    """The mapping's live fields prepared for the hot loops, and the outcomes of its broken ones."""
    prepared = _prepared(mapping)
    return prepared.plans, prepared.broken


def _prepared(mapping: EntityMapping) -> _Prepared:
    """Per-mapping preparation, cached by identity (mappings are immutable and few)."""
    cached = _PLANS.get(id(mapping))
    if cached is not None and cached[0] is mapping:
        return cached
    two_way_entity = mapping.rule.two_way
    plans = tuple(
        _FieldPlan(
            f,
            f.dynamics,
            two_way_entity and f.to_dynamics_allowed,
            two_way_entity and f.marketo_owned,
            _WINNERS.get(f.winner) if two_way_entity else None,
            two_way_entity and f.winner is FieldWinner.LATEST,
            f.state.in_quick_sync,
            FieldDecision(f.dynamics, _NONE, Reason.IN_SYNC),
            FieldDecision(f.dynamics, _NONE, Reason.ECHO),
            FieldDecision(f.dynamics, _NONE, Reason.NOT_READ),
            writer(f, "marketo"),
            writer(f, "dynamics"),
        )
        for f in mapping.live_fields
    )
    broken = tuple(
        FieldDecision(f.dynamics, _NONE, Reason.FIELD_BROKEN) for f in mapping.fields if f.state is FieldState.BROKEN
    )
    if len(_PLANS) > 256:  # mappings are reloaded now and then; never let old ones pile up
        _PLANS.clear()
    rows, echo_rows = tuple((p.column, p.in_sync, p) for p in plans), tuple((p.column, p.echo, p) for p in plans)
    prepared = _Prepared(mapping, mapping.entity, mapping.rule.collision_winner, plans, broken, rows, echo_rows)
    _PLANS[id(mapping)] = prepared
    return prepared


def _reconcile(mapping: EntityMapping, state: RecordState) -> Decision:
    dynamics, marketo, baseline = state.dynamics or {}, state.marketo or {}, state.baseline
    echo = state.trigger is not None and state.trigger.by_sync
    prepared = _prepared(mapping)
    winner = prepared.winner
    new_baseline = dict(baseline)
    decisions: list[FieldDecision] = []
    # Python 3.11 specialises this loop's steps (dict subscripts, ``list.append``, ``type()``, ``is``) well below
    # what dict.get, bound-method aliases or C-level passes over all fields (map, compress) cost per call; rows
    # unpacked in the ``for`` cost less than a plan's attributes; the ``try`` costs nothing until a column is
    # missing.
    for column, agreed, plan in prepared.echo_rows if echo else prepared.rows:
        try:
            raw_d = dynamics[column]
            raw_m = marketo[column]
        except KeyError:  # not read on a side
            decisions.append(plan.not_read)
            continue
        if raw_d == raw_m and (kind := type(raw_d)) is type(raw_m) and kind is not ConversionError:
            # The common case, kept allocation-free: both sides already agree.
            new_baseline[column] = raw_d  # type: ignore[assignment]
            decisions.append(agreed)
            continue
        decided = _differing(plan, winner, raw_d, raw_m, baseline, state)
        if decided.action is _TO_MARKETO or decided.action is _TO_DYNAMICS:
            new_baseline[column] = decided.value
        decisions.append(decided)
    return _NEW(Decision, (prepared.entity, _SYNC, "reconciled", (*decisions, *prepared.broken), new_baseline))


def _differing(
    plan: _FieldPlan, winner: Side, d: object, m: object, baseline: Mapping[str, Canonical], state: RecordState
) -> FieldDecision:
    """One field read on both sides that do not simply agree: unreadable on a side, or differing."""
    if type(d) is ConversionError or type(m) is ConversionError:
        if type(d) is not ConversionError and not plan.two_way:
            # A one-way field (or lookup) edited in Marketo to a value it cannot take: Dynamics wins, restored.
            return _write_marketo(plan, cast(Canonical, d), Reason.ONE_WAY_UNREADABLE)
        error = cast(ConversionError, d if type(d) is ConversionError else m)
        return FieldDecision(plan.column, _ERROR, _CONVERSION_FAILED, error=error)
    d_value, m_value = cast(Canonical, d), cast(Canonical, m)
    b = baseline.get(plan.column, _MISSING)
    if plan.owned:
        return _owned(plan, d_value, m_value, b)
    if b is _MISSING:
        return _first(plan, winner, d_value, m_value, state)
    d_changed = d != b or type(d) is not type(b)
    m_changed = m != b or type(m) is not type(b)
    if d_changed and not m_changed:
        return _write_marketo(plan, d_value, _CHANGED_IN_DYNAMICS)
    if m_changed and not d_changed:
        if plan.two_way:
            return _write_dynamics(plan, m_value, _CHANGED_IN_MARKETO)
        return _write_marketo(plan, d_value, Reason.ONE_WAY_OVERWRITE)
    return _collide(plan, winner, d_value, m_value, state)


def _first(plan: _FieldPlan, winner: Side, d: Canonical, m: Canonical, state: RecordState) -> FieldDecision:
    """A field whose sides differ and that has no baseline yet."""
    if plan.quick_sync:
        return _write_marketo(plan, d, Reason.QUICK_SYNC)
    if not plan.two_way:
        return _write_marketo(plan, d, Reason.FIRST_SYNC_ONE_WAY)
    if d is None:
        return _write_dynamics(plan, m, Reason.FIRST_SYNC_FILL)
    if m is None:
        return _write_marketo(plan, d, Reason.FIRST_SYNC_FILL)
    return _collide(plan, winner, d, m, state)


_ENTITY_RULE, _FIELD_RULE, _LATEST = "entity", "field", "latest"
_COLLISION_REASONS = {  # by rule and whether Marketo won (an enum member hashes in Python code, a bool in C)
    (_ENTITY_RULE, True): Reason.COLLISION_LEAD,
    (_ENTITY_RULE, False): Reason.COLLISION_CONTACT,
    (_FIELD_RULE, True): Reason.COLLISION_FIELD_MARKETO,
    (_FIELD_RULE, False): Reason.COLLISION_FIELD_DYNAMICS,
    (_LATEST, True): Reason.COLLISION_LATEST,
    (_LATEST, False): Reason.COLLISION_LATEST,
}


def _owned(plan: _FieldPlan, d: Canonical, m: Canonical, b: object) -> FieldDecision:
    """A Marketo-owned field whose sides differ: Dynamics follows Marketo, whoever changed."""
    if b is not _MISSING and m == b and type(m) is type(b):
        return _write_dynamics(plan, m, Reason.MARKETO_OWNED_RESTORE)  # only Dynamics changed: restored
    both = b is not _MISSING and not (d == b and type(d) is type(b))
    return _write_dynamics(plan, m, Reason.MARKETO_OWNED, _MARKETO if both else None)


def _collide(plan: _FieldPlan, winner: Side, d: Canonical, m: Canonical, state: RecordState) -> FieldDecision:
    """Changed on both sides: the field's own winner when it names one (or, for "latest", the side modified last
    when both times are known), else the entity's; Dynamics always on a one-way field."""
    if not plan.two_way:
        return _write_marketo(plan, d, Reason.COLLISION_ONE_WAY, _DYNAMICS)
    rule = _ENTITY_RULE
    if plan.winner is not None:
        winner, rule = plan.winner, _FIELD_RULE
    elif plan.latest and (last := state.modified_last) is not None:
        winner, rule = last, _LATEST
    reason = _COLLISION_REASONS[(rule, winner is _MARKETO)]
    if winner is _MARKETO:
        return _write_dynamics(plan, m, reason, winner)
    return _write_marketo(plan, d, reason, winner)


def _write_marketo(p: _FieldPlan, value: Canonical, reason: Reason, winner: Side | None = None) -> FieldDecision:
    """A write of ``value`` to Marketo (``winner``: the side a collision went to), or the error converting it."""
    wire = p.to_marketo(value)
    if type(wire) is ConversionError:
        return _NEW(FieldDecision, (p.column, _ERROR, _CONVERSION_FAILED, None, None, None, wire))
    return _NEW(FieldDecision, (p.column, _TO_MARKETO, reason, value, wire, winner, None))


def _write_dynamics(p: _FieldPlan, value: Canonical, reason: Reason, winner: Side | None = None) -> FieldDecision:
    wire = p.to_dynamics(value)
    if type(wire) is ConversionError:
        return _NEW(FieldDecision, (p.column, _ERROR, _CONVERSION_FAILED, None, None, None, wire))
    return _NEW(FieldDecision, (p.column, _TO_DYNAMICS, reason, value, wire, winner, None))
