"""Sending notifications to a queue: Azure Service Bus in Azure, the local host's broker on this machine.

Triggers that must answer according to the enqueue (the Dataverse webhook answers 503 so Dataverse retries)
send through this port rather than an output binding, whose send happens after the function returns.

The dead-letter port (:class:`DeadLetterQueue`) lists a queue's dead-lettered messages by peeking, and settles
chosen ones: :class:`Resend` a copy to the main queue, or :class:`Remove` it. Settling locks first (a peek-lock
receive on the dead-letter sub-queue), acts, then completes: a second caller racing for the same message is not
handed it while the first holds the lock, and finds it gone once the first completed, so two replays of one
message never both send. What to settle and what a copy looks like is the pipeline's decision
(``shared.pipeline.deadletters``); this module only carries it out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from shared.errors import RetryLater, StopSync

log = logging.getLogger(__name__)


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
    record: str | None = None  # the record the message names (``notification_message``'s ``record`` property)


class QueueObserver(Protocol):
    def pending(self, queue: str, limit: int = 1000) -> list[Pending]:
        """Messages not yet processed (peeked, not received), up to ``limit``, oldest first."""

    def dead_lettered(self, queue: str) -> int: ...


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """A message in a queue's dead-letter sub-queue, as peeked: what it carries and why it ended there."""

    message_id: str
    sequence_number: int  # the dead-letter sub-queue's order; listing pages by it
    enqueued_at: datetime | None
    reason: str | None  # the broker's (MaxDeliveryCountExceeded, TTLExpiredException) or the dead-lettering code's
    description: str | None
    delivery_count: int
    body: bytes
    correlation_id: str | None = None
    subject: str | None = None
    application_properties: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resend:
    """Send ``message`` (a copy with a fresh message id) to the main queue, then complete the dead letter."""

    message: OutgoingMessage


@dataclass(frozen=True, slots=True)
class Remove:
    """Complete the dead letter without sending anything."""


Settlement = Resend | Remove


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settle call did: the dead letters it settled, and the sequence numbers it was not handed (another
    caller holds their lock, or they are gone already)."""

    done: list[DeadLettered]
    missed: list[int]


@runtime_checkable
class DeadLetterQueue(Protocol):
    def dead_letters(self, queue: str, *, after: int = 0, limit: int = 100) -> list[DeadLettered]:
        """Peeked (no lock taken), sequence numbers above ``after``, oldest first, up to ``limit``."""

    def settle(self, queue: str, plan: Mapping[int, Settlement]) -> Settled:
        """Lock each dead letter ``plan`` names by sequence number, carry out its settlement, then complete it.
        One not handed over (locked by another caller, or gone) is reported missed, never acted on."""


class QueueSender(Protocol):
    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Enqueue all or raise: RetryLater when the queue could not take them now, StopSync when it never will."""


def _service_bus_message(m: OutgoingMessage) -> ServiceBusMessage:
    return ServiceBusMessage(
        m.body,
        message_id=m.message_id,
        correlation_id=m.correlation_id,
        subject=m.subject,
        application_properties=dict(m.application_properties),  # type: ignore[arg-type]
        content_type="application/json",
    )


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

        try:
            with self.client.get_queue_sender(queue) as sender:
                if now_batch:
                    batch = sender.create_message_batch()
                    for message in now_batch:
                        try:
                            batch.add_message(_service_bus_message(message))
                        except MessageSizeExceededError:
                            sender.send_messages(batch)
                            batch = sender.create_message_batch()
                            batch.add_message(_service_bus_message(message))
                    sender.send_messages(batch)
                for message in later:
                    assert message.scheduled_at is not None
                    sender.schedule_messages(_service_bus_message(message), message.scheduled_at)
        except (ServiceBusAuthenticationError, ServiceBusAuthorizationError, ClientAuthenticationError) as exc:
            raise StopSync(
                f"Service Bus refused the sync's identity for queue '{queue}': {type(exc).__name__}"
            ) from exc
        except ServiceBusError as exc:
            raise RetryLater(f"Service Bus could not take the message now ({type(exc).__name__})") from exc


def _property(properties: Any, name: str) -> str | None:
    for key in (name.encode(), name):
        value = (properties or {}).get(key)
        if value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _entity_of(properties: Any) -> str:
    return _property(properties, "entity") or "person"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _properties(raw: Any) -> dict[str, str | int | bool]:
    """Received application properties come back with ``bytes`` keys and string values (the SDK's note)."""
    found: dict[str, str | int | bool] = {}
    for key, value in (raw or {}).items():
        found[_text(key)] = value if isinstance(value, bool | int) else _text(value)
    return found


