"""The two doors changes come in by: the Dataverse webhook and the Marketo "Call Webhook" step.

Each answers only once the notification is on the queue (202), or says exactly what is wrong: 400 for a body we
cannot use, 401 for a missing or wrong secret, 403 for another organization, 413 for an oversized body, 503 when
the queue could not take it (Dataverse then retries once; its catch-up timer covers the rest).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from shared.dataverse.context import ContextError, parse_context
from shared.errors import SyncError
from shared.pipeline.echo import MarketoChange, classify_marketo_change
from shared.pipeline.intake import Ignored, IntakeError, from_dataverse, from_marketo_webhook
from shared.pipeline.notification import Notification, Source
from shared.pipeline.reconcile import notification_message
from shared.services import Services

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Dataverse caps contexts at 256 KB; anything far larger is not from Dataverse


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, default=str).encode()


def problem(status: int, code: str, message: str, **headers: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers)


def _secret_matches(expected: SecretStr, *candidates: str | None) -> bool:
    secret = expected.get_secret_value()
    if not secret:
        return False
    return any(c is not None and hmac.compare_digest(c.encode(), secret.encode()) for c in candidates)


def _organizations(services: Services) -> set[str]:
    configured = services.settings.dataverse_organization.strip().lower()
    if configured:
        return {configured}
    host = (urlparse(services.settings.dataverse_url).hostname or "").lower()
    return {host, host.split(".")[0]} - {""}


def _enqueue(services: Services, note: Notification) -> Reply:
    message = notification_message(note)
    try:
        services.queue.send(services.settings.changes_queue, [message])
    except SyncError as exc:
        log.warning("could not enqueue %s: %s", message.message_id, exc)
        return problem(503, "queue-unavailable", "the change could not be queued; retry", **{"Retry-After": "5"})
    return Reply(202, {"status": "queued", "messageId": message.message_id})


def _refused(secret: SecretStr, setting: str, where: str, candidates: tuple[str | None, ...]) -> Reply | None:
    """401 unless one of the candidates is the configured secret; with no secret configured, everyone is refused."""
    if not secret.get_secret_value():
        return problem(401, "not-configured", f"{setting} is not set: webhook calls are refused")
    if not _secret_matches(secret, *candidates):
        return problem(401, "unauthorized", f"missing or wrong secret ({where})")
    return None


def _too_large(body: bytes) -> Reply | None:
    if len(body) > MAX_BODY_BYTES:
        return problem(413, "too-large", f"body of {len(body)} bytes is over the {MAX_BODY_BYTES} byte limit")
    return None


def dataverse_webhook(services: Services, headers: Mapping[str, str], params: Mapping[str, str], body: bytes) -> Reply:
    h = {k.lower(): v for k, v in headers.items()}
    settings = services.settings
    header = settings.dataverse_webhook_header
    refused = _refused(
        settings.dataverse_webhook_secret,
        "DATAVERSE_WEBHOOK_SECRET",
        f"header '{header}' or ?code=",
        (h.get(header.lower()), params.get("code")),
    )
    if refused is not None:
        return refused
    organization = h.get("x-ms-dynamics-organization", "").strip().lower()
    if organization not in _organizations(services):
        return problem(
            403, "wrong-organization", f"x-ms-dynamics-organization '{organization}' is not this sync's organization"
        )
    oversized = _too_large(body)
    if oversized is not None:
        return oversized
    size_exceeded = h.get("x-ms-dynamics-msg-size-exceeded", "").lower() in ("true", "1")
    try:
        context = parse_context(body, size_exceeded=size_exceeded or None)
    except ContextError as exc:
        return problem(400, "bad-context", f"not a Dataverse RemoteExecutionContext: {exc}")
    outcome = from_dataverse(
        context, services.mapping, sync_user_id=services.known_sync_user_id(), source=Source.DATAVERSE_WEBHOOK
    )
    if isinstance(outcome, Ignored):
        return Reply(200, {"status": "ignored", "reason": outcome.reason})
    return _enqueue(services, outcome)


def marketo_webhook(services: Services, headers: Mapping[str, str], body: bytes) -> Reply:
    h = {k.lower(): v for k, v in headers.items()}
    settings = services.settings
    header = settings.marketo_webhook_header
    refused = _refused(
        settings.marketo_webhook_secret, "MARKETO_WEBHOOK_SECRET", f"header '{header}'", (h.get(header.lower()),)
    )
    if refused is not None:
        return refused
    oversized = _too_large(body)
    if oversized is not None:
        return oversized
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return problem(400, "bad-json", f"body is not JSON: {exc}")
    try:
        note = from_marketo_webhook(payload)
    except IntakeError as exc:
        return problem(400, "bad-payload", str(exc))
    changes = payload.get("changes") if isinstance(payload, dict) else None
    if isinstance(changes, list) and changes:
        pairs = [(str(c.get("field", "")), c.get("newValue")) for c in changes if isinstance(c, dict)]
        verdict = classify_marketo_change(services, str(note.marketo_id), pairs)
        if verdict is not MarketoChange.SYNC:
            return Reply(200, {"status": "ignored", "reason": verdict.value})
    elif services.store.find_by_marketo("lead", str(note.marketo_id)) is None:
        return Reply(200, {"status": "ignored", "reason": MarketoChange.UNLINKED.value})
    return _enqueue(services, note)
