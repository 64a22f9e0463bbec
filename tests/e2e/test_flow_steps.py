"""Marketo flow steps through the local host: the webhook records the run, the queue function runs it, the sweep
finishes what a crash left (shared/pipeline/flowsteps, functions/flowsteps.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.stack import IN_PROCESS_HOST, LocalStack
from shared.pipeline.flowsteps.steps import task_id
from shared.queueing import OutgoingMessage
from shared.store.flow_runs import FlowRuns, RunState
from tests.e2e.conftest import ManualClock, SkippedWaits
from tests.stacks import PROMPT_BATCHING, running_stack

SALES = {
    "firstname": "Sam",
    "lastname": "Seller",
    "internalemailaddress": "sam@contoso.com",
    "domainname": "sam@contoso.onmicrosoft.com",
    "isdisabled": False,
}
OTHER = {"firstname": "Olga", "lastname": "Other", "internalemailaddress": "olga@contoso.com", "isdisabled": False}


class Flow:
    """A Marketo admin's trigger campaign calling the product's flow-step webhooks, and what it sees."""

    def __init__(self, stack: LocalStack, clock: ManualClock) -> None:
        assert stack.tenants is not None
        self.stack = stack
        self.clock = clock
        self.dv = stack.tenants.dataverse
        self.mk = stack.tenants.marketo
        self.secret = stack.tenants.secrets.marketo_webhook_secret
        self.sam = self.dv.seed("systemuser", SALES)
        self.olga = self.dv.seed("systemuser", OTHER)

    def post(self, step: str, body: Any, *, secret: str | None = None, run: bool = True) -> httpx.Response:
        header = self.stack.settings.marketo_webhook_header
        request = httpx.Request(
            "POST",
            f"{IN_PROCESS_HOST}/api/marketo/flow/{step}",
            headers={header: self.secret if secret is None else secret, "content-type": "application/json"},
            content=body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content,
        )
        answer = self.stack.host.handle_http(request)
        if run:
            self.settle()
        return answer

    def settle(self) -> None:
        assert self.stack.broker.queue(self.stack.settings.flow_steps_queue).wait_idle(15), "flow steps still queued"
        assert self.stack.drain(15)

    def sweep(self, minutes: float) -> None:
        self.clock.advance(minutes * 60)
        self.stack.host.fire("flow_steps_sweep")
        self.settle()

    def owner(self, entity: str, record_id: str) -> str | None:
        row = self.dv.get(entity, record_id)
        assert row is not None
        return row.get("_ownerid_value")

    def errors(self, code: str) -> list[dict[str, Any]]:
        answer = self.stack.host.handle_http(httpx.Request("GET", f"{IN_PROCESS_HOST}/api/errors?error_code={code}"))
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["errors"]
        return items


@pytest.fixture
def flow(request: pytest.FixtureRequest) -> Iterator[Flow]:
    clock = ManualClock()
    waits = SkippedWaits()
    overrides = getattr(request, "param", {})
    with running_stack(
        batching=PROMPT_BATCHING, clock=clock, sleep=waits.sleep, monotonic=waits.monotonic, overrides=overrides
    ) as stack:
        yield Flow(stack, clock)


def test_sync_person_links_the_existing_lead_by_email_and_assigns_the_chosen_owner(flow: Flow) -> None:
    lead_id = flow.dv.seed("lead", {"lastname": "Kept", "emailaddress1": "kim@example.com", "new_synctomkto": False})
    person_id = flow.mk.add_lead(email="kim@example.com", firstName="Kim", lastName="Kept")
    body = {"personId": person_id, "owner": {"email": "sam@contoso.com"}, "reassign": True}
    answer = flow.post("sync-person", body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    assert len(flow.dv.rows("lead")) == 1, "matched by e-mail (the sync filter keeps it out), not duplicated"
    assert flow.owner("lead", lead_id) == flow.sam
    assert flow.stack.services.store.find_by_marketo("lead", person_id).dynamics_id == lead_id  # type: ignore[union-attr]


def test_sync_person_creates_a_lead_owned_by_the_marketo_sales_owner(flow: Flow) -> None:
    person_id = flow.mk.add_lead(
        email="nia@example.com", firstName="Nia", lastName="New", externalSalesPersonId=flow.olga
    )
    answer = flow.post("sync-person", {"personId": person_id, "requestId": "r-1", "owner": {"salesOwner": True}})
    assert answer.status_code == 202, answer.text
    (lead,) = flow.dv.rows("lead")
    assert lead["emailaddress1"] == "nia@example.com"
    assert lead["_ownerid_value"] == flow.olga
    run = FlowRuns(flow.stack.services.store.rows).get(answer.json()["requestKey"])
    assert run is not None
    assert run.state is RunState.DONE
    assert run.outcome["status"] == "created"


def test_change_owner_assigns_the_linked_record(flow: Flow) -> None:
    person_id = flow.mk.add_lead(email="cho@example.com", firstName="Cho", lastName="Change")
    flow.post("sync-person", {"personId": person_id})
    (lead,) = flow.dv.rows("lead")
    answer = flow.post("change-owner", {"personId": person_id, "owner": {"id": flow.sam.upper()}})
    assert answer.status_code == 202, answer.text
    assert flow.owner("lead", lead["leadid"]) == flow.sam


def test_create_task_twice_with_the_same_request_makes_one_task(flow: Flow) -> None:
    person_id = flow.mk.add_lead(email="tia@example.com", firstName="Tia", lastName="Task")
    flow.post("sync-person", {"personId": person_id})
    (lead,) = flow.dv.rows("lead")
    body = {
        "personId": person_id,
        "requestId": 20261201,
        "subject": "Call back",
        "description": "Asked for a demo",
        "dueDate": "2026-12-03",
        "priority": "high",
    }
    first = flow.post("create-task", body)
    second = flow.post("create-task", body)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["status"] == "done"
    (task,) = flow.dv.rows("task")
    assert task["activityid"] == task_id(first.json()["requestKey"])
    assert task["_regardingobjectid_value"] == lead["leadid"]
    assert (task["subject"], task["prioritycode"], task["scheduledend"][:10]) == ("Call back", 2, "2026-12-03")
    assert task["_ownerid_value"] == lead["_ownerid_value"], "the task goes to the record's owner by default"


def test_a_bad_body_is_a_400_naming_the_field_and_records_nothing(flow: Flow) -> None:
    answer = flow.post("create-task", {"personId": 5, "subject": "x", "priority": "urgent"})
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "priority"
    missing = flow.post("change-owner", {"personId": 5})
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "owner")
    not_json = flow.post("sync-person", b"{personId: 1")
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "bad-json")
    unknown = flow.post("convert-person", {"personId": 5})
    assert unknown.status_code == 404
    assert list(FlowRuns(flow.stack.services.store.rows).open_keys(10)) == []


def test_a_wrong_secret_is_a_401(flow: Flow) -> None:
    answer = flow.post("sync-person", {"personId": 1}, secret="not-the-secret")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"


def test_change_owner_of_a_person_with_no_linked_record_is_a_sync_error(flow: Flow) -> None:
    person_id = flow.mk.add_lead(email="una@example.com", firstName="Una", lastName="Unlinked")
    answer = flow.post("change-owner", {"personId": person_id, "owner": {"email": "sam@contoso.com"}})
    assert answer.status_code == 202
    (error,) = flow.errors("not-linked")
    assert (error["entity"], error["record_id"], error["operation"]) == ("person", str(person_id), "flow:change-owner")
    run = FlowRuns(flow.stack.services.store.rows).get(answer.json()["requestKey"])
    assert run is not None
    assert run.state is RunState.FAILED
    flow.post("sync-person", {"personId": person_id})
    again = flow.post("change-owner", {"personId": person_id, "owner": {"email": "sam@contoso.com"}, "requestId": 2})
    assert again.status_code == 202
    (lead,) = flow.dv.rows("lead")
    assert lead["_ownerid_value"] == flow.sam
    (resolved,) = flow.errors("not-linked")
    assert resolved["status"] == "resolved", "the step's success resolves its earlier error"


class CrashBeforeSend:
    """The process dies right after the run is recorded: its message is never sent."""

    def send(self, queue: str, messages: Any) -> None:
        raise Crash


class Crash(BaseException):
    """The process dying: no ``except Exception`` runs."""


def test_a_crash_after_the_record_and_before_the_run_is_finished_by_the_sweep(flow: Flow) -> None:
    person_id = flow.mk.add_lead(email="cra@example.com", firstName="Cra", lastName="Sh")
    flow.stack.services.queue = CrashBeforeSend()
    with pytest.raises(Crash):
        flow.post("sync-person", {"personId": person_id}, run=False)
    flow.stack.restart(keep_queue=True)  # a fresh process over the same store
    assert len(list(FlowRuns(flow.stack.services.store.rows).open_keys(10))) == 1, "recorded before the send"
    flow.sweep(minutes=1)
    assert flow.dv.rows("lead") == [], "not due before the grace period"
    flow.sweep(minutes=5)
    (lead,) = flow.dv.rows("lead")
    assert lead["emailaddress1"] == "cra@example.com"
    assert list(FlowRuns(flow.stack.services.store.rows).open_keys(10)) == []


def test_sync_person_leaves_a_matched_records_owner_unless_asked_to_reassign(flow: Flow) -> None:
    contact_id = flow.dv.seed("contact", {"lastname": "Kay", "emailaddress1": "kay@example.com"})
    before = flow.owner("contact", contact_id)
    person_id = flow.mk.add_lead(email="kay@example.com", firstName="Kay", lastName="Kay")
    answer = flow.post("sync-person", {"personId": person_id, "owner": {"username": "nobody"}})
    assert answer.status_code == 202
    (error,) = flow.errors("owner-not-found")  # the owner is checked first: nothing was linked
    assert error["operation"] == "flow:sync-person"
    flow.post("sync-person", {"personId": person_id, "owner": {"username": "sam@contoso.onmicrosoft.com"}})
    assert flow.dv.rows("lead") == []
    assert flow.owner("contact", contact_id) == before, "a matched record keeps its owner without reassign"
    link = flow.stack.services.store.find_by_marketo("lead", person_id)
    assert link is not None
    assert (link.entity, link.dynamics_id) == ("contact", contact_id)


def test_a_run_that_meets_a_marketo_outage_waits_and_the_sweep_finishes_it(flow: Flow) -> None:
    person_id = flow.mk.add_lead(email="out@example.com", firstName="Out", lastName="Age")
    flow.mk.outage(3600)
    answer = flow.post("sync-person", {"personId": person_id})
    assert answer.status_code == 202
    run = FlowRuns(flow.stack.services.store.rows).get(answer.json()["requestKey"])
    assert run is not None
    assert (run.state, run.attempts) == (RunState.QUEUED, 1)
    assert flow.errors("owner-not-found") == []
    flow.mk.faults.clear(gateway=True)
    flow.sweep(minutes=6)
    (lead,) = flow.dv.rows("lead")
    assert lead["emailaddress1"] == "out@example.com"


@pytest.mark.parametrize("flow", [{"PENDING_MAX_ATTEMPTS": "3"}], indirect=True)
def test_a_run_that_never_finishes_is_given_up_with_a_sync_error(flow: Flow) -> None:
    person_id = flow.mk.add_lead(email="gone@example.com", firstName="Gone", lastName="Away")
    flow.mk.outage(24 * 3600)
    answer = flow.post("sync-person", {"personId": person_id})
    for _ in range(4):
        flow.sweep(minutes=20)
    (error,) = flow.errors("flow-step-gave-up")
    assert (error["record_id"], error["operation"]) == (str(person_id), "flow:sync-person")
    run = FlowRuns(flow.stack.services.store.rows).get(answer.json()["requestKey"])
    assert run is not None
    assert run.state is RunState.FAILED
    assert list(FlowRuns(flow.stack.services.store.rows).open_keys(10)) == []


def test_a_message_on_the_flow_steps_queue_that_names_no_run_is_a_sync_error(flow: Flow) -> None:
    queue = flow.stack.settings.flow_steps_queue
    flow.stack.broker.send(queue, [OutgoingMessage(body=b'{"not": "a nudge"}', message_id="stray-1")])
    flow.settle()
    (error,) = flow.errors("bad-message")
    assert error["record_id"] == "stray-1"
    assert "not a flow-step nudge" in error["message"]
    assert flow.stack.broker.queue(queue).dead_letters == []  # completed: it would never get better
