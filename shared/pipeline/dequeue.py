"""Reading a batch off the queue: our notifications, and Dataverse contexts posted there directly.

A message we cannot read is never retried (it would fail the same way each time) and never dropped silently:
it becomes a sync error that names the message id and the problem, and the rest of the batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.core.mapping import SyncMapping
from shared.dataverse.context import ContextError, parse_context
from shared.pipeline.intake import Ignored, from_dataverse
from shared.pipeline.notification import (
    Notification,
    NotificationError,
    Source,
    looks_like_dataverse_context,
    parse_notification,
)
from shared.pipeline.sync_errors import unreadable_message
from shared.store.base import StateStore
from shared.store.model import SyncErrorRecord


@dataclass
class Batch:
    notifications: list[Notification] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[SyncErrorRecord] = field(default_factory=list)


def read_batch(
    messages: Sequence[tuple[str | None, bytes]],
    *,
    mapping: SyncMapping,
    sync_user_id: Callable[[], str | None],
    store: StateStore,
) -> Batch:
    """``sync_user_id`` is asked only when a Dataverse context is in the batch (None: unknown, no echo filter);
    unreadable messages are recorded in ``store``'s sync errors."""
    batch = Batch()
    for message_id, body in messages:
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        try:
            if looks_like_dataverse_context(data):
                outcome = from_dataverse(
                    parse_context(body),
                    mapping,
                    sync_user_id=sync_user_id(),
                    source=Source.DATAVERSE_QUEUE,
                )
                if isinstance(outcome, Ignored):
                    batch.ignored.append((message_id or "", outcome.reason))
                    continue
                batch.notifications.append(outcome)
            else:
                batch.notifications.append(parse_notification(body))
        except (NotificationError, ContextError) as exc:
            error = unreadable_message(message_id, str(exc), body, at=datetime.now(UTC))
            store.add_error(error)
            batch.rejected.append(error)
    return batch
