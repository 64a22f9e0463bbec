"""A record's history end to end: a collision on a lead, read back through GET /api/records, found by its Dynamics
id, its Marketo id and its e-mail, and pruned once older than the retention (on the product's own clock)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.store.base import HISTORY
from shared.store.history import DAYS, day_key
from tests.e2e.conftest import World

ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}


def _get(world: World, path: str, status: int = 200) -> dict[str, Any]:
    answer = world.call("GET", path)
    assert answer.status_code == status, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _collide(world: World) -> tuple[str, dict[str, Any]]:
    """A lead whose job title is edited on both sides while the sync is paused; then resumed."""
    lead_id = world.create("lead", **ADA)
    world.settle()
    person = world.person(email="ada@example.com")
    assert world.call("POST", "sync/pause").status_code == 200
    world.update("lead", lead_id, jobtitle="Dynamics title")
    world.mk.change_lead(person["id"], title="Marketo title")
    assert world.call("POST", "sync/resume").status_code == 200
    if world.clock is not None:
        world.clock.advance(1)  # past the pause's re-check delay
    world.settle()
    assert world.row("lead", lead_id)["jobtitle"] == "Marketo title"
    return lead_id, person


def test_a_collision_on_a_lead_shows_both_values_the_baseline_the_winner_and_the_trigger(clocked_world: World) -> None:
    world = clocked_world
    lead_id, person = _collide(world)
    view = _get(world, f"records/lead/{lead_id}")
    record = view["record"]
    assert (record["entity"], record["dynamics_id"], record["marketo_id"]) == ("lead", lead_id, str(person["id"]))
    assert record["label"] == "Ada Lovelace <ada@example.com>"
    assert record["linked"] is True
    assert record["baseline"]["jobtitle"] == "Marketo title"
    assert record["dynamics_url"] == (
        f"{world.stack.settings.dataverse_url}/main.aspx?etn=lead&id={lead_id}&pagetype=entityrecord"
    )
    assert record["marketo_url"].endswith(f"/leadDatabase/loadLeadDetail?leadId={person['id']}")
    assert view["errors"] == []

    history = view["history"]
    assert [h["at"] for h in history] == sorted((h["at"] for h in history), reverse=True)  # newest first
    collisions = [h for h in history if any(f["winner"] for f in h["fields"])]
    # Two batches may decide it at once (the held notifications and the ones resume re-sends, on two instances):
    # the one that lost the race on the baseline was put back and says so ("requeued": its writes were made, the
    # other batch saved the agreed values), was decided again from fresh reads, found in step, and left no entry.
    # So there is at least one entry of the collision, and each one that saved its baseline says "done".
    assert collisions
    assert {h["outcome"] for h in collisions} <= {"done", "requeued"}
    collision = collisions[0]
    (title,) = [f for f in collision["fields"] if f["field"] == "jobtitle"]
    assert title == {
        "field": "jobtitle",
        "action": "write_dynamics",
        "reason": "changed on both sides: Marketo wins for leads",
        "dynamics": "Dynamics title",
        "marketo": "Marketo title",
        "baseline": "Engineer",
        "value": "Marketo title",
        "winner": "marketo",
    }
    assert collision["trigger"]["side"] in ("dynamics", "marketo")
    assert {"dataverse_webhook", "marketo_webhook"} & set(collision["trigger"]["source"].split(","))
    assert collision["at"].endswith("+00:00")
    assert "." not in collision["at"]  # to the second
    # The product's clock stands still in this world, so entries of one instant may come in either order.
    (created,) = [h for h in history if h["action"] == "create_in_marketo"]
    assert {f["field"]: f["value"] for f in created["fields"]}["jobtitle"] == "Engineer"
    assert len(_get(world, f"records/lead/{lead_id}?limit=1")["history"]) == 1

    # found by each of its names
    expected = {
        "entity": "lead",
        "dynamics_id": lead_id,
        "marketo_id": str(person["id"]),
        "label": "Ada Lovelace <ada@example.com>",
        "dynamics_url": record["dynamics_url"],
        "marketo_url": record["marketo_url"],
    }
    for q in (lead_id, lead_id.upper(), str(person["id"]), "ada@example.com", "ADA@example.com"):
        assert _get(world, f"records?q={q}") == {"records": [expected]}, q

    # retention: 14 days are kept; once older, the entries are no longer shown, and the prune timer deletes them
    assert world.clock is not None
    days_before = [r.rk for r in world.store.rows.query(HISTORY, DAYS)]
    assert days_before == [day_key(world.clock.now)]
    world.clock.advance(13 * 86_400)
    world.fire("history_prune")
    assert _get(world, f"records/lead/{lead_id}")["history"]  # the 14th day: still kept
    world.clock.advance(2 * 86_400)
    assert _get(world, f"records/lead/{lead_id}")["history"] == []  # past the retention: not shown
    assert list(world.store.rows.query(HISTORY, days_before[0]))  # ... and still stored until the timer runs
    world.fire("history_prune")
    assert list(world.store.rows.query(HISTORY, days_before[0])) == []
    assert [r.rk for r in world.store.rows.query(HISTORY, DAYS)] == []
    assert _get(world, f"records/lead/{lead_id}")["record"]["marketo_id"] == str(person["id"])  # the link stays


def test_echoes_of_the_syncs_own_writes_leave_no_history(world: World) -> None:
    lead_id = world.create("lead", **ADA)
    world.settle()
    person = world.person(email="ada@example.com")
    world.mk.change_lead(person["id"], title="Chief Scientist")  # flows to Dynamics, whose webhook echoes it back
    world.settle()
    history = _get(world, f"records/lead/{lead_id}")["history"]
    assert [h["action"] for h in history] == ["sync", "create_in_marketo"]
    assert [f["field"] for f in history[0]["fields"]] == ["jobtitle"]
    assert history[0]["trigger"]["side"] == "marketo"


def test_a_delete_in_dynamics_is_in_the_history_as_the_flag_set_on_the_person(world: World) -> None:
    lead_id = world.create("lead", **ADA)
    world.settle()
    world.delete("lead", lead_id)
    world.settle()
    view = _get(world, f"records/lead/{lead_id}")
    assert view["history"][0]["action"] == "flag_deleted_in_marketo"
    assert view["history"][0]["trigger"]["source"] == "dataverse_webhook"
    assert view["record"]["deleted_in_dynamics"] is True


def test_a_write_dynamics_refused_shows_as_failed_with_its_sync_error_on_the_record(world: World) -> None:
    bob_id = world.create("lead", firstname="Bob", lastname="Bad", emailaddress1="bob@example.com", jobtitle="Clerk")
    world.settle()
    bob = world.person(email="bob@example.com")
    world.mk.change_lead(bob["id"], title="x" * 150)  # the lead's jobtitle column holds 100: Dataverse refuses it
    world.settle()
    view = _get(world, f"records/lead/{bob_id}")
    newest = view["history"][0]
    assert newest["outcome"] == "failed"
    (title,) = newest["fields"]
    assert (title["field"], title["action"], title["dynamics"], title["marketo"]) == (
        "jobtitle",
        "write_dynamics",
        "Clerk",
        "x" * 150,
    )
    (error,) = view["errors"]
    assert (error["record_id"], error["direction"], error["status"]) == (bob_id, "marketo_to_dynamics", "open")
    assert view["record"]["baseline"]["jobtitle"] == "Clerk"  # the failed field keeps its old baseline


@pytest.mark.parametrize(
    ("path", "status", "code", "field"),
    [
        ("records", 400, "bad-query", "q"),
        ("records?q=", 400, "bad-query", "q"),
        ("records?q=a%2Cb%40example.com", 400, "bad-query", "q"),
        ("records/bogus/8c1a2b3c-0000-4000-8000-000000000001", 404, "not-found", None),
        ("records/lead/8c1a2b3c-0000-4000-8000-000000000001", 404, "not-found", None),
        ("records/lead/not-a-guid", 400, "bad-request", "dynamics_id"),
        ("records/lead/8c1a2b3c-0000-4000-8000-000000000001?limit=0", 400, "bad-query", "limit"),
        ("records/lead/8c1a2b3c-0000-4000-8000-000000000001?limit=abc", 400, "bad-query", "limit"),
    ],
)
def test_bad_lookups_are_refused_naming_the_problem(
    module_world: World, path: str, status: int, code: str, field: str | None
) -> None:
    error = _get(module_world, path, status)["error"]
    assert error["code"] == code
    assert error.get("field") == field
    assert error["message"]


def test_a_lookup_that_finds_nothing_is_an_empty_list(module_world: World) -> None:
    assert _get(module_world, "records?q=nobody@example.com") == {"records": []}
    assert _get(module_world, "records?q=424242") == {"records": []}
    assert _get(module_world, "records?q=8c1a2b3c-0000-4000-8000-000000000009") == {"records": []}


@pytest.fixture(scope="module")
def module_world(module_stack: Any) -> World:
    return World(module_stack)
