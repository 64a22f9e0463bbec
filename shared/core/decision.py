"""What a reconcile decision is: per field, an action, its reason and the value both sides agree on; per record,
what to do and the new baseline. Made by :mod:`shared.core.policy`, carried out by the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

from shared.core.entities import Side
from shared.core.values import Canonical, ConversionError


class Action(StrEnum):
    NONE = "none"
    WRITE_MARKETO = "write_marketo"
    WRITE_DYNAMICS = "write_dynamics"
    ERROR = "error"


class Reason(StrEnum):
    IN_SYNC = "both sides hold the same value"
    ECHO = "the change was the sync's own write: not echoed back"
    NOT_READ = "the value was not read from both sides: nothing decided"
    FIELD_BROKEN = "the mapping is broken (column deleted or unreadable): skipped, other fields go on"
    CHANGED_IN_DYNAMICS = "changed in Dynamics only"
    CHANGED_IN_MARKETO = "changed in Marketo only"
    ONE_WAY_OVERWRITE = "changed in Marketo, but it syncs Dynamics -> Marketo only: the Dynamics value is restored"
    ONE_WAY_UNREADABLE = (
        "Marketo holds a value this field cannot take, but it syncs Dynamics -> Marketo only: the Dynamics value "
        "is restored"
    )
    COLLISION_LEAD = "changed on both sides: Marketo wins for leads"
    COLLISION_CONTACT = "changed on both sides: Dynamics wins for contacts"
    COLLISION_ONE_WAY = "changed on both sides: Dynamics always wins for one-way entities and fields"
    COLLISION_FIELD_DYNAMICS = "changed on both sides: Dynamics wins for this field (its own rule)"
    COLLISION_FIELD_MARKETO = "changed on both sides: Marketo wins for this field (its own rule)"
    COLLISION_LATEST = "changed on both sides: the side modified last wins for this field (its own rule)"
    MARKETO_OWNED = "Marketo owns this field: its value is copied to Dynamics"
    MARKETO_OWNED_RESTORE = "changed in Dynamics, but Marketo owns this field: the Marketo value is restored"
    FIRST_SYNC_FILL = "first sync of this field: only one side has a value"
    FIRST_SYNC_ONE_WAY = "first sync of this field: the Dynamics value is copied to Marketo"
    QUICK_SYNC = "Quick Sync: the new field is refreshed from Dynamics"
    CREATE = "no Marketo record is linked: created from Dynamics"
    REFRESH = "unchanged, re-sent with the record so a Marketo-side edit is overwritten (Dynamics wins)"
    CONVERSION_FAILED = "the value cannot be converted"


class RecordAction(StrEnum):
    SYNC = "sync"
    CREATE_IN_MARKETO = "create_in_marketo"
    UPSERT_IN_MARKETO = "upsert_in_marketo"
    SKIP_FILTERED = "skip_filtered"
    FLAG_DELETED = "flag_deleted_in_marketo"
    KEEP_DELETED = "keep_after_dynamics_delete"
    IGNORE_UNLINKED = "ignore_unlinked_marketo_record"
    NOTHING = "nothing"


class Trigger(NamedTuple):
    """What woke the decision: which side changed, and whether the change was the sync's own write."""

    side: Side
    by_sync: bool = False


class FieldDecision(NamedTuple):
    """One field's outcome. ``value`` is the canonical value both sides agree on after the write."""

    field: str
    action: Action
    reason: Reason
    value: Canonical = None
    wire: Any = None  # the value in the target system's encoding, when there is a write
    winner: Side | None = None  # set on collisions
    error: ConversionError | None = None

    def describe(self) -> str:
        text = f"{self.field}: {self.action.value} ({self.reason.value})"
        return f"{text}: {self.error.reason}" if self.error else text


@dataclass(frozen=True, slots=True)
class RecordState:
    """Everything a decision needs about one record, values keyed by Dynamics column, canonical.

    ``dynamics``/``marketo`` are None when the record does not exist on that side. ``baseline`` holds the
    values both sides agreed on at the last sync (empty before the first one).
    """

    dynamics: Mapping[str, Canonical | ConversionError] | None
    marketo: Mapping[str, Canonical | ConversionError] | None
    baseline: Mapping[str, Canonical] = field(default_factory=dict)
    sync_filter: bool | None = None  # the Dynamics record's new_synctomkto value
    trigger: Trigger | None = None
    linked: bool | None = None  # known link state; None: linked when there is a baseline
    dynamics_modified: datetime | None = None  # the record's modifiedon (a "latest" field's collisions)
    marketo_modified: datetime | None = None  # the person's updatedAt

    @property
    def modified_last(self) -> Side | None:
        """The side whose record changed last, when both times are known and differ."""
        d, m = self.dynamics_modified, self.marketo_modified
        if d is None or m is None or d == m:
            return None
        return Side.DYNAMICS if d > m else Side.MARKETO


class Decision(NamedTuple):
    """One record's decision. A named tuple, not a frozen dataclass: the reconcile loop builds one per record,
    and a frozen dataclass's ``__init__`` (five ``object.__setattr__`` calls) costs more than most of it."""

    entity: str
    action: RecordAction
    reason: str
    fields: tuple[FieldDecision, ...] = ()
    new_baseline: Mapping[str, Canonical] = MappingProxyType({})

    @property
    def marketo_writes(self) -> dict[str, Any]:
        """Column -> Marketo wire value for every field to write to Marketo."""
        return {f.field: f.wire for f in self.fields if f.action is Action.WRITE_MARKETO}

    @property
    def dynamics_writes(self) -> dict[str, Any]:
        return {f.field: f.wire for f in self.fields if f.action is Action.WRITE_DYNAMICS}

    @property
    def errors(self) -> tuple[FieldDecision, ...]:
        return tuple(f for f in self.fields if f.action is Action.ERROR)

    @property
    def collisions(self) -> tuple[FieldDecision, ...]:
        return tuple(f for f in self.fields if f.winner is not None)

    @property
    def has_writes(self) -> bool:
        return any(f.action in (Action.WRITE_MARKETO, Action.WRITE_DYNAMICS) for f in self.fields)

    def summary(self) -> dict[str, Any]:
        """A compact, loggable form (field names and actions, no values: values may be personal data)."""
        return {
            "entity": self.entity,
            "action": self.action.value,
            "reason": self.reason,
            "to_marketo": sorted(self.marketo_writes),
            "to_dynamics": sorted(self.dynamics_writes),
            "collisions": {f.field: f.winner.value for f in self.collisions if f.winner},
            "errors": {f.field: f.error.reason for f in self.errors if f.error},
        }
