"""A batch as values: the records its notifications name (the plan), what was done (the report), and what the
work goes through (the ports, and the mapping as it stands now).

Planning is a pure function of the notifications, the mapping, the pause state and the person links: duplicate
notifications for one record merge into one target, notifications for a paused entity are deferred, and those
that cannot be acted on are ignored with the reason why. Everything a reconcile does afterwards lands in the
:class:`BatchReport`, which the trigger logs and the tests assert.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.core.entities import Side
from shared.core.history import HistoryEntry, history_entry, worth_keeping
from shared.core.mapping import SyncMapping
from shared.core.pending import MarkKey
from shared.core.policy import Action, Decision, RecordState, Trigger
from shared.dataverse.client import DataverseClient
from shared.marketo.client import MarketoClient
from shared.pipeline.notification import Kind, Notification, Source
from shared.pipeline.pending import mark_key
from shared.pipeline.ports import LiveMapping
from shared.pipeline.sync_errors import retries_exhausted
from shared.store.base import StateStore
from shared.store.model import Link, PauseState, SyncErrorRecord

MAX_ATTEMPTS = 8
"""How often a record that keeps changing under us is decided again before it becomes a sync error."""

_DYNAMICS_SOURCES = frozenset({Source.DATAVERSE_WEBHOOK, Source.DATAVERSE_QUEUE, Source.DATAVERSE_CATCHUP})


@dataclass
class Target:
    """One Dynamics record to reconcile, with every notification that named it in this batch."""

    entity: str
    dynamics_id: str
    notes: list[Notification] = field(default_factory=list)

    @property
    def deleted(self) -> bool:
        return any(n.kind is Kind.DELETE for n in self.notes)

    @property
    def trigger(self) -> Trigger:
        side = Side.DYNAMICS if any(n.source in _DYNAMICS_SOURCES for n in self.notes) else Side.MARKETO
        return Trigger(side, by_sync=all(n.by_sync for n in self.notes))


@dataclass(frozen=True)
class BatchPlan:
    """The records a batch reconciles, by entity in the order the batch first named them; and what waits or
    is left alone."""

    targets: dict[str, list[Target]]
    deferred: tuple[Notification, ...] = ()
    ignored: tuple[tuple[Notification, str], ...] = ()


def plan_batch(
    notes: Sequence[Notification], mapping: SyncMapping, pause: PauseState, persons: Mapping[str, Link]
) -> BatchPlan:
    """``persons``: the links of the Marketo persons the batch names without a Dynamics id (by Marketo id)."""
    targets: dict[tuple[str, str], Target] = {}
    deferred: list[Notification] = []
    ignored: list[tuple[Notification, str]] = []
    for note in notes:
        resolved = _resolve(note, mapping, persons)
        if isinstance(resolved, str):
            ignored.append((note, resolved))
            continue
        entity, dynamics_id = resolved
        if pause.is_paused(entity):
            deferred.append(note)
            continue
        targets.setdefault((entity, dynamics_id), Target(entity, dynamics_id)).notes.append(note)
    by_entity: dict[str, list[Target]] = defaultdict(list)
    for target in targets.values():
        by_entity[target.entity].append(target)
    return BatchPlan(dict(by_entity), tuple(deferred), tuple(ignored))


def _resolve(note: Notification, mapping: SyncMapping, persons: Mapping[str, Link]) -> tuple[str, str] | str:
    """The Dynamics record a notification is about, or why it is ignored."""
    if note.dynamics_id is not None and note.entity is not None:
        if note.entity not in mapping.by_entity:
            return f"entity '{note.entity}' is no longer in the mapping"
        return note.entity, note.dynamics_id.lower()
    link = persons.get(str(note.marketo_id))
    if link is None:
        return "Marketo person not linked to Dynamics: not pushed (use 'sync person to Dynamics')"
    if link.entity not in mapping.by_entity:
        return f"linked entity '{link.entity}' is not in the mapping"
    return link.entity, link.dynamics_id


@dataclass
class BatchReport:
    """What a batch did: decisions (for logs and tests) and the history entries of those that carry something
    (shared/core/history.py), counters, errors, and notifications put back."""

    decisions: list[tuple[str, str, Decision]] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    redecided: set[tuple[str, str]] = field(default_factory=set)  # (entity, id) put back to be decided again
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[SyncErrorRecord] = field(default_factory=list)
    requeued: list[Notification] = field(default_factory=list)
    ignored: list[tuple[Notification, str]] = field(default_factory=list)
    deferred: list[Notification] = field(default_factory=list)
    kept: set[MarkKey] = field(default_factory=set)  # pending marks this batch must not clear (not reconciled)
    carried: list[Target] = field(default_factory=list)  # held for the next batch, to fill its calls (.carry)
    waiting_on: str | None = None  # the service whose outage held the whole batch (its marks wait for the probe)

    def count(self, entity: str, decision: Decision) -> None:
        """A decision carried out, in the status view's counters."""
        counts = self.counts[entity]
        counts["changes"] += 1
        counts[decision.action.value] += 1
        writes_m = len(decision.marketo_writes)
        writes_d = len(decision.dynamics_writes)
        if writes_m or writes_d:
            counts["synced"] += 1
        counts["fields_to_marketo"] += writes_m
        counts["fields_to_dynamics"] += writes_d
        for f in decision.fields:
            if f.winner is not None:
                counts[f"collisions_{f.winner.value}_won"] += 1
            if f.action is Action.ERROR:
                counts["errors"] += 1
            if f.reason.name == "ECHO":
                counts["echoes"] += 1


@dataclass
class Batch:
    """What one batch works with: the ports it calls, the mapping as it stands now (a field marked broken
    mid-batch leaves it at once) and the report that collects what happened."""

    mapping: SyncMapping
    live: LiveMapping  # the stored mapping document, where a vanished field is marked broken
    store: StateStore
    dataverse: DataverseClient
    marketo: MarketoClient
    clock: Callable[[], datetime]
    report: BatchReport = field(default_factory=BatchReport)

    def decided(self, target: Target, decision: Decision, state: RecordState) -> None:
        """A decision made about ``target`` from ``state``: reported, and kept in the record's history."""
        self.report.decisions.append((target.entity, target.dynamics_id, decision))
        if not worth_keeping(decision):
            return  # most decisions: in step, or the echo of our own write
        sources = [n.source.value for n in target.notes]
        entry = history_entry(target.dynamics_id, decision, state, at=self.clock(), sources=sources)
        if entry is not None:
            self.report.history.append(entry)

    def fail(self, *errors: SyncErrorRecord) -> None:
        self.report.errors.extend(errors)

    def requeue(self, target: Target, why: str) -> None:
        """The record changed under us: decide it again in a moment, or after :data:`MAX_ATTEMPTS` give up with
        a sync error (``why`` says what kept changing)."""
        note = max(target.notes, key=lambda n: n.attempt)
        if note.attempt + 1 >= MAX_ATTEMPTS:
            self.fail(retries_exhausted(target.entity, target.dynamics_id, why, at=self.clock()))
            return
        self.report.redecided.add((target.entity, target.dynamics_id))
        self.report.kept.update(mark_key(n) for n in target.notes)  # decided again: its mark stays till then
        self.report.requeued.append(note.model_copy(update={"attempt": note.attempt + 1}))
