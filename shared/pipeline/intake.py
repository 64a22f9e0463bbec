"""Turning what arrives (a Dataverse execution context, a Marketo webhook call) into a notification.

Pure decisions: each function returns a Notification or an :class:`Ignored` value with the reason, or refuses
input it cannot use with :class:`InvalidRequest` (naming the field, never repeating its value), so the HTTP and
queue triggers only parse, call and answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.core.mapping import SyncMapping
from shared.dataverse.context import ExecutionContext
from shared.errors import InvalidRequest
from shared.pipeline.notification import Kind, Notification, Source

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
        dedupe_key=context.operation_id or context.correlation_id,
    )


def from_marketo_webhook(payload: Any) -> Notification:
    """A Marketo "Call Webhook" body: ``{"leadId": {{lead.Id}}, ...}`` (tokens arrive as text)."""
    if not isinstance(payload, Mapping):
        raise InvalidRequest("body must be a JSON object with a 'leadId'", code="bad-payload", field="body")
    raw = payload.get("leadId", payload.get("id"))
    if raw is None:
        raise InvalidRequest("'leadId' is required (use the {{lead.Id}} token)", code="bad-payload", field="leadId")
    text = str(raw).strip()
    if not text.isdigit():
        raise InvalidRequest(
            "'leadId' must be a Marketo lead id (digits): send the {{lead.Id}} token",
            code="bad-payload",
            field="leadId",
        )
    stamp = payload.get("changedAt") or payload.get("timestamp")
    return Notification(
        source=Source.MARKETO_WEBHOOK,
        marketo_id=text,
        dedupe_key=f"{text}:{stamp}" if stamp else None,
    )
