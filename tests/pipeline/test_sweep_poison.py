"""A record that fails every time for a reason that is not an outage: the sweep re-sends its mark at most
``max_attempts`` times, then records a ``pending-gave-up`` sync error and parks the mark until the record changes
again or the error is retried. Outages (a circuit's probe, the re-send that drains an outage's work, a re-send
that ran into one) and pauses never count. Rules over a real store, on an injected clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shared.core.circuit import ProbeSchedule
from shared.core.mapping import SyncMapping, load_mapping
from shared.core.pending import MarkKey, PendingMark, first_version
from shared.core.record_links import RecordLinks
from shared.errors import Conflict
from shared.pipeline import admin, error_view
from shared.pipeline.circuit import MARKETO, Circuits, Outage
from shared.pipeline.notification import Notification, Source, parse_notification
from shared.pipeline.pending import MarkingQueue, PendingWork
from shared.pipeline.sweep import SweepReport, sweep
from shared.store.base import PENDING, StateStore
from shared.store.model import TO_DYNAMICS, TO_MARKETO, ErrorStatus, SyncErrorRecord
from shared.store.pending import PendingMarks
from shared.store.sqlite import sqlite_store
from tests.pipeline.test_sweep import GRACE, T0, Clock, Sent

CAP = 3
LINKS = RecordLinks("https://contoso.crm.dynamics.com")
MAPPING = Path(__file__).resolve().parents[2] / "config" / "mapping.json"


class World:
    """A store, a clock, the changes queue and the circuits, as the sweep timer sees them."""

    def __init__(self) -> None:
        self.store = sqlite_store()
        self.clock = Clock()
        self.sent = Sent()
        self.pending = PendingWork(self.store, self.clock, GRACE)
        self.circuits = Circuits(self.store, self.clock, ProbeSchedule(timedelta(seconds=30), timedelta(minutes=15)))
        self.queue = MarkingQueue(self.sent, "sync-changes", self.pending)

    def change(self, note: Notification) -> None:
        self.queue.send([note])

    def sweep_at(self, now: datetime) -> SweepReport:
        self.clock.now = now
        return sweep(self.pending, self.circuits, self.queue, now=now, page=100, probe=5, max_attempts=CAP)

    def run_lost(self, times: int) -> list[SweepReport]:
        """``times`` sweeps a grace period apart, every re-sent message failing without touching the mark."""
        return [self.sweep_at(self.clock.now + GRACE) for _ in range(times)]

    def mark(self, key: MarkKey) -> PendingMark:
        return self.store.pending.get_many([key])[key]

    def errors(self) -> list[SyncErrorRecord]:
        return self.store.list_errors(limit=100)


CONTACT = Notification(source=Source.DATAVERSE_WEBHOOK, entity="contact", dynamics_id="C1", dedupe_key="e1")
CONTACT_KEY = MarkKey("contact", "c1")


@pytest.fixture
def world() -> World:
    w = World()
    w.change(CONTACT)
    return w


def test_after_max_attempts_re_sends_the_sweep_gives_up_with_a_sync_error_and_parks_the_mark(world: World) -> None:
    world.pending.failed([CONTACT], "KeyError: 'jobtitle'")  # what the reconcile function keeps of a failed batch
    reports = world.run_lost(CAP)
    assert [r.sent for r in reports] == [1] * CAP
    assert world.mark(CONTACT_KEY).resends == CAP
    assert world.errors() == []
    given_up = world.sweep_at(world.clock.now + GRACE)
    assert (given_up.sent, given_up.gave_up, given_up.parked) == (0, 1, 1)
    (error,) = world.errors()
    assert (error.code, error.entity, error.record_id, error.direction, error.status) == (
        "pending-gave-up",
        "contact",
        "c1",
        TO_MARKETO,
        ErrorStatus.OPEN,
    )
    assert f"{CAP} times" in error.message
    assert "KeyError: 'jobtitle'" in error.message
    mark = world.mark(CONTACT_KEY)
    assert mark.parked
    assert not mark.due(world.clock.now + timedelta(days=30))
    later = world.run_lost(5)  # parked: never sent again, no second error
    assert [(r.sent, r.gave_up, r.parked) for r in later] == [(0, 0, 1)] * 5
    assert len(world.errors()) == 1
    assert admin.durability_status(world.store, world.clock.now)["pending"] == {"total": 1, "due": 0, "parked": 1}


def test_the_give_up_error_says_when_no_error_was_recorded(world: World) -> None:
    world.run_lost(CAP + 1)
    (error,) = world.errors()
    assert "none recorded" in error.message


def test_a_marketo_persons_mark_gives_up_towards_dynamics_and_an_admin_retry_resumes_it() -> None:
    world = World()
    world.change(Notification(source=Source.MARKETO_FEED, marketo_id="77", dedupe_key="g1"))
    world.run_lost(CAP + 1)
    (error,) = world.errors()
    assert (error.entity, error.record_id, error.direction) == ("person", "77", TO_DYNAMICS)
    world.sent.messages.clear()
    error_view.retry_error(world.store, _mapping(), world.queue, error.id, LINKS, at=world.clock.now)
    (message,) = world.sent.messages
    assert parse_notification(message.body).marketo_id == "77"
    mark = world.mark(MarkKey("person", "77"))
    assert (mark.parked, mark.resends) == (False, 0)


def _mapping() -> SyncMapping:
    return load_mapping(MAPPING.read_text())


def test_an_admin_retry_of_the_error_makes_the_mark_due_again_with_a_fresh_count(world: World) -> None:
    world.run_lost(CAP + 1)
    (error,) = world.errors()
    world.sent.messages.clear()
    retried = error_view.retry_error(world.store, _mapping(), world.queue, error.id, LINKS, at=world.clock.now)
    assert (retried["status"], retried["attempts"]) == ("retrying", 1)
    assert len(world.sent.messages) == 1  # the retry's own message
    mark = world.mark(CONTACT_KEY)
    assert (mark.parked, mark.resends, mark.version) == (False, 0, first_version(T0) + 1)
    assert mark.due(world.clock.now + GRACE)
    assert world.sweep_at(world.clock.now + GRACE).sent == 1  # the sweep sends it again if that one fails too


def test_a_new_change_of_the_record_unparks_it(world: World) -> None:
    world.run_lost(CAP + 1)
    world.change(CONTACT.model_copy(update={"dedupe_key": "e2"}))
    mark = world.mark(CONTACT_KEY)
    assert (mark.parked, mark.resends) == (False, 0)
    assert [r.sent for r in world.run_lost(CAP)] == [1] * CAP
    assert world.sweep_at(world.clock.now + GRACE).gave_up == 1
    (error,) = world.errors()  # the same record and cause: counted on its one error
    assert error.count == 2


def test_an_outage_of_any_length_never_exhausts_a_mark(world: World) -> None:
    world.clock.now += GRACE
    world.circuits.failed(Outage(MARKETO, "503"))
    for _ in range(200):  # every probe fails: the circuit stays open, probes further apart, nothing counts
        circuit = world.circuits.get(MARKETO)
        assert circuit.next_probe_at is not None
        world.sweep_at(circuit.next_probe_at - timedelta(seconds=1))  # waiting: nothing sent
        report = world.sweep_at(circuit.next_probe_at)  # the probe
        assert report.probing == (MARKETO,)
        world.pending.defer([CONTACT], world.clock.now + timedelta(seconds=30), "503", MARKETO)
        world.circuits.failed(Outage(MARKETO, "503"))
    mark = world.mark(CONTACT_KEY)
    assert (mark.resends, mark.parked, mark.waiting_on) == (0, False, MARKETO)
    assert world.errors() == []


def test_the_re_send_that_drains_an_outage_and_one_that_ran_into_it_do_not_count(world: World) -> None:
    world.run_lost(CAP)  # at the cap: one more counted failure would give up
    world.pending.defer([CONTACT], world.clock.now + timedelta(minutes=1), "503", MARKETO)  # ran into an outage
    assert world.mark(CONTACT_KEY).resends == CAP - 1  # that re-send is taken back
    world.pending.defer([CONTACT], world.clock.now + timedelta(minutes=1), "503", MARKETO)  # the probe failed too
    assert world.mark(CONTACT_KEY).resends == CAP - 1  # once per outage
    drained = world.sweep_at(world.clock.now + timedelta(minutes=1))  # circuit closed again: the drain
    assert drained.sent == 1
    mark = world.mark(CONTACT_KEY)
    assert (mark.resends, mark.waiting_on) == (CAP - 1, None)
    assert world.run_lost(1)[0].sent == 1  # counted: now at the cap
    assert world.run_lost(1)[0].gave_up == 1


def test_a_mark_at_the_cap_held_by_an_outage_is_sent_once_more_before_any_give_up(world: World) -> None:
    world.run_lost(CAP)
    held = world.mark(CONTACT_KEY)
    world.store.pending.save_many([replace(held, waiting_on=MARKETO)])
    report = world.sweep_at(world.clock.now + GRACE)
    assert (report.sent, report.gave_up) == (1, 0)


@pytest.mark.parametrize("paused", ["contact", None])
def test_a_paused_entitys_re_sends_do_not_count(world: World, paused: str | None) -> None:
    world.store.set_pause(paused, True)
    reports = world.run_lost(CAP * 3)
    assert all(r.sent == 1 for r in reports)
    assert world.mark(CONTACT_KEY).resends == 0
    assert world.errors() == []


def test_a_probe_due_re_send_does_not_count(world: World) -> None:
    world.clock.now += GRACE
    world.circuits.failed(Outage(MARKETO, "503"))
    report = world.sweep_at(world.clock.now + timedelta(seconds=30))
    assert (report.sent, report.probing) == (1, (MARKETO,))
    assert world.mark(CONTACT_KEY).resends == 0


def test_marks_stored_before_the_cap_read_as_never_re_sent_and_not_parked(world: World) -> None:
    row = world.store.pending.rows.get(PENDING, "contact", "c1")
    assert row is not None
    old = {k: v for k, v in row.doc.items() if k not in ("resends", "parked")}
    world.store.pending.rows.replace(PENDING, "contact", "c1", old, row.etag)
    mark = world.mark(CONTACT_KEY)
    assert (mark.resends, mark.parked) == (0, False)
    assert mark.due(T0 + GRACE)


def test_noting_a_failure_keeps_the_version_and_never_raises() -> None:
    world = World()
    world.change(CONTACT)
    world.pending.failed([CONTACT, CONTACT.model_copy(update={"dynamics_id": "unmarked"})], "RuntimeError: bug")
    mark = world.mark(CONTACT_KEY)
    assert (mark.last_error, mark.version) == ("RuntimeError: bug", first_version(T0))
    assert [m.key for m in world.pending.all()] == [CONTACT_KEY]  # no mark made for a record without one

    class Down(StateStore):
        @property
        def pending(self) -> PendingMarks:
            raise Conflict("store down")

    broken = PendingWork(Down(world.store.rows), world.clock, GRACE)
    broken.failed([CONTACT], "RuntimeError: bug")  # logged, not raised: the batch's own failure stands
