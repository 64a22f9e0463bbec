"""The records the state store holds, as plain immutable values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
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
    row: tuple[str, str] | None = field(default=None, compare=False, repr=False)
    """Where the store holds it, as read: (partition, row key); None for a link not stored yet
    (:mod:`shared.store.link_keys`)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a feed reader got to: a Marketo paging token, a Dataverse delta link, a Quick Sync page."""

    name: str
    value: str
    updated_at: datetime
    etag: str | None = None


class ErrorStatus(StrEnum):
    OPEN = "open"  # seen, nobody acted on it yet
    RETRYING = "retrying"  # an admin put the record back on the queue: resolved if it syncs, open if it fails
    RESOLVED = "resolved"  # the record synced cleanly since (``resolved_by`` "sync"), or an admin closed it
    IGNORED = "ignored"  # an admin chose to live with it: stays ignored when seen again (its count goes on)


ACTIVE = frozenset({ErrorStatus.OPEN, ErrorStatus.RETRYING})
"""The statuses a clean reconcile of the record resolves."""
RESOLVED_BY_SYNC = "sync"
RESOLVED_BY_ADMIN = "admin"
_KEY_SEPARATOR = "\x1f"


def error_key(entity: str, record_id: str, field: str | None, code: str, direction: str) -> str:
    """The row key of the one error per record, field and cause: the same parts always give the same id, so two
    instances meeting the same failure merge into one row."""
    parts = _KEY_SEPARATOR.join((entity, record_id.lower(), field or "", code, direction))
    return hashlib.sha256(parts.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SyncErrorRecord:
    """One failed record (or field of one), for as long as it fails: seen ``count`` times, from ``first_seen`` to
    ``last_seen``. Its id is derived from the record, field and cause (:func:`error_key`); ``row_id`` only keeps
    the id of a row stored before ids were derived."""

    entity: str
    record_id: str
    operation: str  # create, update, flag_deleted, read, ...
    direction: str  # TO_MARKETO | TO_DYNAMICS | "-"
    code: str
    message: str
    last_seen: datetime
    field: str | None = None
    status: ErrorStatus = ErrorStatus.OPEN
    count: int = 1
    first_seen: datetime | None = None  # None: ``last_seen`` (seen once)
    attempts: int = 0  # retries asked by an admin
    marketo_id: str | None = None
    label: str = ""  # the record's name or e-mail, as the sync read it
    resolved_at: datetime | None = None
    resolved_by: str | None = None  # RESOLVED_BY_SYNC | RESOLVED_BY_ADMIN
    row_id: str | None = None

    @property
    def id(self) -> str:
        return self.row_id or error_key(self.entity, self.record_id, self.field, self.code, self.direction)

    @property
    def since(self) -> datetime:
        return self.first_seen or self.last_seen

    def seen_again(self, again: SyncErrorRecord) -> SyncErrorRecord:
        """This stored error merged with a new sighting of it: counted, the latest wording and time kept, and
        open again unless an admin ignored it (``again`` recorded as resolved, a discarded dead letter, stays so)."""
        latest = again.last_seen >= self.last_seen
        if again.status is ErrorStatus.RESOLVED:
            status, resolved_at, resolved_by = ErrorStatus.RESOLVED, again.resolved_at, again.resolved_by
        elif self.status is ErrorStatus.IGNORED:
            status, resolved_at, resolved_by = ErrorStatus.IGNORED, None, None
        else:
            status, resolved_at, resolved_by = ErrorStatus.OPEN, None, None
        return replace(
            self,
            operation=again.operation if latest else self.operation,
            message=again.message if latest else self.message,
            last_seen=max(self.last_seen, again.last_seen),
            first_seen=min(self.since, again.since),
            count=self.count + again.count,
            status=status,
            resolved_at=resolved_at,
            resolved_by=resolved_by,
            marketo_id=again.marketo_id or self.marketo_id,
            label=again.label or self.label,
        )

    def moved_to(self, status: ErrorStatus, *, by: str, at: datetime) -> SyncErrorRecord:
        """Retried (one attempt more), ignored, or resolved by ``by``."""
        resolved = status is ErrorStatus.RESOLVED
        return replace(
            self,
            status=status,
            attempts=self.attempts + (1 if status is ErrorStatus.RETRYING else 0),
            resolved_at=at if resolved else None,
            resolved_by=by if resolved else None,
        )

    def as_row(self) -> dict[str, Any]:
        """The stored document, and the base of what the Sync Errors view shows."""
        return {
            "id": self.id,
            "entity": self.entity,
            "record_id": self.record_id,
            "marketo_id": self.marketo_id,
            "label": self.label,
            "operation": self.operation,
            "direction": self.direction,
            "field": self.field or "",
            "code": self.code,
            "message": self.message,
            "status": self.status.value,
            "count": self.count,
            "first_seen": self.since.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "attempts": self.attempts,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
        }


@dataclass(frozen=True, slots=True)
class ErrorQuery:
    """What the Sync Errors view filters by; every part optional. ``search`` matches id, record id, label, field,
    code and message, ignoring case; ``since``/``until`` bound ``last_seen`` (inclusive)."""

    entity: str | None = None
    direction: str | None = None
    code: str | None = None
    status: ErrorStatus | None = None
    search: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500

    def matches(self, record: SyncErrorRecord) -> bool:
        if self.entity and record.entity != self.entity:
            return False
        if self.direction and record.direction != self.direction:
            return False
        if self.code and record.code.casefold() != self.code.casefold():
            return False
        if self.status and record.status is not self.status:
            return False
        if self.since and record.last_seen < self.since:
            return False
        if self.until and record.last_seen > self.until:
            return False
        if self.search:
            text = " ".join(
                (record.id, record.record_id, record.label, record.field or "", record.code, record.message)
            )
            return self.search.casefold() in text.casefold()
        return True


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
