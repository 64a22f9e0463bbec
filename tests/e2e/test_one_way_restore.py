"""Dynamics always wins for one-way data, end to end: a Marketo-side edit of a company, opportunity, sales person or
custom object (made through Marketo's REST API, as a user's integration would) is restored by the verification
sweep without any change in Dynamics, within the bound docs/durability.md states; a person's one-way lookup edited
in Marketo to a value that is no record id is restored, and no sync error is recorded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from local.stack import LocalStack
from shared.core.policy import Reason
from shared.core.verification import cycle_minutes
from shared.pipeline.pending import MarkingQueue
from shared.pipeline.verify import one_way_entities, verify_one_way
from shared.queueing import OutgoingMessage
from shared.store.model import ErrorStatus
from tests.e2e.conftest import WORLD_BATCHING, World
from tests.stacks import running_stack

ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}


class MarketoUser:
    """Someone's own integration calling Marketo's REST API: a token from the identity service, then JSON calls."""

    def __init__(self, stack: LocalStack) -> None:
        s = stack.settings
        self.http, self.base = stack.http, s.marketo_base_url.rstrip("/")
        identity = (s.marketo_identity_url or f"{self.base}/identity").rstrip("/")
        params = {
            "grant_type": "client_credentials",
            "client_id": s.marketo_client_id,
            "client_secret": s.marketo_client_secret.get_secret_value(),
        }
        self.token = self.http.get(f"{identity}/oauth/token", params=params).json()["access_token"]

    def post(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = self.http.post(f"{self.base}{path}", json=body, headers={"Authorization": f"Bearer {self.token}"})
        data = answer.json()
        assert data.get("success"), data
        result: list[dict[str, Any]] = data.get("result") or []
        assert all(r.get("status") in ("updated", "created", "deleted") for r in result), result
        return result


# (entity, Dynamics values, where Marketo keeps it, its dedupe field, the sync path, a Marketo edit of it)
ONE_WAY = [
    ("account", {"name": "Analytical Engines"}, ("objects", "companies"), "externalCompanyId",
     "/rest/v1/companies/sync.json", {"company": "Renamed in Marketo"}),
    ("opportunity", {"name": "Engines for the Navy", "estimatedvalue": 50000}, ("objects", "opportunities"),
     "externalOpportunityId", "/rest/v1/opportunities.json", {"name": "Edited in Marketo", "amount": 1.0}),
    ("systemuser", {"firstname": "Grace", "lastname": "Hopper", "internalemailaddress": "grace@example.com"},
     ("objects", "salespersons"), "externalSalesPersonId", "/rest/v1/salespersons.json", {"lastName": "Edited"}),
    ("team", {"name": "Field Marketing"}, ("custom_objects", "dynamicsTeam_c"), "dynamicsId",
     "/rest/v1/customobjects/dynamicsTeam_c.json", {"teamName": "Edited in Marketo"}),
    ("new_project", {"new_name": "Apollo", "new_budget": 1200.5}, ("custom_objects", "project_c"), "dynamicsId",
     "/rest/v1/customobjects/project_c.json", {"projectName": "Edited", "budget": 1.5}),
]  # fmt: skip


def _object(world: World, where: tuple[str, str], key: str, record_id: str) -> dict[str, Any]:
    kind, name = where
    records = getattr(world.mk, kind)[name].records.values()
    (found,) = [r for r in records if r.get(key) == record_id]
    return dict(found)


@pytest.fixture
def budget_world() -> Iterator[World]:
    """A world whose verification sweep may make one Marketo call a run."""
    overrides = {"PAUSE_RECHECK_SECONDS": "0.2", "VERIFY_SWEEP_MAX_CALLS": "1"}
    with running_stack(batching=WORLD_BATCHING, overrides=overrides) as stack:
        yield World(stack)


@pytest.mark.parametrize(("entity", "values", "where", "key", "path", "edit"), ONE_WAY, ids=[r[0] for r in ONE_WAY])
def test_a_marketo_edit_of_a_one_way_record_is_restored_by_the_verification_sweep_without_a_dynamics_change(
    budget_world: World,
    entity: str,
    values: dict[str, Any],
    where: tuple[str, str],
    key: str,
    path: str,
    edit: dict[str, Any],
) -> None:
    world = budget_world
    record_id = world.create(entity, **values)
    other = world.create("account", name="Another company")  # a second entity with links: more pages in a cycle
    world.settle()
    sent = _object(world, where, key, record_id)
    MarketoUser(world.stack).post(path, {"action": "updateOnly", "input": [{key: record_id, **edit}]})
    assert edit.items() <= _object(world, where, key, record_id).items()
    world.settle()
    assert edit.items() <= _object(world, where, key, record_id).items(), "nothing reports the edit: it stands"

    # The stated bound: one cycle, ceil(pages / calls per run) runs of the sweep.
    s = world.stack.settings
    links = {e: sum(1 for _ in world.store.iter_links(e)) for e in one_way_entities(world.stack.services.mapping)}
    runs = int(cycle_minutes(links, s.verify_sweep_max_calls, 1))
    assert runs == len({entity, "account"})  # one page per entity with links, one call a run
    for _ in range(runs):
        world.fire("verify_sweep")
    restored = _object(world, where, key, record_id)
    assert {k: restored.get(k) for k in edit} == {k: sent.get(k) for k in edit}, "restored from Dynamics"
    assert world.row("account", other)["name"] == "Another company"
    assert world.store.list_errors() == []

    view = world.call("GET", f"records/{entity}/{record_id}").json()
    newest = view["history"][0]
    assert newest["trigger"]["source"] == "verify_sweep"
    restores = {f["field"] for f in newest["fields"] if f["reason"] == Reason.ONE_WAY_OVERWRITE.value}
    assert restores == {world.stack.services.mapping.get(entity).by_marketo[k.casefold()].dynamics for k in edit}

    writes = _writes(world)
    for _ in range(3):  # Marketo matches again: the sweep reads, and nothing is written
        world.fire("verify_sweep")
    assert _writes(world) == writes


def _writes(world: World) -> int:
    """Marketo REST calls that write (a read with more filter values than a URI holds would be a POST too)."""
    return sum(n for call, n in world.mk.call_counts().items() if call.startswith("POST /rest/"))


def test_a_company_deleted_in_marketo_is_put_back(world: World) -> None:
    account_id = world.create("account", name="Analytical Engines", numberofemployees=240)
    world.settle()
    MarketoUser(world.stack).post("/rest/v1/companies/delete.json", {"input": [{"externalCompanyId": account_id}]})
    assert not [r for r in world.mk.objects["companies"].records.values() if r.get("externalCompanyId") == account_id]
    world.fire("verify_sweep")
    company = _object(world, ("objects", "companies"), "externalCompanyId", account_id)
    assert (company["company"], company["numberOfEmployees"]) == ("Analytical Engines", 240)


def test_a_company_whose_account_was_deleted_in_dynamics_is_kept_and_no_longer_read_back(world: World) -> None:
    account_id = world.create("account", name="Analytical Engines")
    world.settle()
    world.delete("account", account_id)
    world.settle()
    link = world.store.get_link("account", account_id)
    assert link is not None
    assert link.deleted_in_dynamics
    MarketoUser(world.stack).post(
        "/rest/v1/companies/sync.json", {"input": [{"externalCompanyId": account_id, "company": "Kept by Marketo"}]}
    )
    reads = world.mk.call_counts().get("GET /rest/v1/companies.json", 0)
    world.fire("verify_sweep")
    assert world.mk.call_counts().get("GET /rest/v1/companies.json", 0) == reads  # nothing left to verify
    assert _object(world, ("objects", "companies"), "externalCompanyId", account_id)["company"] == "Kept by Marketo"


class LostMessages:
    """A queue sender whose messages never arrive."""

    def __init__(self) -> None:
        self.lost = 0

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.lost += len(messages)


def test_a_restore_whose_message_is_lost_is_sent_again_by_the_pending_sweep(clocked_world: World) -> None:
    world = clocked_world
    account_id = world.create("account", name="Analytical Engines")
    world.settle()
    MarketoUser(world.stack).post(
        "/rest/v1/companies/sync.json", {"input": [{"externalCompanyId": account_id, "company": "Edited"}]}
    )
    svc = world.stack.services
    lost = LostMessages()
    queue = MarkingQueue(lost, svc.settings.changes_queue, svc.pending)
    report = verify_one_way(svc.store, svc.marketo, svc.mapping, queue, max_calls=3, now=svc.clock)
    assert (report.queued, lost.lost) == (1, 1)
    assert [m.key.record_id for m in svc.pending.all()] == [account_id]  # marked before it was sent
    world.settle()
    assert _object(world, ("objects", "companies"), "externalCompanyId", account_id)["company"] == "Edited"
    world.minutes_pass(6)  # past the pending grace: the sweep re-sends the mark
    assert _object(world, ("objects", "companies"), "externalCompanyId", account_id)["company"] == "Analytical Engines"
    assert svc.pending.all() == []


@pytest.mark.parametrize("path", ["webhook", "feed"])
def test_a_one_way_lookup_set_to_a_name_in_marketo_is_restored_without_a_sync_error(world: World, path: str) -> None:
    lead_id = world.create("lead", **ADA)
    world.settle()
    person = world.person(email="ada@example.com")
    owner = person["dynamicsOwnerId"]
    assert owner == world.row("lead", lead_id)["_ownerid_value"]
    if path == "feed":
        world.fire("marketo_feed")  # first run: sets the paging token
        world.mk.webhook_sender = lambda url, headers, body: None  # the webhook call is lost: the feed reports it
    user = MarketoUser(world.stack)
    user.post("/rest/v1/leads.json", {"action": "updateOnly", "lookupField": "id",
                                      "input": [{"id": person["id"], "dynamicsOwnerId": "Bob in Sales"}]})  # fmt: skip
    world.settle()
    if path == "feed":
        assert world.mk.lead(person["id"])["dynamicsOwnerId"] == "Bob in Sales"  # type: ignore[index]
        world.fire("marketo_feed")
    assert world.mk.lead(person["id"])["dynamicsOwnerId"] == owner  # type: ignore[index]
    assert [e for e in world.store.list_errors() if e.status is not ErrorStatus.RESOLVED] == []
    view = world.call("GET", f"records/lead/{lead_id}").json()
    (entry,) = [f for f in view["history"][0]["fields"] if f["field"] == "ownerid"]
    assert entry["action"] == "write_marketo"
    assert entry["reason"] == Reason.ONE_WAY_UNREADABLE.value


def test_the_bound_is_stated_where_the_settings_are() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "durability.md").read_text()
    assert "VERIFY_SWEEP_MAX_CALLS" in text
    assert "ceil(N / (300" in text
