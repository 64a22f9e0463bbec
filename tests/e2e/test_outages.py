"""Durability end to end: outages of any length, crashes between steps and lost messages all converge, with
nothing dead-lettered, through the pending marks, the sweep and the circuits (docs/durability.md).

Every test runs the whole product in-process on a manual clock: "minutes pass" moves the product's time a minute
at a time and fires the pending sweep each minute, as the timer would, so a two-hour outage takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.errors import RetryLater
from shared.marketo.faults import next_quota_reset
from shared.pipeline.feeds import catch_up_dataverse
from shared.pipeline.pending import MarkingQueue, PendingWork
from shared.queueing import OutgoingMessage
from shared.store.tables import STORE_UNAVAILABLE
from tests.e2e.conftest import World

CONTACTS = 30


def _contacts(world: World, n: int) -> dict[str, int]:
    """``n`` contacts created in Dynamics and synced: Dynamics id -> Marketo person id."""
    ids = [
        world.create("contact", firstname=f"C{i}", lastname="Outage", emailaddress1=f"c{i}@example.com", jobtitle="Old")
        for i in range(n)
    ]
    world.settle()
    return {rid: int(world.person(email=f"c{i}@example.com")["id"]) for i, rid in enumerate(ids)}


def _titles(world: World, persons: dict[str, int]) -> dict[str, Any]:
    return {rid: (world.mk.lead(pid) or {}).get("title") for rid, pid in persons.items()}


def _converge(world: World, done: Callable[[], bool], *, limit_minutes: int = 60) -> int:
    """Minutes until ``done`` on the product's clock (the sweep running each minute)."""
    for minute in range(limit_minutes + 1):
        if done():
            return minute
        world.minutes_pass(1)
    raise AssertionError(f"not converged within {limit_minutes} minutes")


