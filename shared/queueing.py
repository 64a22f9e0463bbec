"""Sending notifications to a queue: Azure Service Bus in Azure, the local host's broker on this machine.

Triggers that must answer according to the enqueue (the Dataverse webhook answers 503 so Dataverse retries)
send through this port rather than an output binding, whose send happens after the function returns.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from shared.errors import RetryLater, StopSync


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    body: bytes
    message_id: str
    correlation_id: str | None = None
    subject: str | None = None
    application_properties: dict[str, str | int | bool] = field(default_factory=dict)
    scheduled_at: datetime | None = None  # deliver no earlier than this (retries with backoff, paused entities)


@dataclass(frozen=True, slots=True)
class Pending:
    """A message waiting on the queue, as the status view counts them."""

    entity: str
    enqueued_at: datetime


class QueueObserver(Protocol):
    def pending(self, queue: str, limit: int = 1000) -> list[Pending]:
        """Messages not yet processed (peeked, not received), up to ``limit``, oldest first."""

    def dead_lettered(self, queue: str) -> int: ...


class QueueSender(Protocol):
    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Enqueue all or raise: RetryLater when the queue could not take them now, StopSync when it never will."""


class ServiceBusQueueSender:
    """azure-servicebus with an identity-based connection (managed identity in Azure); one client per process."""

    def __init__(self, fully_qualified_namespace: str, credential: Any) -> None:
        self.client = ServiceBusClient(fully_qualified_namespace, credential=credential)
        self._lock = threading.Lock()

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        now_batch = [m for m in messages if m.scheduled_at is None]
        later = [m for m in messages if m.scheduled_at is not None]

        def build(m: OutgoingMessage) -> ServiceBusMessage:
            return ServiceBusMessage(
                m.body,
                message_id=m.message_id,
                correlation_id=m.correlation_id,
                subject=m.subject,
                application_properties=dict(m.application_properties),  # type: ignore[arg-type]
                content_type="application/json",
            )

        try:
            with self.client.get_queue_sender(queue) as sender:
                if now_batch:
                    batch = sender.create_message_batch()
                    for message in now_batch:
                        try:
                            batch.add_message(build(message))
                        except MessageSizeExceededError:
                            sender.send_messages(batch)
                            batch = sender.create_message_batch()
                            batch.add_message(build(message))
                    sender.send_messages(batch)
                for message in later:
                    assert message.scheduled_at is not None
                    sender.schedule_messages(build(message), message.scheduled_at)
        except (ServiceBusAuthenticationError, ServiceBusAuthorizationError, ClientAuthenticationError) as exc:
            raise StopSync(
                f"Service Bus refused the sync's identity for queue '{queue}': {type(exc).__name__}"
            ) from exc
        except ServiceBusError as exc:
            raise RetryLater(f"Service Bus could not take the message now ({type(exc).__name__})") from exc


def _entity_of(properties: Any) -> str:
    for key in (b"entity", "entity"):
        value = (properties or {}).get(key)
        if value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return "person"


class ServiceBusObserver:
    """Backlog for the status view by peeking (no lock taken, nothing received): the Data Receiver role is
    enough, where runtime counts through the administration API would need Manage rights."""

    def __init__(self, client: ServiceBusClient, *, page: int = 250) -> None:
        self._client = client
        self._page = page

    def _peek(self, queue: str, limit: int, **receiver: Any) -> list[Any]:
        found: list[Any] = []
        try:
            with self._client.get_queue_receiver(queue, **receiver) as peeker:
                sequence = 0  # from the oldest message on
                while len(found) < limit:
                    batch = peeker.peek_messages(
                        max_message_count=min(self._page, limit - len(found)), sequence_number=sequence
                    )
                    if not batch:
                        break
                    found.extend(batch)
                    sequence = (batch[-1].sequence_number or sequence) + 1
        except ServiceBusError as exc:
            raise RetryLater(f"could not peek queue '{queue}' ({type(exc).__name__})") from exc
        return found

    def pending(self, queue: str, limit: int = 1000) -> list[Pending]:
        return [Pending(_entity_of(m.application_properties), m.enqueued_time_utc) for m in self._peek(queue, limit)]

    def dead_lettered(self, queue: str) -> int:
        return len(self._peek(queue, 1000, sub_queue=ServiceBusSubQueue.DEAD_LETTER))
