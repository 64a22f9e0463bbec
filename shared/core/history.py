"""A record's history: what the sync decided about it, field by field, as values to keep and show.

:func:`history_entry` turns one decision and the state it was made from (what Dynamics held, what Marketo held,
the baseline) into a :class:`HistoryEntry`: per field the action, the reason, the winner of a collision and the
values, and for the record what woke the decision and when. Pure, and cheap enough for every decision of every
batch: a decision that carries nothing (every field in step or an echo of the sync's own write, nothing written,
no error, no collision) gives no entry at all, so the echoes that follow every write cost nothing.

Kept compact: fields in step (``IN_SYNC``, ``ECHO``) and the unchanged fields a one-way upsert re-sends
(``REFRESH``) are left out of an entry; a string longer than :data:`VALUE_CHARS` is cut there (with ``…``).
The values are personal data: they go to the state store (the admin's audit trail, as baselines do), never to
logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from shared.core.policy import Action, Decision, FieldDecision, Reason, RecordAction, RecordState
from shared.core.values import Canonical, ConversionError

VALUE_CHARS: Final = 1000
"""A longer string value is kept to this many characters (a memo field must not make a row, or a batch, huge)."""

_QUIET: Final = frozenset({Reason.IN_SYNC, Reason.ECHO, Reason.REFRESH})
_WRITES: Final = (Action.WRITE_MARKETO, Action.WRITE_DYNAMICS)
_MISSING: Final = object()


class Outcome(StrEnum):
    """What became of a decision once the batch carried it out."""

    DONE = "done"
    FAILED = "failed"  # a write or a value failed: a sync error names it (the field keeps its old baseline)
    REQUEUED = "requeued"  # the record changed under us: decided again from fresh reads (a newer entry follows)


@dataclass(frozen=True, slots=True)
class FieldEntry:
    """One field of a decision: both sides' values, the baseline, the value agreed on, and why."""

    field: str
    action: str
    reason: str
    dynamics: Canonical = None
    marketo: Canonical = None
    baseline: Canonical = None
    value: Canonical = None  # what both sides hold after the write (None when nothing was written)
    winner: str | None = None  # "dynamics" | "marketo" on a collision
    error: str | None = None  # why a value could not be converted

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "field": self.field,
            "action": self.action,
            "reason": self.reason,
            "dynamics": self.dynamics,
            "marketo": self.marketo,
            "baseline": self.baseline,
            "value": self.value,
            "winner": self.winner,
        }
        if self.error is not None:
            doc["error"] = self.error
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> FieldEntry:
        return cls(
            field=str(doc["field"]),
            action=str(doc["action"]),
            reason=str(doc["reason"]),
            dynamics=doc.get("dynamics"),
            marketo=doc.get("marketo"),
            baseline=doc.get("baseline"),
            value=doc.get("value"),
            winner=doc.get("winner"),
            error=doc.get("error"),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One decision about one record: when, woken by what, what was decided, field by field."""

    entity: str
    dynamics_id: str
    at: datetime
    action: str
    reason: str
    fields: tuple[FieldEntry, ...] = ()
    source: str | None = None  # the notification source(s) that woke it (dataverse_webhook, marketo_feed, ...)
    side: str | None = None  # the side whose change woke it ("dynamics" | "marketo")
    by_sync: bool = False  # the change that woke it was the sync's own write
    outcome: Outcome = Outcome.DONE

    def settled(self, outcome: Outcome) -> HistoryEntry:
        return self if outcome is self.outcome else replace(self, outcome=outcome)

    def as_doc(self) -> dict[str, Any]:
        """The stored form, which is also the API's (times in UTC, to the second)."""
        return {
            "entity": self.entity,
            "dynamics_id": self.dynamics_id,
            "at": self.at.astimezone(UTC).replace(microsecond=0).isoformat(),
            "trigger": {"source": self.source, "side": self.side, "by_sync": self.by_sync},
            "action": self.action,
            "reason": self.reason,
            "outcome": self.outcome.value,
            "fields": [f.as_doc() for f in self.fields],
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> HistoryEntry:
        trigger = doc.get("trigger") or {}
        return cls(
            entity=str(doc["entity"]),
            dynamics_id=str(doc["dynamics_id"]),
            at=datetime.fromisoformat(doc["at"]),
            action=str(doc["action"]),
            reason=str(doc["reason"]),
            fields=tuple(FieldEntry.from_doc(f) for f in doc.get("fields") or ()),
            source=trigger.get("source"),
            side=trigger.get("side"),
            by_sync=bool(trigger.get("by_sync")),
            outcome=Outcome(doc.get("outcome", Outcome.DONE.value)),
        )


def worth_keeping(decision: Decision) -> bool:
    """Whether a decision says anything: it writes, meets an error or a collision, or does something to the record
    other than syncing its fields (creates, upserts, keeps it out by the sync filter, flags a delete...)."""
    if decision.action not in (RecordAction.SYNC, RecordAction.NOTHING):
        return True
    none = Action.NONE  # the hot path (every decision of every batch): fields by index, ~5 µs for 30 of them
    return any(f[1] is not none for f in decision.fields)  # the action (a collision's winner comes with a write)


def history_entry(
    dynamics_id: str,
    decision: Decision,
    state: RecordState,
    *,
    at: datetime,
    sources: Sequence[str] = (),
) -> HistoryEntry | None:
    """The entry of one decision made from ``state``, or None when it carries nothing (:func:`worth_keeping`).

    ``sources``: what woke it (the batch's notifications for the record), first one first.
    """
    if not worth_keeping(decision):
        return None
    dynamics = state.dynamics or {}
    marketo = state.marketo or {}
    baseline = state.baseline
    fields = tuple(_field(f, dynamics, marketo, baseline) for f in decision.fields if f.reason not in _QUIET)
    trigger = state.trigger
    return HistoryEntry(
        entity=decision.entity,
        dynamics_id=dynamics_id.lower(),
        at=at,
        action=decision.action.value,
        reason=decision.reason,
        fields=fields,
        source=",".join(dict.fromkeys(sources)) or None,
        side=trigger.side.value if trigger is not None else None,
        by_sync=trigger.by_sync if trigger is not None else False,
    )


def _field(
    f: FieldDecision,
    dynamics: Mapping[str, Canonical | ConversionError],
    marketo: Mapping[str, Canonical | ConversionError],
    baseline: Mapping[str, Canonical],
) -> FieldEntry:
    d, m = dynamics.get(f.field, _MISSING), marketo.get(f.field, _MISSING)
    error = f.error.reason if f.error is not None else None
    return FieldEntry(
        field=f.field,
        action=f.action.value,
        reason=f.reason.value,
        dynamics=_compact(d),
        marketo=_compact(m),
        baseline=_compact(baseline.get(f.field)),
        value=_compact(f.value) if f.action in _WRITES else None,
        winner=f.winner.value if f.winner is not None else None,
        error=error,
    )


def _compact(value: object) -> Canonical:
    """A value as kept: not read or not convertible -> None (the field's reason or error says which); a long
    string cut to :data:`VALUE_CHARS`."""
    if value is _MISSING or isinstance(value, ConversionError):
        return None
    if isinstance(value, str) and len(value) > VALUE_CHARS:
        return value[:VALUE_CHARS] + "…"
    return value  # type: ignore[return-value]
