"""The Service Bus dead-letter adapter, against a small fake of the SDK's receiver and sender that follows the
documented behaviour: a peek shows every message (locked ones too) from a sequence number on and locks nothing;
a peek-lock receive hands over only unlocked messages and locks them; complete needs the lock; abandon releases
it and raises the delivery count; received application properties come back with ``bytes`` keys and values.
There is no Service Bus namespace here: this is what the adapter is tested against."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError, ServiceBusAuthorizationError, ServiceBusConnectionError

from shared.errors import RetryLater, StopSync
from shared.queueing import OutgoingMessage, Remove, Resend, ServiceBusObserver


@dataclass
class Received:
    """A ``ServiceBusReceivedMessage`` as the adapter reads it."""

    message_id: str
    sequence_number: int
    body: Any
    enqueued_time_utc: datetime = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    dead_letter_reason: str | None = "MaxDeliveryCountExceeded"
    dead_letter_error_description: str | None = "Message could not be consumed after 10 delivery attempts."
    delivery_count: int = 10
    correlation_id: str | None = None
    subject: str | None = "lead"
    application_properties: dict[bytes, Any] | None = field(default_factory=lambda: {b"entity": b"lead"})
    locked_by: object | None = None


class Namespace:
    def __init__(self, *dead: Received) -> None:
        self.dead = {d.sequence_number: d for d in dead}
        self.sent: list[ServiceBusMessage] = []
        self.receivers: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.fail_receive: Exception | None = None
        self.before_send: threading.Event | None = None  # a send waits for it (to hold a lock across a race)
        self.sending = threading.Event()

    # ServiceBusClient
    @contextmanager
    def get_queue_receiver(self, queue: str, **kw: Any) -> Iterator[Receiver]:
        assert kw.get("sub_queue") == ServiceBusSubQueue.DEAD_LETTER
        self.receivers.append(kw)
        yield Receiver(self)

    @contextmanager
    def get_queue_sender(self, queue: str) -> Iterator[Sender]:
        yield Sender(self)


class Receiver:
    def __init__(self, ns: Namespace) -> None:
        self.ns = ns

    def peek_messages(self, max_message_count: int = 1, *, sequence_number: int = 0) -> list[Received]:
        with self.ns.lock:
            start = sequence_number or 1
            found = sorted((d for s, d in self.ns.dead.items() if s >= start), key=lambda d: d.sequence_number)
            return found[:max_message_count]

    def receive_messages(self, max_message_count: int = 1, max_wait_time: float | None = None) -> list[Received]:
        if self.ns.fail_receive is not None:
            raise self.ns.fail_receive
        with self.ns.lock:
            free = sorted((d for d in self.ns.dead.values() if d.locked_by is None), key=lambda d: d.sequence_number)
            taken = free[:max_message_count]
            for d in taken:
                d.locked_by = self
            return taken

    def complete_message(self, message: Received) -> None:
        with self.ns.lock:
            if self.ns.dead.get(message.sequence_number) is not message or message.locked_by is not self:
                raise MessageLockLostError()
            del self.ns.dead[message.sequence_number]

    def abandon_message(self, message: Received) -> None:
        with self.ns.lock:
            if message.locked_by is not self:
                raise MessageLockLostError()
            message.locked_by = None
            message.delivery_count += 1


class Sender:
    def __init__(self, ns: Namespace) -> None:
        self.ns = ns

    def send_messages(self, message: ServiceBusMessage) -> None:
        self.ns.sending.set()
        if self.ns.before_send is not None:
            assert self.ns.before_send.wait(5)
        self.ns.sent.append(message)


def observer(ns: Namespace, **kw: Any) -> ServiceBusObserver:
    return ServiceBusObserver(cast(ServiceBusClient, ns), page=2, wait=0.01, **kw)


def dead(seq: int, mid: str | None = None, body: Any = b'{"v":1}') -> Received:
    return Received(mid or f"m{seq}", seq, body)


def copy(mid: str) -> Resend:
    return Resend(OutgoingMessage(b'{"v":1}', mid, application_properties={"entity": "lead", "replayed_from": "x"}))


def test_listing_peeks_the_dead_letter_sub_queue_pages_by_sequence_number_and_decodes_what_it_received() -> None:
    ns = Namespace(dead(3, body=[b'{"v":', b"1}"]), dead(5), dead(8))
    listed = observer(ns).dead_letters("sync-changes", limit=2)
    assert [(d.message_id, d.sequence_number) for d in listed] == [("m3", 3), ("m5", 5)]
    first = listed[0]
    assert first.body == b'{"v":1}'  # a data body in sections, joined
    assert first.application_properties == {"entity": "lead"}
    assert (first.reason, first.delivery_count) == ("MaxDeliveryCountExceeded", 10)
    assert first.enqueued_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert [d.message_id for d in observer(ns).dead_letters("sync-changes", after=5)] == ["m8"]
    assert all(d.locked_by is None for d in ns.dead.values())  # a peek locks nothing


def test_a_replay_sends_the_copy_then_completes_the_dead_letter_and_releases_what_it_passed() -> None:
    ns = Namespace(dead(1), dead(2), dead(3))
    settled = observer(ns).settle("sync-changes", {2: copy("replay-2")})
    assert [d.message_id for d in settled.done] == ["m2"]
    assert settled.missed == []
    (sent,) = ns.sent
    assert sent.message_id == "replay-2"
    assert b"".join(sent.body) == b'{"v":1}'
    assert sent.application_properties == {"entity": "lead", "replayed_from": "x"}
    assert sorted(ns.dead) == [1, 3]
    assert ns.dead[1].locked_by is None  # received on the way, abandoned at the end
    assert ns.dead[1].delivery_count == 11
    assert ns.dead[3].locked_by is None  # never received: the wanted one was found first
    (receiver,) = ns.receivers
    assert receiver["receive_mode"] == ServiceBusReceiveMode.PEEK_LOCK
    assert receiver["prefetch_count"] == 0


def test_a_discard_completes_without_sending() -> None:
    ns = Namespace(dead(1))
    settled = observer(ns).settle("sync-changes", {1: Remove()})
    assert [d.message_id for d in settled.done] == ["m1"]
    assert ns.sent == []
    assert ns.dead == {}


def test_two_concurrent_replays_of_one_dead_letter_send_once() -> None:
    ns = Namespace(dead(1))
    ns.before_send = threading.Event()
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(observer(ns).settle("q", {1: copy("replay-1")})))
    first.start()
    assert ns.sending.wait(5)  # the first call holds the lock and is sending
    second = observer(ns).settle("q", {1: copy("replay-1")})
    ns.before_send.set()
    first.join(5)
    assert (second.done, second.missed) == ([], [1])
    assert [d.message_id for d in results[0].done] == ["m1"]
    assert [m.message_id for m in ns.sent] == ["replay-1"]
    assert ns.dead == {}


def test_a_lock_lost_after_the_send_counts_the_replay_and_leaves_the_dead_letter_listed() -> None:
    ns = Namespace(dead(1))

    class Expiring(Receiver):
        def complete_message(self, message: Received) -> None:
            raise MessageLockLostError()

    @contextmanager
    def receiver(queue: str, **kw: Any) -> Iterator[Receiver]:
        yield Expiring(ns)

    ns.get_queue_receiver = receiver  # type: ignore[method-assign]
    settled = observer(ns).settle("q", {1: copy("replay-1")})
    assert [d.message_id for d in settled.done] == ["m1"]
    assert [m.message_id for m in ns.sent] == ["replay-1"]
    assert list(ns.dead) == [1]


def test_service_bus_failures_become_retry_later_and_a_refused_identity_stop_sync() -> None:
    ns = Namespace(dead(1))
    ns.fail_receive = ServiceBusConnectionError(message="link detached")
    with pytest.raises(RetryLater, match="the rest are still there"):
        observer(ns).settle("q", {1: Remove()})
    ns.fail_receive = ServiceBusAuthorizationError(message="no Data Receiver role")
    with pytest.raises(StopSync):
        observer(ns).settle("q", {1: Remove()})
    assert list(ns.dead) == [1]


def test_a_settle_receives_at_most_its_scan_limit() -> None:
    ns = Namespace(*(dead(n) for n in range(1, 11)))
    settled = observer(ns, scan=4).settle("q", {10: Remove()})
    assert (settled.done, settled.missed) == ([], [10])
    assert all(d.locked_by is None for d in ns.dead.values())


def test_a_failed_send_leaves_the_dead_letter_there_and_unlocked() -> None:
    ns = Namespace(dead(1))

    class Down(Sender):
        def send_messages(self, message: ServiceBusMessage) -> None:
            raise ServiceBusConnectionError(message="namespace unreachable")

    @contextmanager
    def sender(queue: str) -> Iterator[Sender]:
        yield Down(ns)

    ns.get_queue_sender = sender  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        observer(ns).settle("q", {1: copy("replay-1")})
    assert list(ns.dead) == [1]
    assert ns.dead[1].locked_by is None
