"""A change notification: "this record may have changed". It carries identities, never field values.

The reconcile step re-reads both systems, so a notification needs no payload beyond who changed; that keeps
personal data off the queue, and makes duplicate, late and out-of-order notifications harmless.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared import logcontext
from shared.queueing import OutgoingMessage


class Source(StrEnum):
    DATAVERSE_WEBHOOK = "dataverse_webhook"
    DATAVERSE_QUEUE = "dataverse_queue"  # a Dataverse Service Bus service endpoint posting straight to the queue
    DATAVERSE_CATCHUP = "dataverse_catchup"
    MARKETO_WEBHOOK = "marketo_webhook"
    MARKETO_FEED = "marketo_feed"
    ADMIN_RETRY = "admin_retry"
    ADMIN_RESYNC = "admin_resync"  # a force resync job (shared/pipeline/quicksync/resync.py)
    VERIFY_SWEEP = "verify_sweep"  # a one-way record Marketo holds otherwise than sent (shared/pipeline/verify.py)


class Kind(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    source: Source
    entity: str | None = Field(default=None, description="Dynamics entity; None for a Marketo person not yet resolved")
    dynamics_id: str | None = None
    marketo_id: str | None = None
    kind: Kind = Kind.UPSERT
    by_sync: bool = Field(default=False, description="the change was the sync's own write")
    correlation_id: str | None = None
    observed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    attempt: int = Field(default=0, ge=0)
    dedupe_key: str | None = Field(default=None, description="what makes two deliveries the same event")
    held_since: datetime | None = Field(
        default=None, description="held back by a busy batch for a fuller Marketo call since (reconcile/carry.py)"
    )
    held_flowing: bool = Field(
        default=False, description="last held by a batch with fresh notifications: the stream flowed then"
    )

    @model_validator(mode="after")
    def _identified(self) -> Notification:
        if self.dynamics_id is None and self.marketo_id is None:
            raise ValueError("a notification names a Dynamics record (entity + dynamics_id) or a Marketo id")
        if self.dynamics_id is not None and not self.entity:
            raise ValueError("a Dynamics record id needs its entity")
        return self

    @property
    def message_id(self) -> str:
        """Stable per event, so Service Bus duplicate detection drops a re-sent copy (at most 128 chars)."""
        basis = self.dedupe_key or f"{self.observed_at.isoformat()}"
        who = f"{self.entity}:{self.dynamics_id}" if self.dynamics_id else f"mkto:{self.marketo_id}"
        digest = hashlib.sha256(f"{self.source}|{who}|{self.kind}|{basis}|{self.attempt}".encode()).hexdigest()
        return digest[:40]

    def to_body(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def record_key(note: Notification) -> str:
    """The record a notification names, as the pending marks key it: ``<entity>/<dynamics id>`` or
    ``person/<marketo id>`` (the status view counts the backlog in records with it, without reading bodies)."""
    if note.dynamics_id is not None and note.entity is not None:
        return f"{note.entity}/{note.dynamics_id.lower()}"
    return f"person/{note.marketo_id}"


def notification_message(note: Notification, scheduled_at: datetime | None = None) -> OutgoingMessage:
    """The queue message for a notification. Its application properties let the status view count the backlog
    per entity without reading bodies; ``scheduled_at`` holds it back (a retry, a paused entity). A notification
    without a correlation id of its own takes the running one (``shared.logcontext``: the trigger's), so the
    reconcile's logs and its requeued copies carry the id of the change that started it."""
    correlation = note.correlation_id or logcontext.correlation_id()
    if correlation is not None and note.correlation_id is None:
        note = note.model_copy(update={"correlation_id": correlation})  # the message id does not depend on it
    return OutgoingMessage(
        body=note.to_body(),
        message_id=note.message_id,
        correlation_id=note.correlation_id,
        subject=note.entity or "person",
        application_properties={
            "entity": note.entity or "person",
            "source": note.source.value,
            "record": record_key(note),
        },
        scheduled_at=scheduled_at,
    )


class NotificationError(ValueError):
    """A queue message that is not a notification we can act on."""


def parse_notification(body: bytes | str) -> Notification:
    try:
        data: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotificationError(f"message body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotificationError("message body is not a JSON object")
    try:
        return Notification.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise NotificationError(f"not a sync notification: {problems}") from None


def looks_like_dataverse_context(data: object) -> bool:
    return isinstance(data, dict) and "PrimaryEntityName" in data and "MessageName" in data


PREVIEW_KEYS = 8
PREVIEW_CHARS = 32


def body_preview(body: bytes) -> str:
    """A JSON body's top-level keys (never a value); another body's first characters with every letter and digit
    masked, which shows what kind of text it is without what it says (a secret or a person's data)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    size = f"{len(body)} bytes"
    if isinstance(data, dict):
        keys = [str(k)[:40] for k in list(data)[:PREVIEW_KEYS]]
        more = ", …" if len(data) > PREVIEW_KEYS else ""
        return f"JSON object ({size}), keys: {', '.join(keys)}{more}"
    if data is not None:
        return f"JSON {type(data).__name__} ({size})"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary ({size})"
    head = text[:PREVIEW_CHARS]
    shape = "".join("x" if c.isalnum() else (c if c.isprintable() else "·") for c in head)
    return f"text ({size}): {shape}{'…' if len(text) > PREVIEW_CHARS else ''}"
