"""The pending sweep, as rules over a real store: what it sends while every circuit is closed, while a probe is
due, and while one waits; and that a sent mark is not sent again within the grace period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.circuit import ProbeSchedule
from shared.core.pending import first_version
from shared.pipeline.circuit import MARKETO, Circuits, Outage
from shared.pipeline.notification import Kind, Notification, Source, parse_notification
from shared.pipeline.pending import MarkingQueue, PendingWork
from shared.pipeline.sweep import sweep
from shared.queueing import OutgoingMessage
from shared.store.base import StateStore
from shared.store.sqlite import sqlite_store

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Sent:
    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.messages.extend(messages)


@pytest.fixture
def store() -> StateStore:
    return sqlite_store()


def _setup(store: StateStore, n: int) -> tuple[Clock, Sent, PendingWork, Circuits, MarkingQueue]:
    clock = Clock()
    sent = Sent()
    pending = PendingWork(store, clock, GRACE)
    circuits = Circuits(store, clock, ProbeSchedule(timedelta(seconds=30), timedelta(minutes=15)))
    queue = MarkingQueue(sent, "sync-changes", pending)
    queue.send(
        Notification(source=Source.DATAVERSE_WEBHOOK, entity="contact", dynamics_id=f"c{i}", dedupe_key=f"e{i}")
        for i in range(n)
    )
    sent.messages.clear()
    return clock, sent, pending, circuits, queue


def test_every_intake_marks_before_it_sends_and_a_delete_sticks(store: StateStore) -> None:
    _, sent, pending, _, queue = _setup(store, 0)
    note = Notification(source=Source.DATAVERSE_WEBHOOK, entity="lead", dynamics_id="L1", kind=Kind.DELETE)
    queue.send([note])
    queue.send([note.model_copy(update={"kind": Kind.UPSERT, "dedupe_key": "late"})])
    (mark,) = pending.all()
    assert (mark.key.partition, mark.key.record_id, mark.version, mark.deleted) == (
        "lead",
        "l1",
        first_version(T0) + 1,
        True,
    )
    assert len(sent.messages) == 2


def test_nothing_is_sent_again_within_the_grace_period(store: StateStore) -> None:
    clock, _, pending, circuits, queue = _setup(store, 3)
    clock.now = T0 + GRACE - timedelta(seconds=1)
    report = sweep(pending, circuits, queue, now=clock.now, page=100, probe=5)
    assert (report.pending, report.due, report.sent) == (3, 0, 0)


def test_due_marks_are_sent_again_in_pages_with_fresh_message_ids(store: StateStore) -> None:
    clock, sent, pending, circuits, queue = _setup(store, 7)
    clock.now = T0 + GRACE
    first = sweep(pending, circuits, queue, now=clock.now, page=5, probe=2)
    second = sweep(pending, circuits, queue, now=clock.now, page=5, probe=2)
    assert (first.due, first.sent, second.due, second.sent) == (7, 5, 2, 2)
    ids = {parse_notification(m.body).dynamics_id for m in sent.messages}
    assert ids == {f"c{i}" for i in range(7)}
    assert len({m.message_id for m in sent.messages}) == 7  # past Service Bus duplicate detection
    third = sweep(pending, circuits, queue, now=clock.now, page=5, probe=2)
    assert third.sent == 0  # sent: due again only a grace period later
    clock.now += GRACE
    assert sweep(pending, circuits, queue, now=clock.now, page=100, probe=2).sent == 7


def test_while_a_circuit_waits_nothing_is_sent_and_when_its_probe_is_due_only_the_probe(store: StateStore) -> None:
    clock, _, pending, circuits, queue = _setup(store, 10)
    clock.now = T0 + GRACE
    opened = circuits.failed(Outage(MARKETO, "503"))
    assert opened.next_probe_at == clock.now + timedelta(seconds=30)
    waiting = sweep(pending, circuits, queue, now=clock.now, page=100, probe=3)
    assert (waiting.sent, waiting.waiting) == (0, (MARKETO,))
    clock.now += timedelta(seconds=30)
    probing = sweep(pending, circuits, queue, now=clock.now, page=100, probe=3)
    assert (probing.sent, probing.probing) == (3, (MARKETO,))
    circuits.succeeded(MARKETO)
    drained = sweep(pending, circuits, queue, now=clock.now, page=100, probe=3)
    assert drained.sent == 7


def test_a_clear_removes_only_marks_still_at_the_version_read(store: StateStore) -> None:
    _, _, pending, _, queue = _setup(store, 2)
    notes = [Notification(source=Source.DATAVERSE_WEBHOOK, entity="contact", dynamics_id=f"c{i}") for i in range(2)]
    read = pending.versions(notes)
    queue.send([notes[1].model_copy(update={"dedupe_key": "meanwhile"})])  # a change while the batch ran
    assert pending.clear(read) == 1
    (left,) = pending.all()
    assert (left.key.record_id, left.version) == ("c1", first_version(T0) + 1)
