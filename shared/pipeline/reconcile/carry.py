"""Full calls while the stream is busy: which of a batch's records wait for the next batch.

Marketo takes 300 records a call (300 ids a read), so a busy stream costs the fewest calls when every call is
full. A batch that came in busy (:func:`busy`: at least ``SYNC_CARRY_BUSY_MESSAGES`` messages, gathered by the
Functions host within its 2 s ``maxBatchWaitTime``, some saying the stream flows) makes only full
calls in each call group; the records beyond the last whole 300 go back on the queue, due at a mark of the
clock (:func:`hold_until`: every 2 s for persons, every 10 s at its own second for each one-way object type), to
join a later batch's: what every batch and instance held within one interval
comes back together. The call groups are the persons (leads and contacts together: one
read and one update per 300) and each one-way object (companies, opportunities, custom objects: one upsert per
300 each). Sales persons and teams are never held: the records that name them are written after them.

A held record keeps its pending mark (nothing is lost if its message is: the sweep sends it again), and its
notification says since when it waits (``held_since``) and whether the batch that held it had fresh
notifications (``held_flowing``). A batch that is not busy takes everything, and so does a group in which a
record has waited ``max_hold``. A held notification whose mark is gone when it comes back was
reconciled meanwhile by a later change's batch: it is dropped without a call.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.core.entities import MarketoObject
from shared.core.mapping import SyncMapping
from shared.marketo.batching import MAX_BATCH
from shared.pipeline.notification import Notification
from shared.pipeline.reconcile.batch import Target

PERSONS = "persons"
"""The call group of every two-way entity: their persons are read and written together."""
_HELD_OBJECTS = frozenset({MarketoObject.COMPANY, MarketoObject.OPPORTUNITY, MarketoObject.CUSTOM_OBJECT})
HELD_DONE = "held back for a fuller call, and reconciled meanwhile by a later batch: nothing left to do"
HOLD_DELAY = timedelta(seconds=2)
"""How long held records stay off the queue at least (host.json's maxBatchWaitTime): the next batch forms from
fresh messages alone, and the held records join a later one."""
HOLD_GRID = timedelta(seconds=2)
"""Held records come back at a multiple of this on the clock (:func:`hold_until`), whichever batch or instance
held them: every record held within one interval comes back at once and joins one batch, one call, instead of
each batch's remainder following its own chain of batches and flushing as its own part-full call."""
OBJECT_HOLD_GRID = timedelta(seconds=10)
"""A one-way object's held records come back on this coarser grid, each object type at its own odd second of it
(:func:`hold_until`): between the persons' marks and apart from the other types (five seconds to share: two types
meet only if their names hash alike), as one run of messages that mostly joins one batch. Held on the fine grid, a type's few held records were spread over the several batches of each
mark, and each batch flushed its share as a call of its own once a record had waited ``max_hold``. What a batch of
held records alone holds again comes back on the fine grid: if the stream stopped, it goes out seconds later."""
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CarryRule:
    """Whether a batch may hold records back (``busy``: it came in with at least the busy size), the time now,
    the longest a record may wait, Marketo's records per call, and whether the batch had fresh notifications."""

    busy: bool
    now: datetime
    max_hold: timedelta = timedelta(seconds=120)
    call_size: int = MAX_BATCH
    fresh: bool = True  # the batch came with fresh notifications: what it holds was held while the stream flowed


def call_group(mapping: SyncMapping, entity: str) -> str | None:
    """The call group of an entity's records, or None for those never held."""
    rule = mapping.get(entity).rule
    if rule.two_way:
        return PERSONS
    return entity if rule.marketo_object in _HELD_OBJECTS else None


def waiting_since(target: Target, now: datetime) -> datetime:
    """Since when the record waits for a fuller call (``now``: it was not held before)."""
    return min((n.held_since for n in target.notes if n.held_since is not None), default=now)


def split_for_full_calls(
    targets: Mapping[str, list[Target]], mapping: SyncMapping, rule: CarryRule
) -> tuple[dict[str, list[Target]], list[Target]]:
    """The targets to reconcile now (by entity, in their order) and those held for the next batch.

    Per call group: everything when the batch is not busy or one of its records waited ``max_hold``; otherwise
    the records that waited longest first, as many as fill whole calls, and the rest held."""
    if not rule.busy:
        return dict(targets), []
    groups: dict[str, list[Target]] = {}
    for entity, listed in targets.items():
        group = call_group(mapping, entity)
        if group is not None:
            groups.setdefault(group, []).extend(listed)
    held: list[Target] = []
    for listed in groups.values():
        since = [waiting_since(t, rule.now) for t in listed]
        if any(rule.now - s >= rule.max_hold for s in since):
            continue
        order = sorted(range(len(listed)), key=lambda i: since[i])  # stable: the batch's order among equals
        keep = len(listed) - len(listed) % rule.call_size
        held.extend(listed[i] for i in order[keep:])
    keys = {(t.entity, t.dynamics_id) for t in held}
    now = {
        entity: kept
        for entity, listed in targets.items()
        if (kept := [t for t in listed if (t.entity, t.dynamics_id) not in keys])
    }
    return now, held


def fresh(notes: Sequence[Notification]) -> int:
    """How many of a batch's notifications were not held back before."""
    return sum(1 for n in notes if n.held_since is None)


def flowing(notes: Sequence[Notification]) -> int:
    """How many of a batch's notifications say the stream flowed a moment ago: the fresh ones, and the held ones
    that a batch with fresh notifications held (what makes a batch busy)."""
    return sum(1 for n in notes if n.held_since is None or n.held_flowing)


def busy(messages: int, flowing: int, size: int) -> bool:
    """A batch of at least ``size`` messages (the host gathered them within its maxBatchWaitTime: the stream
    runs at ``size`` per 2 s or more) of which some say the stream flowed a moment ago (:func:`flowing`): more
    follow. Held records come back together (:data:`HOLD_GRID`), often as a batch of their own between fresh
    ones; those a flowing batch held keep such a batch busy once. Records held by held records alone never make
    a batch busy, so they cannot keep each other waiting once the stream stops: they wait at most one more hold
    (and ``max_hold`` bounds the wait while the stream trickles on)."""
    return messages >= size and flowing > 0


def hold_until(now: datetime, group: str = PERSONS) -> datetime:
    """When records of call ``group`` held at ``now`` come back, at least :data:`HOLD_DELAY` away: persons at the
    next multiple of :data:`HOLD_GRID` on the clock, a one-way object type at its own odd second of
    :data:`OBJECT_HOLD_GRID` (the same for every batch and instance: a stable hash of the group's name)."""
    grid, offset = HOLD_GRID, timedelta(0)
    if group != PERSONS:
        grid = OBJECT_HOLD_GRID
        slot = zlib.crc32(group.encode()) % (OBJECT_HOLD_GRID // HOLD_GRID)  # the odd seconds: 1, 3, 5, 7, 9
        offset = slot * HOLD_GRID + HOLD_GRID / 2
    earliest = now + HOLD_DELAY - offset
    steps = -((_EPOCH - earliest) // grid)  # ceiling division of timedeltas
    return _EPOCH + steps * grid + offset


def held_again(target: Target, now: datetime, stamp: str, flowing: bool = True) -> list[Notification]:
    """The notifications of a held record, as they go back on the queue: fresh message ids (past duplicate
    detection), since when the record waits, and whether a batch with fresh notifications held it."""
    since = waiting_since(target, now)
    return [
        n.model_copy(
            update={"held_since": since, "held_flowing": flowing, "dedupe_key": f"{n.dedupe_key or ''}|held@{stamp}"}
        )
        for n in target.notes
    ]
