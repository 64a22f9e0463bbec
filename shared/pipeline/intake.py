"""Turning what arrives (a Dataverse execution context, a Marketo webhook call) into a notification.

Pure decisions: each function returns a Notification or an :class:`Ignored` value with the reason, or refuses
input it cannot use with :class:`InvalidRequest` (naming the field, never repeating its value), so the HTTP and
queue triggers only parse, call and answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.core.mapping import SyncMapping
from shared.dataverse.context import ExecutionContext
from shared.errors import InvalidRequest
from shared.pipeline.connections import CONNECTION, connection_notification
from shared.pipeline.notification import Kind, Notification, Source

MAX_MARKETO_ID = 2**31 - 1  # Marketo lead ids are 32-bit integers
MAX_ID_DIGITS = 10
MAX_STAMP_LENGTH = 64
MAX_CHANGES = 1000  # a lead has fewer fields than this
MAX_FIELD_NAME = 255

MarketoValue = str | int | float | bool | None

UPSERT_MESSAGES = frozenset({"create", "update", "assign", "setstate", "setstatedynamicentity", "merge"})
DELETE_MESSAGES = frozenset({"delete"})


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event that needs no sync, and why (answered as a success, so the sender does not retry it)."""

    reason: str


def from_dataverse(
    context: ExecutionContext, mapping: SyncMapping, *, sync_user_id: str | None, source: Source
) -> Notification | Ignored:
    entity = context.primary_entity_name.lower()
    if entity == CONNECTION and "opportunity" in mapping.by_entity:
        return _connection(context, sync_user_id=sync_user_id, source=source)
    if entity not in mapping.by_entity:
        return Ignored(f"entity '{entity}' is not in the sync mapping")
    message = context.message_name.lower()
    if message in DELETE_MESSAGES:
        kind = Kind.DELETE
    elif message in UPSERT_MESSAGES:
        kind = Kind.UPSERT
    else:
        return Ignored(f"message '{context.message_name}' does not change synced data")
    if sync_user_id and context.initiating_user_id.lower() == sync_user_id.lower():
        return Ignored("the change was made by the sync's own application user: not echoed back")
    return Notification(
        source=source,
        entity=entity,
        dynamics_id=context.primary_entity_id.lower(),
        kind=kind,
        correlation_id=context.correlation_id,
        observed_at=context.operation_created_on or datetime.now(UTC),
        dedupe_key=context.delivery_key,
    )


def _connection(context: ExecutionContext, *, sync_user_id: str | None, source: Source) -> Notification | Ignored:
    """A connection changed: its opportunity's roles may have (the opportunity is reconciled, not the row)."""
    if context.message_name.lower() not in UPSERT_MESSAGES | DELETE_MESSAGES:
        return Ignored(f"message '{context.message_name}' does not change synced data")
    if sync_user_id and context.initiating_user_id.lower() == sync_user_id.lower():
        return Ignored("the change was made by the sync's own application user: not echoed back")
    note = connection_notification(context, source=source)
    return note if note is not None else Ignored("the connection links no opportunity: no role to follow")


def from_marketo_webhook(payload: Any) -> Notification:
    """A Marketo "Call Webhook" body: ``{"leadId": {{lead.Id}}, ...}`` (tokens arrive as text).

    Every part the sync reads is checked before the notification is built: the lead id, the ``changes`` list
    (:func:`marketo_changes`) and the time stamp that tells two deliveries apart.
    """
    if not isinstance(payload, Mapping):
        raise InvalidRequest("body must be a JSON object with a 'leadId'", code="bad-payload", field="body")
    lead_id = _lead_id(payload.get("leadId", payload.get("id")))
    changes = marketo_changes(payload)
    stamp = _stamp(payload)
    return Notification(
        source=Source.MARKETO_WEBHOOK,
        marketo_id=lead_id,
        dedupe_key=_webhook_key(lead_id, stamp, changes) if stamp else None,
    )


def _webhook_key(lead_id: str, stamp: str, changes: list[tuple[str, MarketoValue]] | None) -> str:
    """What makes two deliveries the same Marketo change: the lead, the trigger's time stamp and the changed
    values. A date token has whole seconds, so two edits of one lead within a second share a stamp; their
    ``changes`` tell them apart (else duplicate detection would drop the second, and its change would wait for
    the sweep). A copy Marketo sends again carries the same body, so it stays a duplicate."""
    if not changes:
        return f"{lead_id}:{stamp}"
    digest = hashlib.sha256(json.dumps(changes, separators=(",", ":")).encode()).hexdigest()[:16]
    return f"{lead_id}:{stamp}:{digest}"


def _lead_id(raw: object) -> str:
    if raw is None:
        raise InvalidRequest("'leadId' is required (use the {{lead.Id}} token)", code="bad-payload", field="leadId")
    text = raw.strip() if isinstance(raw, str) else str(raw) if type(raw) is int else ""
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS and 0 < int(text) <= MAX_MARKETO_ID):
        raise InvalidRequest(
            f"'leadId' must be a Marketo lead id (a whole number from 1 to {MAX_MARKETO_ID}): "
            "send the {{lead.Id}} token",
            code="bad-payload",
            field="leadId",
        )
    return str(int(text))


def _stamp(payload: Mapping[str, Any]) -> str | None:
    key = "changedAt" if payload.get("changedAt") is not None else "timestamp"
    raw = payload.get(key)
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and len(raw) <= MAX_STAMP_LENGTH:
        return raw
    if type(raw) is int and abs(raw) < 10**15:
        return str(raw)
    raise InvalidRequest(
        f"'{key}' must be a date-time text of at most {MAX_STAMP_LENGTH} characters (the trigger's date token)",
        code="bad-payload",
        field=key,
    )


def marketo_changes(payload: Any) -> list[tuple[str, MarketoValue]] | None:
    """The ``changes`` list as ``(field, newValue)`` pairs; None when the call names none (a created lead, or a
    template without the changed fields). Anything else in its place is refused: ``false`` is not "no changes"."""
    raw = payload.get("changes") if isinstance(payload, Mapping) else None
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_CHANGES:
        raise InvalidRequest(
            f"'changes' must be a list of at most {MAX_CHANGES} {{field, newValue}} objects",
            code="bad-payload",
            field="changes",
        )
    pairs: list[tuple[str, MarketoValue]] = []
    for index, change in enumerate(raw):
        where = f"changes[{index}]"
        if not isinstance(change, Mapping):
            raise InvalidRequest(f"{where} must be a {{field, newValue}} object", code="bad-payload", field=where)
        name, value = change.get("field"), change.get("newValue")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_FIELD_NAME:
            raise InvalidRequest(
                f"{where}.field must be a Marketo field name of 1 to {MAX_FIELD_NAME} characters",
                code="bad-payload",
                field=f"{where}.field",
            )
        if value is not None and not isinstance(value, str | int | float):
            raise InvalidRequest(
                f"{where}.newValue must be text, a number, true, false or null",
                code="bad-payload",
                field=f"{where}.newValue",
            )
        pairs.append((name, value))
    return pairs
