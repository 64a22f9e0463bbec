"""The local broker's dead-letter sub-queue behaves as the port says Service Bus does: listed by peeking (locked
ones too), settled only under a lock, a copy sent under its own id, the dead letter gone once completed."""

from __future__ import annotations

from local.broker import LocalBroker
from shared.queueing import OutgoingMessage, Remove, Resend


def msg(mid: str, body: bytes = b"{}") -> OutgoingMessage:
    return OutgoingMessage(body=body, message_id=mid, application_properties={"entity": "lead"})


def dead_lettered(broker: LocalBroker, *ids: str) -> None:
    q = broker.queue("q")
    q.send([msg(i) for i in ids])
    for _ in range(q.max_delivery_count):
        q.abandon(q.receive(len(ids), timeout=0.1), reason="RuntimeError: injected")


def test_dead_letters_are_listed_oldest_first_with_reason_delivery_count_and_paging() -> None:
    broker = LocalBroker(max_delivery_count=2)
    dead_lettered(broker, "a", "b", "c")
    first = broker.dead_letters("q", limit=2)
    assert [d.message_id for d in first] == ["a", "b"]
    assert first[0].reason == "MaxDeliveryCountExceeded"
    assert "injected" in (first[0].description or "")
    assert first[0].delivery_count == 2
    assert first[0].enqueued_at is not None
    assert first[0].application_properties == {"entity": "lead"}
    rest = broker.dead_letters("q", after=first[-1].sequence_number)
    assert [d.message_id for d in rest] == ["c"]


def test_a_replayed_dead_letter_is_back_on_the_queue_under_its_new_id_and_gone_from_the_dead_letters() -> None:
    broker = LocalBroker(max_delivery_count=1)
    dead_lettered(broker, "a")
    (dead,) = broker.dead_letters("q")
    settled = broker.settle("q", {dead.sequence_number: Resend(msg("a-replayed"))})
    assert [d.message_id for d in settled.done] == ["a"]
    assert settled.missed == []
    assert broker.dead_letters("q") == []
    assert [d.message.message_id for d in broker.queue("q").receive(5, timeout=0.1)] == ["a-replayed"]


def test_a_dead_letter_locked_by_another_call_is_missed_and_nothing_is_sent() -> None:
    broker = LocalBroker(max_delivery_count=1)
    dead_lettered(broker, "a")
    (dead,) = broker.dead_letters("q")
    q = broker.queue("q")
    assert q.lock_dead_letters({dead.sequence_number})  # the first caller holds it
    settled = broker.settle("q", {dead.sequence_number: Resend(msg("a-replayed"))})
    assert (settled.done, settled.missed) == ([], [dead.sequence_number])
    assert q.peek() == []
    assert len(broker.dead_letters("q")) == 1  # a peek still shows it, as Service Bus shows locked messages
    q.release_dead_letters({dead.sequence_number})
    assert broker.settle("q", {dead.sequence_number: Resend(msg("a-replayed"))}).missed == []


def test_a_discarded_dead_letter_is_gone_and_nothing_is_sent() -> None:
    broker = LocalBroker(max_delivery_count=1)
    dead_lettered(broker, "a", "b")
    a, _b = broker.dead_letters("q")
    settled = broker.settle("q", {a.sequence_number: Remove()})
    assert [d.message_id for d in settled.done] == ["a"]
    assert [d.message_id for d in broker.dead_letters("q")] == ["b"]
    assert broker.queue("q").peek() == []


def test_settling_a_dead_letter_twice_acts_once() -> None:
    broker = LocalBroker(max_delivery_count=1)
    dead_lettered(broker, "a")
    (dead,) = broker.dead_letters("q")
    plan = {dead.sequence_number: Resend(msg("a-replayed"))}
    assert len(broker.settle("q", plan).done) == 1
    again = broker.settle("q", plan)
    assert (again.done, again.missed) == ([], [dead.sequence_number])
    assert len(broker.queue("q").peek()) == 1
