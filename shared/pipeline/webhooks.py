"""The two doors changes come in by: the Dataverse webhook and the Marketo "Call Webhook" step.

Each returns :class:`Queued` only once the notification is on the queue, or :class:`Ignored` with the reason
when the call needs no sync; otherwise it refuses and says exactly what is wrong: :class:`Unauthenticated` for a
missing or wrong secret (checked first, in constant time), :class:`Forbidden` for another organization,
:class:`TooLarge` for an oversized body, :class:`InvalidRequest` for a body we cannot use, and
:class:`RetryLater` when the queue could not take it (Dataverse then retries once; its catch-up timer covers the
rest). A refusal never repeats what the caller sent.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from shared.core.json_text import JsonTextError, load_json
from shared.core.mapping import SyncMapping
from shared.dataverse.context import ContextError, parse_context
from shared.errors import Forbidden, InvalidRequest, RetryLater, SyncError, TooLarge, Unauthenticated
from shared.pipeline.echo import MarketoChange, classify_marketo_change
from shared.pipeline.intake import Ignored, from_dataverse, from_marketo_webhook, marketo_changes
from shared.pipeline.notification import Notification, Source
from shared.pipeline.ports import ChangesQueue
from shared.settings import Settings
from shared.store.base import StateStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Dataverse caps contexts at 256 KB; anything far larger is not from Dataverse
QUEUE_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class WebhookCall:
    """What arrived: the headers (any case), the query string and the raw body."""

    headers: Mapping[str, str]
    params: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class Queued:
    """The notification is on the changes queue."""

    message_id: str


def _secret_matches(expected: SecretStr, *candidates: str | None) -> bool:
    secret = expected.get_secret_value()
    if not secret:
        return False
    return any(c is not None and hmac.compare_digest(c.encode(), secret.encode()) for c in candidates)


def _organizations(settings: Settings) -> set[str]:
    configured = settings.dataverse_organization.strip().lower()
    if configured:
        return {configured}
    host = (urlparse(settings.dataverse_url).hostname or "").lower()
    return {host, host.split(".")[0]} - {""}


def _enqueue(queue: ChangesQueue, note: Notification) -> Queued:
    """The changes queue marks the record pending in the store before it sends (``MarkingQueue``): once this
    returns, the sweep finds the change even if the message is lost."""
    try:
        (message,) = queue.send([note])
    except SyncError as exc:
        log.warning("could not enqueue %s: %s", note.message_id, exc)
        raise RetryLater(
            "the change could not be queued; retry", code="queue-unavailable", retry_after=QUEUE_RETRY_SECONDS
        ) from exc
    return Queued(message.message_id)


def _authenticate(secret: SecretStr, setting: str, where: str, candidates: tuple[str | None, ...]) -> None:
    """Unless one of the candidates is the configured secret; with no secret configured, everyone is refused."""
    if not secret.get_secret_value():
        raise Unauthenticated(f"{setting} is not set: webhook calls are refused", code="not-configured")
    if not _secret_matches(secret, *candidates):
        raise Unauthenticated(f"missing or wrong secret ({where})", code="unauthorized")


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(
            f"body of {len(body)} bytes is over the {MAX_BODY_BYTES} byte limit", code="too-large", field="body"
        )


def dataverse_webhook(
    call: WebhookCall,
    *,
    settings: Settings,
    mapping: SyncMapping,
    sync_user_id: Callable[[], str | None],
    queue: ChangesQueue,
) -> Queued | Ignored:
    """``sync_user_id`` is asked only once the caller is authenticated (None: unknown, the echo filter is off)."""
    header = settings.dataverse_webhook_header
    _authenticate(
        settings.dataverse_webhook_secret,
        "DATAVERSE_WEBHOOK_SECRET",
        f"header '{header}' or ?code=",
        (call.header(header), call.params.get("code")),
    )
    organization = (call.header("x-ms-dynamics-organization") or "").strip().lower()
    if organization not in _organizations(settings):
        raise Forbidden(
            "the x-ms-dynamics-organization header does not name this sync's organization", code="wrong-organization"
        )
    _check_size(call.body)
    size_exceeded = (call.header("x-ms-dynamics-msg-size-exceeded") or "").lower() in ("true", "1")
    try:
        context = parse_context(call.body, size_exceeded=size_exceeded or None)
    except ContextError as exc:
        log.warning("Dataverse webhook body refused: %s", exc)  # the detail may quote the body: logs only
        raise InvalidRequest(
            "the body is not a Dataverse RemoteExecutionContext (the function logs say where)",
            code="bad-context",
            field="body",
        ) from None
    outcome = from_dataverse(context, mapping, sync_user_id=sync_user_id(), source=Source.DATAVERSE_WEBHOOK)
    if isinstance(outcome, Ignored):
        return outcome
    return _enqueue(queue, outcome)


def marketo_webhook(
    call: WebhookCall, *, settings: Settings, mapping: SyncMapping, store: StateStore, queue: ChangesQueue
) -> Queued | Ignored:
    header = settings.marketo_webhook_header
    _authenticate(
        settings.marketo_webhook_secret, "MARKETO_WEBHOOK_SECRET", f"header '{header}'", (call.header(header),)
    )
    _check_size(call.body)
    payload = _json(call.body)
    note = from_marketo_webhook(payload)  # checks the whole shape, "changes" included
    pairs = marketo_changes(payload)
    if pairs:
        verdict = classify_marketo_change(store, mapping, str(note.marketo_id), pairs)
        if verdict is not MarketoChange.SYNC:
            return Ignored(verdict.value)
    elif store.find_by_marketo("lead", str(note.marketo_id)) is None:
        return Ignored(MarketoChange.UNLINKED.value)
    return _enqueue(queue, note)


def _json(body: bytes) -> Any:
    try:
        return load_json(body, bom=True)
    except JsonTextError as exc:
        raise InvalidRequest(str(exc), code="bad-json", field="body") from None
