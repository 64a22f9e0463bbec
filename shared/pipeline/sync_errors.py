"""The sync errors the pipeline records, one value per failed record (or field), worded for the Sync Errors view.

The reconcile, Quick Sync and the queue reader all build them here, so one record's failure reads the same
whichever of them met it. Each message says what went wrong and what a person can do about it. Codes are the
service's own where it gave one (Marketo reason codes, Dataverse error codes) and ours otherwise:
``record-not-found``, ``duplicate-person``, ``retries-exhausted``, ``column-missing``, ``conversion``,
``bad-message``, ``pending-gave-up``. The direction says which way the change was going: a value that came from
Marketo and cannot be read, or that Dataverse refused, is ``marketo_to_dynamics``.

An error's id is derived from its record, field, code and direction (:func:`shared.store.model.error_key`), so the
same failure met again is counted on its row rather than added; :mod:`shared.pipeline.error_lifecycle` resolves it
when the record later reconciles cleanly.
"""

from __future__ import annotations

from datetime import datetime

from shared.core.entities import Side
from shared.core.mapping import EntityMapping, FieldMapping
from shared.core.policy import Decision
from shared.dataverse.client import BatchResult
from shared.marketo.models import RecordOutcome
from shared.pipeline.notification import body_preview
from shared.store.model import TO_DYNAMICS, TO_MARKETO, SyncErrorRecord


def sync_error(
    entity: str,
    rid: str,
    operation: str,
    direction: str,
    code: str,
    message: str,
    *,
    at: datetime,
    field: str | None = None,
) -> SyncErrorRecord:
    return SyncErrorRecord(
        entity=entity,
        record_id=rid,
        operation=operation,
        direction=direction,
        code=code,
        message=message,
        last_seen=at,
        field=field,
    )


def unreadable_message(message_id: str | None, problem: str, body: bytes, *, at: datetime) -> SyncErrorRecord:
    """A queue message that is neither a notification nor a Dataverse context: recorded, never retried."""
    message = f"queue message {message_id} is not readable: {problem}; body: {body_preview(body)}"
    return sync_error("-", message_id or "", "dequeue", "-", "bad-message", message, at=at)


def record_not_found(entity: str, rid: str, *, at: datetime) -> SyncErrorRecord:
    message = "Dynamics did not return the record: deleted, or the sync user cannot read it"
    return sync_error(entity, rid, "read", TO_MARKETO, "record-not-found", message, at=at)


def conversion_errors(mapping: EntityMapping, rid: str, decision: Decision, *, at: datetime) -> list[SyncErrorRecord]:
    """One error per field whose value could not be converted for the other side (the rest of the record syncs)."""
    return [
        sync_error(
            mapping.entity,
            rid,
            "convert",
            TO_DYNAMICS if f.error.target == "dynamics" or f.error.source == "marketo" else TO_MARKETO,
            "conversion",
            f.error.reason,
            at=at,
            field=f.field,
        )
        for f in decision.errors
        if f.error is not None
    ]


def marketo_error(entity: str, rid: str, operation: str, outcome: RecordOutcome, *, at: datetime) -> SyncErrorRecord:
    """A record Marketo skipped, with its reason codes and messages."""
    codes = ",".join(outcome.reason_codes) or str(outcome.status)
    message = "; ".join(r.message for r in outcome.reasons) or f"Marketo answered {outcome.status}"
    return sync_error(entity, rid, operation, TO_MARKETO, codes, message, at=at)


def dataverse_error(entity: str, rid: str, operation: str, result: BatchResult, *, at: datetime) -> SyncErrorRecord:
    """A ``$batch`` operation Dataverse refused, with its error code and message."""
    fault = result.fault
    code = (fault.code if fault is not None else None) or str(result.status)
    message = (fault.reason if fault is not None else None) or f"HTTP {result.status}"
    return sync_error(entity, rid, operation, TO_DYNAMICS, code, message, at=at)


def duplicate_person(entity: str, rid: str, why: str, *, at: datetime) -> SyncErrorRecord:
    return sync_error(entity, rid, "link", TO_MARKETO, "duplicate-person", why, at=at)


def retries_exhausted(entity: str, rid: str, why: str, *, at: datetime) -> SyncErrorRecord:
    return sync_error(entity, rid, "reconcile", TO_MARKETO, "retries-exhausted", why, at=at)


def column_missing(
    entity: str, column: str, field: FieldMapping | None, side: Side, *, at: datetime
) -> SyncErrorRecord:
    """A mapped column (or Marketo field, or the sync filter column) that no longer exists: reported once, when
    it is marked broken, not for every record that would have written it."""
    where = "Marketo" if side is Side.MARKETO else "Dynamics"
    if side is Side.MARKETO and field is not None:
        what = f"the Marketo field '{field.marketo}' (mapped to '{column}')"
    else:
        what = "the sync filter column" if field is None else f"the mapped column '{column}'"
    message = (
        f"{what} no longer exists in {where}: marked broken, the other fields keep syncing. "
        "Restore it, or remove the field from the mapping."
    )
    return sync_error(entity, "", "read", TO_MARKETO, "column-missing", message, at=at, field=column)


def pending_gave_up(
    entity: str, rid: str, direction: str, attempts: int, last_error: str | None, *, at: datetime
) -> SyncErrorRecord:
    """The sweep re-sent a record's pending change ``attempts`` times (outages not counted) and it failed every
    time: it stops re-sending it until the record changes again or this error is retried."""
    last = last_error or "none recorded (the messages were lost, or failed before the reconcile)"
    message = (
        f"the sweep re-sent this record's pending change {attempts} times and it never reconciled; it stopped "
        f"re-sending it. Last error: {last}. Retry this error once the cause is fixed (the record's next change "
        "retries it too)."
    )
    return sync_error(entity, rid, "reconcile", direction, "pending-gave-up", message, at=at)
