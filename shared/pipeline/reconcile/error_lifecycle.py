"""What a batch does to the sync errors: record the failures it met, and resolve those its clean records cured.

Recording: each failure is merged into its record's open error for that field and cause (counted, last seen
now), labelled with the record's name or e-mail from the values the batch agreed on and with its Marketo id from
the notifications or the link (one store read per entity, and only when the batch failed somewhere).

Resolving: a record the batch decided, that did not fail as a whole and was not put back on the queue, resolves
its open and retrying errors (``resolved_by`` "sync"): a record-level one at once, a field's one when the field
was decided without error (not left unread or broken). An error seen after the batch began (another instance met
it meanwhile) is left open. With no open errors anywhere this costs one index read per entity decided (leads,
contacts and their Marketo persons share one: :meth:`shared.store.errors.SyncErrors.resolve`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.core.pending import PERSON
from shared.core.policy import Action, Decision, Reason
from shared.core.record_links import record_label
from shared.pipeline.reconcile.batch import BatchReport, Target
from shared.store.base import StateStore
from shared.store.model import RESOLVED_BY_SYNC, Link, SyncErrorRecord

_UNDECIDED = frozenset({Reason.NOT_READ, Reason.FIELD_BROKEN})
RecordKey = tuple[str, str]  # (entity, record id, lower case)


@dataclass
class ErrorOutcome:
    """What the batch recorded and resolved (for the report's readers and the tests)."""

    recorded: list[SyncErrorRecord] = field(default_factory=list)
    resolved: list[SyncErrorRecord] = field(default_factory=list)


def settle_errors(
    store: StateStore,
    report: BatchReport,
    targets: Mapping[str, Sequence[Target]],
    persons: Mapping[str, Link],
    *,
    started: datetime,
    at: datetime,
) -> ErrorOutcome:
    """``targets``: the batch's records by entity; ``persons``: the links of the Marketo ids it named alone."""
    outcome = ErrorOutcome()
    marketo_ids = _marketo_ids(targets)
    decided = {(entity, rid.lower()): decision for entity, rid, decision in report.decisions}
    failing: dict[RecordKey, set[str | None]] = defaultdict(set)
    for error in report.errors:
        failing[(error.entity, error.record_id.lower())].add(error.field)
    if report.errors:
        outcome.recorded = store.errors.record(_described(store, report.errors, decided, marketo_ids))
    unsettled = _requeued(report, persons)
    clean: dict[RecordKey, Decision] = {
        key: decision
        for key, decision in decided.items()
        if key not in unsettled and None not in failing.get(key, set())
    }
    # A Marketo person's own errors (its parked change) are cured with the record it is linked to.
    aliases = {(PERSON, mid) for key, mids in marketo_ids.items() if key in clean for mid in mids}

    def clears(error: SyncErrorRecord) -> bool:
        if error.last_seen > started:
            return False  # met again after this batch read the record
        if error.entity == PERSON:
            return error.field is None
        key = (error.entity, error.record_id.lower())
        decision = clean.get(key)
        return decision is not None and _cured(error, decision, failing.get(key, set()))

    outcome.resolved = store.errors.resolve([*clean, *aliases], clears, at=at, by=RESOLVED_BY_SYNC)
    return outcome


def _cured(error: SyncErrorRecord, decision: Decision, failing: set[str | None]) -> bool:
    if error.field is None:
        return True
    if error.field in failing:
        return False
    decided = next((f for f in decision.fields if f.field == error.field), None)
    return decided is None or (decided.action is not Action.ERROR and decided.reason not in _UNDECIDED)


def _marketo_ids(targets: Mapping[str, Sequence[Target]]) -> dict[RecordKey, list[str]]:
    """The Marketo ids the batch's notifications named, by record."""
    found: dict[RecordKey, list[str]] = {}
    for entity, records in targets.items():
        for target in records:
            ids = sorted({str(n.marketo_id) for n in target.notes if n.marketo_id})
            if ids:
                found[(entity, target.dynamics_id.lower())] = ids
    return found


def _requeued(report: BatchReport, persons: Mapping[str, Link]) -> set[RecordKey]:
    """The records put back on the queue (decided again in a moment): not settled by this batch."""
    keys = {(entity, rid.lower()) for entity, rid in report.redecided}
    for note in report.requeued:
        if note.dynamics_id is not None and note.entity is not None:
            keys.add((note.entity, note.dynamics_id.lower()))
        elif (link := persons.get(str(note.marketo_id))) is not None:
            keys.add((link.entity, link.dynamics_id.lower()))
    return keys


def _described(
    store: StateStore,
    errors: Sequence[SyncErrorRecord],
    decided: Mapping[RecordKey, Decision],
    marketo_ids: Mapping[RecordKey, list[str]],
) -> list[SyncErrorRecord]:
    """The errors with their record's label and Marketo id, as far as the batch knows them."""
    unknown: dict[str, set[str]] = defaultdict(set)
    for error in errors:
        key = (error.entity, error.record_id.lower())
        if error.record_id and error.marketo_id is None and key not in marketo_ids:
            unknown[error.entity].add(key[1])
    linked = {
        (entity, rid): link.marketo_id
        for entity, rids in unknown.items()
        for rid, link in store.get_links(entity, rids).items()
        if link.marketo_id
    }
    described = []
    for error in errors:
        key = (error.entity, error.record_id.lower())
        decision = decided.get(key)
        label = error.label or (record_label(decision.new_baseline) if decision is not None else "")
        marketo_id = error.marketo_id or next(iter(marketo_ids.get(key, [])), None) or linked.get(key)
        described.append(replace(error, label=label, marketo_id=marketo_id))
    return described
