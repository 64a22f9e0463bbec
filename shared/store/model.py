"""The records the state store holds, as plain immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.core.values import Canonical

TO_MARKETO = "dynamics_to_marketo"
"""A sync error's direction: the change was on its way to Marketo (or the read it needed failed)."""
TO_DYNAMICS = "marketo_to_dynamics"
"""A sync error's direction: the change was on its way back to Dynamics."""


@dataclass(frozen=True, slots=True)
class Link:
    """A Dynamics record, the Marketo record it is linked to, and the values both sides last agreed on.

    ``etag`` is the store's version of this row: pass it back when saving so two instances working on the same
    record cannot overwrite each other's baseline (the loser re-reads and decides again).
    """

    entity: str
    dynamics_id: str
    marketo_id: str | None = None
    baseline: dict[str, Canonical] = field(default_factory=dict)
    deleted_in_dynamics: bool = False
    synced_at: datetime | None = None
    followed_by: str | None = None  # "contact:<id>" once a lead was qualified and its person follows the contact
    intent: dict[str, Canonical] = field(default_factory=dict)  # writes begun, not yet agreed (shared/core/intent.py)
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a feed reader got to: a Marketo paging token, a Dataverse delta link, a Quick Sync page."""

    name: str
    value: str
    updated_at: datetime
    etag: str | None = None


class ErrorStatus(StrEnum):
    OPEN = "open"
    RETRYING = "retrying"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class SyncErrorRecord:
    """One failed record, as the Sync Errors view shows it."""

    id: str
    entity: str
    record_id: str
    operation: str  # create, update, flag_deleted, read, ...
    direction: str  # TO_MARKETO | TO_DYNAMICS
    code: str
    message: str
    occurred_at: datetime
    field: str | None = None
    status: ErrorStatus = ErrorStatus.OPEN
    attempts: int = 1

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": self.entity,
            "record_id": self.record_id,
            "operation": self.operation,
            "direction": self.direction,
            "field": self.field or "",
            "code": self.code,
            "message": self.message,
            "occurred_at": self.occurred_at.isoformat(),
            "status": self.status.value,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class PauseState:
    """The whole sync, or single entities, paused. While paused, notifications wait in the queue."""

    all: bool = False
    entities: frozenset[str] = frozenset()

    def is_paused(self, entity: str) -> bool:
        return self.all or entity in self.entities


class ClaimState(StrEnum):
    CREATING = "creating"  # the owner is matching or creating the person's lead
    RELEASED = "released"  # the owner gave up (its create failed): anyone may take the claim at once
    DONE = "done"  # the person is linked (``entity``, ``dynamics_id``)


@dataclass(frozen=True, slots=True)
class PersonClaim:
    """Who may create the Dynamics lead of a Marketo person ("sync person to Dynamics"), and with which id.

    ``lead_id`` is chosen once, when the claim is first made, and kept by whoever takes the claim over: the lead is
    created with that id, so Dataverse itself refuses a second lead for the person (a duplicate key), and a
    takeover finds the lead a crashed owner created by reading that id.
    """

    marketo_id: str
    owner: str
    claimed_at: datetime
    lead_id: str
    state: ClaimState = ClaimState.CREATING
    entity: str | None = None
    dynamics_id: str | None = None
    etag: str | None = None