def _outage(world: World, seconds: int, figures: dict[str, Any]) -> None:
    """30 linked contacts change in Dynamics while every Marketo call answers 503 for ``seconds``."""
    persons = _contacts(world, CONTACTS)
    world.mk.outage(10 * 24 * 3600)  # ended below, when the product's clock says so
    for rid in persons:
        world.update("contact", rid, jobtitle="New")
    world.settle()
    during = world.status()
    marketo = during["services"]["marketo"]
    assert marketo["available"] is False
    assert marketo["notice"].startswith("Marketo unavailable since ")
    assert marketo["notice"].endswith(f", {CONTACTS} records waiting")
    assert during["pending"]["total"] == CONTACTS
    # people read the notice on the console's Status page: tests/console/test_pages.py
    assert world.clock is not None
    for _ in range(seconds // 30):  # the sweep timer every 30 s of the outage (it runs each minute: no harm)
        world.clock.advance(30)
        world.fire("pending_sweep")
    held = world.status()["services"]["marketo"]
    assert held["available"] is False
    figures["failed_batches_and_probes"] = held["failures"]
    assert set(_titles(world, persons).values()) == {"Old"}  # nothing reached Marketo while it was down
    world.mk.faults.clear(gateway=True)  # Marketo is back
    took = _converge(world, lambda: set(_titles(world, persons).values()) == {"New"})
    after = world.status()
    figures.update(
        changed=CONTACTS,
        lost=sum(1 for t in _titles(world, persons).values() if t != "New"),
        dead_lettered=world.dead_lettered(),
        minutes_to_converge_after_outage=took,
    )
    assert figures["lost"] == 0
    assert figures["dead_lettered"] == 0
    assert after["services"]["marketo"]["available"] is True
    world.minutes_pass(1)
    assert world.status()["pending"]["total"] == 0
    assert world.status()["queue"]["dead_lettered"] == 0


@pytest.mark.parametrize("seconds", [150, 7200], ids=["150-s", "2-hours"])
def test_a_marketo_outage_loses_nothing_and_dead_letters_nothing(clocked_world: World, seconds: int) -> None:
    figures: dict[str, Any] = {}
    _outage(clocked_world, seconds, figures)
    # the probe waits at most 15 minutes (the cap), and the sweep then drains in pages
    assert figures["minutes_to_converge_after_outage"] <= 16
    print(f"outage of {seconds} s: {figures}")


def test_a_message_lost_on_the_way_is_found_by_the_sweep(clocked_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world = clocked_world
    persons = _contacts(world, 1)
    ((rid, pid),) = persons.items()
    queue = world.stack.broker.queue(world.stack.settings.changes_queue)
    lost: list[OutgoingMessage] = []
    monkeypatch.setattr(queue, "send", lost.extend)  # the broker never gets it
    world.update("contact", rid, jobtitle="Lost on the way")
    monkeypatch.undo()
    assert lost
    world.settle()
    assert (world.mk.lead(pid) or {})["title"] == "Old"
    world.minutes_pass(4, sweep=True)  # within the grace period the sweep leaves the mark alone
    assert (world.mk.lead(pid) or {})["title"] == "Old"
    took = _converge(world, lambda: (world.mk.lead(pid) or {})["title"] == "Lost on the way")
    assert took <= 2
    assert world.status()["pending"]["total"] == 0


class Crash(Exception):
    """The host process dies here."""


def _crash_once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, *, after: bool = False) -> list[int]:
    """``owner.name`` raises :class:`Crash` the first time it is called (``after``: once it has done its work)."""
    original = getattr(owner, name)
    calls: list[int] = []

    def crashing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            if after:
                original(*args, **kwargs)
            raise Crash(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)
    return calls


def _until_all_tried(world: World, timeout: float = 15.0) -> None:
    """Every message was delivered at least once and none is being worked on (crashed ones wait, abandoned)."""
    queue = world.stack.broker.queue(world.stack.settings.changes_queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.delivery_count >= 1 for d in queue.peek()) and not queue._locked:
            return
        time.sleep(0.01)
    raise AssertionError("the messages were not all tried")


@pytest.mark.parametrize(
    "step",
    ["after the Marketo write, before the baseline save", "after the reconcile, before the mark is cleared"],
)
def test_a_crash_between_two_steps_converges_through_the_sweep(
    clocked_world: World, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    world = clocked_world
    world.stack.host.retry_delay = 10_000.0  # the crashed batch is not redelivered before the host dies
    persons = _contacts(world, 3)
    if step.startswith("after the Marketo write"):
        calls = _crash_once(monkeypatch, type(world.store), "save_link")
    else:
        calls = _crash_once(monkeypatch, PendingWork, "clear")
    for rid in persons:
        world.update("contact", rid, jobtitle="After the crash")
    _until_all_tried(world)
    assert calls
    monkeypatch.undo()
    world.restart(keep_queue=False)  # a fresh process; the messages it held are gone
    assert world.status()["pending"]["total"] >= 1  # the crashed batch's records
    took = _converge(
        world,
        lambda: (
            set(_titles(world, persons).values()) == {"After the crash"} and world.status()["pending"]["total"] == 0
        ),
    )
    assert took <= 6  # the grace period, then the sweep
    for rid in persons:
        link = world.store.get_link("contact", rid)
        assert link is not None
        assert link.baseline["jobtitle"] == "After the crash"


def test_a_crash_in_the_middle_of_a_catch_up_page_converges(clocked_world: World) -> None:
    world = clocked_world
    persons = _contacts(world, 4)
    svc = world.stack.services

    def catch_up(queue: Any) -> None:
        catch_up_dataverse(svc.store, svc.dataverse, svc.mapping, queue, now=svc.clock, page_size=2)

    catch_up(svc.changes)  # the initial sync: delta links from here on
    world.settle()
    world.dv.sender = lambda url, headers, body: 0  # the webhooks are lost: only the catch-up sees the changes
    for rid in persons:
        world.update("contact", rid, jobtitle="Seen by the catch-up")

    class Dies:
        """The host dies in the middle: after the marks, while the messages are being sent."""

        def send(self, queue: str, messages: Any) -> None:
            raise Crash("mid-page")

    crashing = MarkingQueue(Dies(), svc.settings.changes_queue, svc.pending)
    with pytest.raises(Crash):
        catch_up(crashing)
    world.restart(keep_queue=False)
    marked = {m.key.record_id for m in world.stack.services.pending.all()}
    assert marked  # the page's marks were written before its send failed
    took = _converge(world, lambda: world.status()["pending"]["total"] == 0)
    assert took <= 6
    assert {_titles(world, persons)[rid] for rid in marked} == {"Seen by the catch-up"}  # found by the sweep
    svc = world.stack.services
    catch_up(svc.changes)  # its checkpoint did not move past the crashed page: the next run reads it again
    world.settle()
    assert set(_titles(world, persons).values()) == {"Seen by the catch-up"}


def test_marketo_edits_made_before_the_feeds_first_run_are_found(world: World) -> None:
    persons = _contacts(world, 2)
    world.mk.delivery.configure(enabled=False)  # the Marketo webhook is missing
    for pid in persons.values():
        world.mk.change_lead(pid, title="Edited in Marketo")
    world.settle()
    assert {world.row("contact", rid)["jobtitle"] for rid in persons} == {"Old"}
    world.fire("marketo_feed")  # its first run
    assert {world.row("contact", rid)["jobtitle"] for rid in persons} == {"Edited in Marketo"}


def test_a_store_outage_still_fails_the_batch_for_redelivery(
    clocked_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing else can hold the work when the store is down: the batch raises and Service Bus redelivers."""
    world = clocked_world
    persons = _contacts(world, 1)
    ((rid, pid),) = persons.items()
    calls = []
    original = type(world.store).get_links

    def down(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise RetryLater("state store unavailable (HTTP 503)", code=STORE_UNAVAILABLE)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(world.store), "get_links", down)
    world.update("contact", rid, jobtitle="Through redelivery")
    world.settle()
    assert len(calls) >= 3
    assert (world.mk.lead(pid) or {})["title"] == "Through redelivery"
    assert world.dead_lettered() == 0


def test_a_spent_marketo_quota_holds_the_changes_until_its_reset(clocked_world: World) -> None:
    world = clocked_world
    persons = _contacts(world, 5)
    world.mk.set_quota_used(world.mk.limits.config.daily_quota)  # 607 from here on
    for rid in persons:
        world.update("contact", rid, jobtitle="After the reset")
    world.settle()
    marketo = world.status()["services"]["marketo"]
    assert marketo["available"] is False
    assert "607" in marketo["reason"]
    resets = datetime.fromisoformat(marketo["next_probe_at"])
    clock = world.clock
    assert clock is not None
    assert resets == next_quota_reset(clock.now)  # the reset (midnight US Central), not the backoff
    clock.now = resets - min(timedelta(minutes=1), (resets - clock.now) / 2)  # before it, whatever the time of day
    world.fire("pending_sweep")
    assert world.status()["services"]["marketo"]["failures"] == 1  # no probe was tried before the reset
    assert set(_titles(world, persons).values()) == {"Old"}
    world.mk.set_quota_used(0)  # the new day
    took = _converge(world, lambda: set(_titles(world, persons).values()) == {"After the reset"})
    assert took <= 3
    assert world.dead_lettered() == 0


def test_dataverse_throttled_past_every_retry_holds_marketo_changes_until_it_answers(clocked_world: World) -> None:
    world = clocked_world
    persons = _contacts(world, 5)
    world.dv.outage(10 * 24 * 3600, status=429)  # every Web API call throttled, whatever the clients retry
    for pid in persons.values():
        world.mk.change_lead(pid, title="Edited in Marketo")
    world.settle()
    dataverse = world.status()["services"]["dataverse"]
    assert dataverse["available"] is False
    assert dataverse["notice"].startswith("Dataverse unavailable since ")
    assert dataverse["records_waiting"] == 5
    world.minutes_pass(30)
    world.dv.faults.clear(gateway=True)
    took = _converge(world, lambda: {world.row("contact", r)["jobtitle"] for r in persons} == {"Edited in Marketo"})
    assert took <= 16
    assert world.dead_lettered() == 0
    world.minutes_pass(1)
    assert world.status()["pending"]["total"] == 0
