"""A busy batch's held records: their marks stay, they go back on the queue for a later batch, and one that a
later batch reconciled meanwhile is dropped without a call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.circuit import ProbeSchedule
from shared.pipeline.circuit import Circuits, Outage
from shared.pipeline.pending import PendingWork, mark_key
from shared.pipeline.reconcile import Reconciler
from shared.pipeline.reconcile.carry import HELD_DONE, PERSONS, CarryRule, hold_until
from tests.pipeline.reconcile_harness import QUEUE, Stack, stack

__all__ = ["stack"]
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _reconciler(stack: Stack) -> tuple[Reconciler, PendingWork]:
    clock = lambda: NOW  # noqa: E731
    pending = PendingWork(stack.store, clock)
    circuits = Circuits(stack.store, clock, ProbeSchedule(timedelta(seconds=30), timedelta(minutes=5)))
    reconciler = Reconciler(
        stack.mapping,
        stack.store,
        stack.dataverse,
        stack.marketo_client,
        stack.queue,
        QUEUE,
        live=stack.live(),
        clock=clock,
        pending=pending,
        circuits=circuits,
    )
    return reconciler, pending


def _company_calls(stack: Stack) -> int:
    return sum(n for key, n in stack.mk.calls.items() if "compan" in key)


def test_held_records_keep_their_marks_and_come_back_scheduled_and_the_rest_makes_full_calls(stack: Stack) -> None:
    reconciler, pending = _reconciler(stack)
    ids = [stack.create("account", name=f"Account {i}") for i in range(3)]
    notes = [stack.changed("account", rid) for rid in ids]
    pending.mark(notes)

    report = reconciler.run(notes, carry=CarryRule(busy=True, now=NOW, call_size=2))

    assert [t.dynamics_id for t in report.carried] == [ids[2]]
    assert _company_calls(stack) == 1  # the two others in one (full) call
    assert set(pending.versions(notes)) == {mark_key(notes[2])}  # the held record's mark stays
    ((queue, message),) = stack.queue.sent
    (back,) = stack.queue.notes()
    assert (queue, back.dynamics_id, back.held_since, back.held_flowing) == (QUEUE, ids[2], NOW, True)
    assert message.scheduled_at == hold_until(NOW, "account")  # on the companies' own mark
    assert stack.store.get_link("account", ids[2]) is None  # not pushed yet

    # it comes back with a batch that is not busy: pushed, its mark cleared
    report = reconciler.run([back], carry=CarryRule(busy=False, now=NOW))
    assert not report.carried
    assert _company_calls(stack) == 2
    assert pending.versions(notes) == {}
    assert stack.store.get_link("account", ids[2]) is not None


def test_a_held_notification_whose_record_a_later_batch_reconciled_is_dropped_without_a_call(stack: Stack) -> None:
    reconciler, pending = _reconciler(stack)
    ids = [stack.create("account", name=f"Account {i}") for i in range(3)]
    notes = [stack.changed("account", rid) for rid in ids]
    pending.mark(notes)
    reconciler.run(notes, carry=CarryRule(busy=True, now=NOW, call_size=2))
    (back,) = stack.queue.notes()

    later = stack.changed("account", ids[2])  # a new change of the held record, reconciled first
    pending.mark([later])
    reconciler.run([later])
    calls = _company_calls(stack)

    report = reconciler.run([back], carry=CarryRule(busy=False, now=NOW))

    assert report.ignored == [(back, HELD_DONE)]
    assert _company_calls(stack) == calls
    assert report.decisions == []


def test_held_records_a_batch_held_by_an_outage_wait_on_their_marks_like_the_rest(stack: Stack) -> None:
    reconciler, pending = _reconciler(stack)
    ids = [stack.create("account", name=f"Account {i}") for i in range(3)]
    notes = [stack.changed("account", rid) for rid in ids]
    pending.mark(notes)
    assert reconciler.circuits is not None
    reconciler.circuits.failed(Outage("marketo", "Marketo unavailable (503)"))

    report = reconciler.run(notes, carry=CarryRule(busy=True, now=NOW, call_size=2))

    assert report.waiting_on == "marketo"
    assert not report.carried
    assert set(pending.versions(notes)) == {mark_key(n) for n in notes}
    assert stack.queue.sent == []


def test_records_held_by_a_batch_of_held_records_alone_go_back_saying_so(stack: Stack) -> None:
    reconciler, pending = _reconciler(stack)
    ids = [stack.create("account", name=f"Account {i}") for i in range(3)]
    notes = [stack.changed("account", rid) for rid in ids]
    pending.mark(notes)

    reconciler.run(notes, carry=CarryRule(busy=True, now=NOW, call_size=2, fresh=False))

    (back,) = stack.queue.notes()
    assert (back.dynamics_id, back.held_flowing) == (ids[2], False)  # the next batch of held records lets it go
    ((_, message),) = stack.queue.sent
    assert message.scheduled_at == hold_until(NOW, PERSONS)  # the stream may have stopped: back on the fine grid
