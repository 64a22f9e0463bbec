"""A change whose every delivery failed ends in the dead-letter queue with its reason, is visible in the status
and the admin API, and once replayed converges like any other change."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import World

ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}


class Broken:
    """A reconcile that fails every time, as a bug would: the host abandons the batch, Service Bus redelivers it."""

    def run(self, notes: Any, carry: Any = None) -> Any:
        raise RuntimeError("injected failure")


def wait_for_dead_letters(world: World, count: int, timeout: float = 15.0) -> None:
    queue = world.stack.broker.queue(world.stack.settings.changes_queue)
    deadline = time.monotonic() + timeout
    while len(queue.dead_letters) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(queue.dead_letters) == count


def test_a_dead_lettered_change_replayed_through_the_admin_api_syncs(world: World, monkeypatch: Any) -> None:
    monkeypatch.setattr(world.stack.services, "reconciler", Broken)
    lead_id = world.create("lead", **ADA)
    wait_for_dead_letters(world, 1)
    assert world.mk.find_leads("email", "ada@example.com") == []
    status = world.call("GET", "status").json()
    assert status["queue"]["dead_lettered"] == 1

    listed = world.call("GET", "deadletters").json()
    (item,) = listed["items"]
    assert (item["notification"]["entity"], item["notification"]["record_id"]) == ("lead", lead_id)
    assert item["reason"] == "MaxDeliveryCountExceeded"
    assert "injected failure" in item["description"]

    monkeypatch.undo()  # the bug is fixed
    replayed = world.call("POST", f"deadletters/{item['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["count"] == 1
    world.settle()
    assert world.person(email="ada@example.com")["dynamicsLeadId"] == lead_id
    assert world.call("GET", "deadletters").json()["count"] == 0
    again = world.call("POST", f"deadletters/{item['id']}/replay")
    assert (again.status_code, again.json()["error"]["code"]) == (404, "not-found")


@pytest.mark.parametrize("by_entity", [True, False])
def test_replaying_all_dead_letters_syncs_each_record(world: World, monkeypatch: Any, by_entity: bool) -> None:
    monkeypatch.setattr(world.stack.services, "reconciler", Broken)
    lead_id = world.create("lead", **ADA)
    wait_for_dead_letters(world, 1)
    monkeypatch.undo()
    replayed = world.call("POST", "deadletters/replay", params={"entity": "lead"} if by_entity else {})
    assert replayed.status_code == 202
    assert replayed.json()["count"] == 1
    world.settle()
    assert world.person(email="ada@example.com")["dynamicsLeadId"] == lead_id


def _at_once(world: World, n: int, method: str, path: str) -> list[Any]:
    """``n`` admin calls released together (a double click, a script run twice, two admins)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    gate = Barrier(n)

    def one(_: int) -> Any:
        gate.wait()
        return world.call(method, path)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_replays_of_one_dead_letter_replay_it_once(world: World, monkeypatch: Any) -> None:
    monkeypatch.setattr(world.stack.services, "reconciler", Broken)
    lead_id = world.create("lead", **ADA)
    wait_for_dead_letters(world, 1)
    (item,) = world.call("GET", "deadletters").json()["items"]
    monkeypatch.undo()
    answers = _at_once(world, 20, "POST", f"deadletters/{item['id']}/replay")
    assert {a.status_code for a in answers} <= {202, 404, 409}, [a.text for a in answers if a.status_code >= 500]
    assert sum(a.json().get("count", 0) for a in answers if a.status_code == 202) == 1  # replayed exactly once
    world.settle()
    assert world.person(email="ada@example.com")["dynamicsLeadId"] == lead_id
    assert world.call("GET", "deadletters").json()["count"] == 0
    assert len(world.persons()) == 1


def test_concurrent_retries_of_one_sync_error_converge_once(world: World) -> None:
    bad_id = world.create("lead", firstname="Bob", lastname="Bad", emailaddress1="bob@example.com", jobtitle="Clerk")
    world.settle()
    bob = world.person(email="bob@example.com")
    world.mk.change_lead(bob["id"], title="x" * 150)  # longer than the lead's jobtitle column: a sync error
    world.settle()
    (error,) = world.store.list_errors()
    world.mk.change_lead(bob["id"], title="Fixed")
    answers = _at_once(world, 20, "POST", f"errors/{error.id}/retry")
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers if a.status_code != 202]
    world.settle()
    assert world.row("lead", bad_id)["jobtitle"] == "Fixed"
    assert len(world.persons()) == 1
    assert len(world.dv.rows("lead")) == 1
    assert world.status()["pending"]["total"] == 0
    assert world.dead_lettered() == 0
