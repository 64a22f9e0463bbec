"""The local broker keeps the Service Bus semantics the pipeline relies on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from local.broker import LocalBroker, LocalQueue
from shared.queueing import OutgoingMessage


def msg(mid: str, **kw: object) -> OutgoingMessage:
    return OutgoingMessage(body=mid.encode(), message_id=mid, **kw)  # type: ignore[arg-type]


def test_messages_are_delivered_in_order_and_gone_once_completed() -> None:
    q = LocalQueue("q")
    q.send([msg("a"), msg("b"), msg("c")])
    got = q.receive(2, timeout=0.1)
    assert [d.message.message_id for d in got] == ["a", "b"]
    q.complete(got)
    rest = q.receive(10, timeout=0.1)
    assert [d.message.message_id for d in rest] == ["c"]
    q.complete(rest)
    assert q.idle()


def test_a_duplicate_message_id_within_the_window_is_dropped() -> None:
    q = LocalQueue("q")
    q.send([msg("a"), msg("a")])
    assert q.duplicates_dropped == 1
    assert len(q.peek()) == 1


def test_an_abandoned_message_is_redelivered_with_a_higher_delivery_count() -> None:
    q = LocalQueue("q")
    q.send([msg("a")])
    first = q.receive(1, timeout=0.1)
    q.abandon(first, reason="boom")
    second = q.receive(1, timeout=0.1)
    assert second[0].delivery_count == 2


def test_at_the_max_delivery_count_a_message_is_dead_lettered_with_the_reason() -> None:
    q = LocalQueue("q", max_delivery_count=3)
    q.send([msg("a")])
    for _ in range(3):
        q.abandon(q.receive(1, timeout=0.1), reason="RetryLater: Marketo 606")
    assert q.receive(1, timeout=0) == []
    (dead,) = q.dead_letters
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert "Marketo 606" in dead.description
    assert dead.delivery_count == 3


class Clock:
    """Monotonic seconds and wall time that move together, only when the test says so."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.start = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds - 1000.0)


def test_a_scheduled_message_waits_for_its_time() -> None:
    clock = Clock()
    q = LocalQueue("q", clock=clock, wall=clock.wall)
    q.send([msg("later", scheduled_at=clock.wall() + timedelta(seconds=30))])
    assert q.receive(1, timeout=0) == []
    clock.seconds += 29.9
    assert q.receive(1, timeout=0) == []
    assert len(q.peek()) == 1
    clock.seconds += 0.1
    got = q.receive(1, timeout=0)
    assert [d.message.message_id for d in got] == ["later"]


def test_the_broker_addresses_queues_by_name() -> None:
    broker = LocalBroker()
    broker.send("one", [msg("a")])
    assert set(broker.queues()) == {"one"}
    assert broker.queue("one").peek()[0].message.message_id == "a"


def test_a_receive_waiting_on_a_clock_that_stands_still_returns_when_stopped_and_woken() -> None:
    """A host stopping over a test's frozen clock: its pumps' waits would never time out, so the stop ends them."""
    queue = LocalQueue("q", clock=lambda: 0.0)
    stop = threading.Event()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(queue.receive_batch(10, 5, 1.0, timeout=0.2, stop=stop)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # 0.2 s never pass on this clock
    stop.set()
    queue.wake()
    waiter.join(5)
    assert not waiter.is_alive()
    assert got == [[]]


def test_scheduled_and_ready_messages_keep_their_order_and_the_window_forgets_old_ids() -> None:
    clock = Clock()
    q = LocalQueue("q", clock=clock, wall=clock.wall, duplicate_window=timedelta(seconds=60))
    q.send([msg("soon", scheduled_at=clock.wall() + timedelta(seconds=5)), msg("now")])
    clock.seconds += 5
    q.send([msg("after")])  # sent once "soon" was due: "soon" is handed out first
    assert [d.message.message_id for d in q.receive(10, timeout=0)] == ["now", "soon", "after"]
    clock.seconds += 61
    q.send([msg("now")])  # out of the window: a new message, not a duplicate
    assert q.duplicates_dropped == 0
    assert [d.message.message_id for d in q.receive(10, timeout=0)] == ["now"]


def test_a_batch_receive_costs_the_same_however_many_messages_wait() -> None:
    """100,000 messages waiting: taking batches of 900 never walks the whole queue (the pipeline bench's sizes)."""
    clock = Clock()
    q = LocalQueue("q", clock=clock, wall=clock.wall)
    q.send([msg(f"m{i}") for i in range(100_000)])
    q.send([msg(f"late{i}", scheduled_at=clock.wall() + timedelta(hours=1)) for i in range(1000)])
    taken = 0
    while batch := q.receive_batch(900, 1, 2.0, timeout=0):
        q.complete(batch)
        taken += len(batch)
    assert taken == 100_000
    assert len(q.peek()) == 1000
    assert not q.idle()