def _body(raw: Any) -> bytes:
    """A data body is ``bytes`` or an iterable of ``bytes`` sections; anything else as its text."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode()
    if isinstance(raw, Iterable):
        parts = list(raw)
        if all(isinstance(p, bytes | bytearray) for p in parts):
            return b"".join(parts)
        return str(parts).encode()
    return str(raw).encode()


def _dead_lettered(m: Any) -> DeadLettered:
    sequence = int(m.sequence_number or 0)
    return DeadLettered(
        message_id=str(m.message_id or f"sequence-{sequence}"),
        sequence_number=sequence,
        enqueued_at=m.enqueued_time_utc,
        reason=m.dead_letter_reason,
        description=m.dead_letter_error_description,
        delivery_count=int(m.delivery_count or 0),
        body=_body(m.body),
        correlation_id=m.correlation_id,
        subject=m.subject,
        application_properties=_properties(m.application_properties),
    )


class ServiceBusObserver:
    """Backlog for the status view by peeking (no lock taken, nothing received): the Data Receiver role is
    enough, where runtime counts through the administration API would need Manage rights.

    Also the :class:`DeadLetterQueue` in Azure: listing peeks the ``DEAD_LETTER`` sub-queue; settling receives
    from it in peek-lock mode (Data Receiver), sends copies with the queue's sender (Data Sender), completes what
    it acted on and abandons what it only passed on the way (abandoning in a dead-letter sub-queue raises the
    delivery count and nothing else). Tested against a fake of the SDK's receiver and sender that follows the
    documented behaviour (``tests/shared/test_queueing_deadletters.py``), untested against a real namespace.
    """

    def __init__(self, client: ServiceBusClient, *, page: int = 250, wait: float = 5.0, scan: int = 5000) -> None:
        """``wait``: seconds a settle waits for the dead letters it wants (the first receive also opens the link);
        ``scan``: at most this many dead letters are received (and held) per settle call."""
        self._client = client
        self._page = page
        self._wait = wait
        self._scan = scan

    def _peek(self, queue: str, limit: int, *, start: int = 0, **receiver: Any) -> list[Any]:
        found: list[Any] = []
        try:
            with self._client.get_queue_receiver(queue, **receiver) as peeker:
                sequence = start  # 0: from the oldest message on
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
        return [
            Pending(_entity_of(props), m.enqueued_time_utc, _property(props, "record"))
            for m in self._peek(queue, limit)
            for props in [m.application_properties]
        ]

    def dead_lettered(self, queue: str) -> int:
        return len(self._peek(queue, 1000, sub_queue=ServiceBusSubQueue.DEAD_LETTER))

    def dead_letters(self, queue: str, *, after: int = 0, limit: int = 100) -> list[DeadLettered]:
        peeked = self._peek(queue, limit, start=after + 1, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
        return [_dead_lettered(m) for m in peeked if int(m.sequence_number or 0) > after]

    def settle(self, queue: str, plan: Mapping[int, Settlement]) -> Settled:
        wanted = dict(plan)
        done: list[DeadLettered] = []
        passed: list[Any] = []  # received on the way to the wanted ones: locked by us until the end
        if not wanted:
            return Settled(done, [])
        try:
            with (
                self._client.get_queue_receiver(
                    queue,
                    sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                    receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
                    prefetch_count=0,  # a prefetched message would be locked without anyone seeing it
                ) as receiver,
                self._client.get_queue_sender(queue) as sender,
            ):
                try:
                    received = 0
                    while wanted and received < self._scan:
                        batch = receiver.receive_messages(
                            max_message_count=min(self._page, self._scan - received), max_wait_time=self._wait
                        )
                        if not batch:
                            break  # what is still wanted is locked by another caller, or gone
                        received += len(batch)
                        for message in batch:
                            settlement = wanted.pop(int(message.sequence_number or 0), None)
                            if settlement is None:
                                passed.append(message)
                                continue
                            try:
                                if isinstance(settlement, Resend):
                                    sender.send_messages(_service_bus_message(settlement.message))
                                self._complete(receiver, message, queue)
                            except BaseException:
                                passed.append(message)  # released below, so it is not held until its lock expires
                                raise
                            done.append(_dead_lettered(message))
                finally:
                    for message in passed:
                        self._release(receiver, message)
        except (ServiceBusAuthenticationError, ServiceBusAuthorizationError, ClientAuthenticationError) as exc:
            raise StopSync(
                f"Service Bus refused the identity for the dead letters of '{queue}': {type(exc).__name__}"
            ) from exc
        except ServiceBusError as exc:
            raise RetryLater(
                f"Service Bus failed while settling the dead letters of '{queue}' after {len(done)} of "
                f"{len(plan)} ({type(exc).__name__}); the rest are still there"
            ) from exc
        return Settled(done, sorted(wanted))

    @staticmethod
    def _complete(receiver: Any, message: Any, queue: str) -> None:
        try:
            receiver.complete_message(message)
        except (MessageLockLostError, MessageAlreadySettled) as exc:
            # The copy went out; the dead letter stays listed. Replaying it again sends the same fresh id, which
            # duplicate detection drops within its window (and a second notification is harmless after it).
            log.warning(
                "dead letter %s of %s was sent but not completed (%s)", message.message_id, queue, type(exc).__name__
            )

    @staticmethod
    def _release(receiver: Any, message: Any) -> None:
        try:
            receiver.abandon_message(message)
        except (ServiceBusError, MessageAlreadySettled) as exc:  # its lock expires on its own
            log.info("could not release dead letter %s: %s", message.message_id, type(exc).__name__)
