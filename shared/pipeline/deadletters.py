"""Dead letters an admin can see and act on: list them, replay them onto the changes queue, or discard them.

A message ends in the dead-letter sub-queue when it could not be consumed (the queue's max delivery count, its
time to live). Replaying sends a copy back to the main queue under a fresh message id, so Service Bus duplicate
detection does not drop it as the original, and the reconcile re-reads both systems for it like for any other
notification. The fresh id is derived from the dead letter (its id and sequence number): a replay repeated
after a lost lock is the same message again, which duplicate detection drops within its window.

A message that is not a notification (nor a Dataverse context) can never succeed: it is shown as unreadable,
with the parser's reason and a preview that holds its shape, never its values, and can only be discarded.
Discarding records a resolved sync error, so the Sync Errors view keeps what was dropped and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.dataverse.context import ContextError, parse_context
from shared.errors import Busy, NotFound, NotPossible
from shared.pipeline.notification import (
    NotificationError,
    body_preview,
    looks_like_dataverse_context,
    parse_notification,
)
from shared.pipeline.sync_errors import sync_error
from shared.queueing import DeadLettered, DeadLetterQueue, OutgoingMessage, Remove, Resend, Settlement
from shared.store.base import StateStore
from shared.store.model import RESOLVED_BY_ADMIN, ErrorStatus, SyncErrorRecord

log = logging.getLogger(__name__)

MAX_LISTED = 1000  # one page of the listing
MAX_SCANNED = 5000  # dead letters looked at by one replay or discard call
MAX_COUNTED = 1000  # the status view's count, as far as its ``dead_lettered`` counts


@dataclass(frozen=True, slots=True)
class Carried:
    """What a dead letter carries, read the way the reconcile function reads it."""

    readable: bool
    entity: str | None = None
    record_id: str | None = None
    marketo_id: str | None = None
    source: str | None = None
    problem: str | None = None  # unreadable: the parser's reason (it never quotes the body)
    preview: str | None = None  # unreadable: the body's shape, never its values

    def as_dict(self) -> dict[str, Any]:
        if not self.readable:
            return {"readable": False, "problem": self.problem, "preview": self.preview}
        found = {"entity": self.entity, "record_id": self.record_id, "marketo_id": self.marketo_id}
        return {"readable": True, **found, "source": self.source}


def carried(body: bytes) -> Carried:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    try:
        if looks_like_dataverse_context(data):
            context = parse_context(body)
            return Carried(True, context.primary_entity_name, context.primary_entity_id, None, "dataverse_queue")
        note = parse_notification(body)
    except (NotificationError, ContextError) as exc:
        return Carried(False, problem=str(exc), preview=body_preview(body))
    return Carried(True, note.entity or "person", note.dynamics_id, note.marketo_id, note.source.value)


def entity_of(dead: DeadLettered) -> str | None:
    return carried(dead.body).entity


def row(queue: str, dead: DeadLettered) -> dict[str, Any]:
    return {
        "id": dead.message_id,
        "queue": queue,
        "sequence_number": dead.sequence_number,
        "enqueued_at": dead.enqueued_at.isoformat() if dead.enqueued_at else None,
        "reason": dead.reason,
        "description": dead.description,
        "delivery_count": dead.delivery_count,
        "notification": carried(dead.body).as_dict(),
    }


def list_dead_letters(dlq: DeadLetterQueue, queue: str, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
    """One page, oldest first; ``next_after`` is the ``after`` of the next page (None: this was the last)."""
    found = dlq.dead_letters(queue, after=after, limit=limit)
    last = found[-1].sequence_number if len(found) == limit and found else None
    return {"queue": queue, "count": len(found), "items": [row(queue, d) for d in found], "next_after": last}


def summary(dlq: object, queue: str) -> dict[str, Any] | None:
    """For the status view: how many dead letters (up to MAX_COUNTED) and why the oldest one ended there; None
    when this host has no dead-letter access."""
    if not isinstance(dlq, DeadLetterQueue):
        return None
    found = dlq.dead_letters(queue, limit=MAX_COUNTED)
    oldest = found[0] if found else None
    return {
        "count": len(found),
        "oldest": None
        if oldest is None
        else {
            "id": oldest.message_id,
            "enqueued_at": oldest.enqueued_at.isoformat() if oldest.enqueued_at else None,
            "reason": oldest.reason,
            "description": oldest.description,
        },
    }


def replay_message_id(dead: DeadLettered) -> str:
    digest = hashlib.sha256(f"{dead.message_id}|{dead.sequence_number}".encode()).hexdigest()
    return f"replay-{digest[:40]}"


def replay_copy(dead: DeadLettered) -> OutgoingMessage:
    properties = {**dead.application_properties, "replayed_from": dead.message_id[:128]}
    return OutgoingMessage(
        body=dead.body,
        message_id=replay_message_id(dead),
        correlation_id=dead.correlation_id,
        subject=dead.subject,
        application_properties=properties,
    )


@dataclass(frozen=True, slots=True)
class Replayed:
    queue: str
    replayed: list[dict[str, str]]  # {"id": the dead letter's, "new_message_id": the copy's}
    skipped_unreadable: list[str]  # ids of dead letters that can only be discarded
    missed: int  # wanted, but taken by another call meanwhile (or gone)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "queued",
            "queue": self.queue,
            "count": len(self.replayed),
            "replayed": self.replayed,
            "skipped_unreadable": self.skipped_unreadable,
            "missed": self.missed,
        }


def _scan(dlq: DeadLetterQueue, queue: str) -> list[DeadLettered]:
    return dlq.dead_letters(queue, limit=MAX_SCANNED)


def _named(dlq: DeadLetterQueue, queue: str, dead_letter_id: str) -> list[DeadLettered]:
    found = [d for d in _scan(dlq, queue) if d.message_id == dead_letter_id]
    if not found:
        raise NotFound("no such dead letter (replayed or discarded already?)", code="not-found")
    return found


def _replay(dlq: DeadLetterQueue, queue: str, chosen: list[DeadLettered], unreadable: list[str]) -> Replayed:
    plan: dict[int, Settlement] = {d.sequence_number: Resend(replay_copy(d)) for d in chosen}
    settled = dlq.settle(queue, plan)
    replayed = [{"id": d.message_id, "new_message_id": replay_message_id(d)} for d in settled.done]
    for item in replayed:
        log.info("dead letter %s of %s replayed as %s", item["id"], queue, item["new_message_id"])
    return Replayed(queue, replayed, unreadable, len(settled.missed))


def replay(dlq: DeadLetterQueue, queue: str, dead_letter_id: str) -> Replayed:
    """Replay one dead letter (every copy, should the queue hold its id twice). Refuses with NotFound when it is
    not there, NotPossible when it cannot succeed, Busy when another call is replaying or discarding it now."""
    found = _named(dlq, queue, dead_letter_id)
    if not any(carried(d.body).readable for d in found):
        raise NotPossible(
            "this dead letter is not a sync notification, so replaying it cannot succeed: discard it",
            code="unreadable",
        )
    done = _replay(dlq, queue, [d for d in found if carried(d.body).readable], [])
    if not done.replayed:
        raise Busy("another call is replaying or discarding this dead letter right now", code="busy")
    return done


def replay_all(dlq: DeadLetterQueue, queue: str, *, entity: str | None = None) -> Replayed:
    """Every readable dead letter (of ``entity``, when given; ``person`` for a Marketo person not yet linked);
    unreadable ones are skipped and listed, since only discarding them helps."""
    chosen: list[DeadLettered] = []
    unreadable: list[str] = []
    for dead in _scan(dlq, queue):
        what = carried(dead.body)
        if not what.readable:
            if entity is None:
                unreadable.append(dead.message_id)
        elif entity is None or what.entity == entity:
            chosen.append(dead)
    return _replay(dlq, queue, chosen, unreadable)


@dataclass(frozen=True, slots=True)
class Discarded:
    queue: str
    id: str
    sync_error: str  # the resolved sync error that records it

    def as_dict(self) -> dict[str, Any]:
        return {"status": "discarded", "queue": self.queue, "id": self.id, "sync_error": self.sync_error}


def discarded_record(queue: str, dead: DeadLettered, *, at: datetime) -> SyncErrorRecord:
    what = carried(dead.body)
    message = (
        f"dead letter {dead.message_id} of {queue} discarded by an admin without replay; it had ended there after "
        f"{dead.delivery_count} deliveries ({dead.reason or 'no reason given'}: {dead.description or '-'})"
    )
    record = sync_error(
        what.entity or "-",
        what.record_id or what.marketo_id or "",
        "discard",
        "-",
        "dead-letter-discarded",
        message,
        at=at,
    )
    return replace(record, status=ErrorStatus.RESOLVED, resolved_at=at, resolved_by=RESOLVED_BY_ADMIN)


def discard(dlq: DeadLetterQueue, store: StateStore, queue: str, dead_letter_id: str) -> Discarded:
    """Complete the dead letter without replaying it, and record that in the sync errors (status resolved)."""
    found = _named(dlq, queue, dead_letter_id)
    settled = dlq.settle(queue, {d.sequence_number: Remove() for d in found})
    if not settled.done:
        raise Busy("another call is replaying or discarding this dead letter right now", code="busy")
    records = [store.add_error(discarded_record(queue, d, at=datetime.now(UTC))) for d in settled.done]
    log.warning("dead letter %s of %s discarded (recorded as sync error %s)", dead_letter_id, queue, records[0].id)
    return Discarded(queue, dead_letter_id, records[0].id)
