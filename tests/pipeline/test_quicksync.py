"""Quick Sync end to end: the whole product in-process against the simulated tenants (``stack``, a fresh one
per test, from tests/conftest.py).

Records are created in the simulated Dynamics and synced by the live pipeline; then a column is added to the
Dataverse table, its values set, the field added through the HTTP endpoint and the ``quick_sync`` timer fired.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from local.simulators.dataverse.schema import Column
from local.stack import IN_PROCESS_HOST, LocalStack
from shared.core.mapping import FieldState
from shared.errors import Conflict
from shared.pipeline import marketo_side
from shared.pipeline.quicksync.backfill import range_filter
from shared.pipeline.quicksync.jobs import JobState, QuickSyncJob
from shared.pipeline.quicksync.status import quick_sync_status
from shared.store.mapping import CHANGED, entity_document
from shared.store.model import Checkpoint

TIER_OPTIONS = {1: "Bronze", 2: "Silver", 3: "Gold"}


class Clock:
    """Wall-clock time that moves only when a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> None:
        self.moment += delta


def test_range_filter_on_modifiedon() -> None:
    assert range_filter(None, None) is None
    assert range_filter("2024-01-01T00:00:00Z", None) == "modifiedon ge 2024-01-01T00:00:00Z"
    both = range_filter("2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z")
    assert both == "modifiedon ge 2024-01-01T00:00:00Z and modifiedon le 2024-01-31T23:59:59Z"


def test_a_job_survives_the_trip_through_its_checkpoint() -> None:
    job = QuickSyncJob(
        id="j1",
        entity="lead",
        column="new_x",
        marketo_field="x",
        state=JobState.RUNNING,
        created_at="2024-01-01T00:00:00Z",
        next_link="https://org/api/data/v9.2/leads?$skiptoken=abc",
        pages=3,
        records_done=12,
    )
    checkpoint = Checkpoint(job.checkpoint_name, json.dumps(job.to_doc()), datetime.now(UTC), "etag-1")
    again = QuickSyncJob.from_checkpoint(checkpoint)
    assert again == job
    assert again.etag == "etag-1"
    public = again.public()
    assert "next_link" not in public
    assert public["resumable"] is True
    assert public["state"] == "running"


def call(stack: LocalStack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = httpx.Request(method, f"{IN_PROCESS_HOST}{path}", json=body) if body is not None else None
    response = stack.host.handle_http(request or httpx.Request(method, f"{IN_PROCESS_HOST}{path}"))
    return response.status_code, json.loads(response.content) if response.content else None


def add_field(stack: LocalStack, entity: str, body: dict[str, Any]) -> tuple[int, Any]:
    return call(stack, "POST", f"/api/mapping/{entity}/fields", body)


def seed_leads(stack: LocalStack, count: int) -> list[str]:
    dv = stack.tenants.dataverse  # type: ignore[union-attr]
    admin = stack.tenants.admin_user_id  # type: ignore[union-attr]
    ids = [
        dv.user_create(
            "lead", {"firstname": f"P{i}", "lastname": "Q", "emailaddress1": f"p{i}@example.com"}, user_id=admin
        )
        for i in range(count)
    ]
    assert stack.drain(30)
    links = stack.services.store.get_links("lead", ids)
    assert all(links[i].marketo_id for i in ids), "every seeded lead is linked to a Marketo person"
    return ids


def new_column(stack: LocalStack, entity: str, column: Column) -> None:
    stack.tenants.dataverse.tables[entity].columns[column.name] = column  # type: ignore[union-attr]


def set_values(stack: LocalStack, entity: str, values: dict[str, dict[str, Any]]) -> None:
    dv = stack.tenants.dataverse  # type: ignore[union-attr]
    admin = stack.tenants.admin_user_id  # type: ignore[union-attr]
    for record_id, row in values.items():
        dv.user_update(entity, record_id, row, user_id=admin)


def add_region(stack: LocalStack, values: dict[str, str]) -> None:
    """A new Dynamics column ``new_region`` with ``values`` (by lead id), added as a field mapped to a Marketo
    field ``region`` created for it: its Quick Sync job is queued."""
    new_column(stack, "lead", Column("new_region", "String", max_length=80))
    set_values(stack, "lead", {rid: {"new_region": value} for rid, value in values.items()})
    status, body = add_field(
        stack, "lead", {"dynamics": "new_region", "marketo": "region", "create_marketo_field": True}
    )
    assert status == 202, body


def marketo_value(stack: LocalStack, entity: str, record_id: str, field: str) -> Any:
    link = stack.services.store.get_link(entity, record_id)
    assert link is not None
    assert link.marketo_id
    person = stack.tenants.marketo.lead(int(link.marketo_id))  # type: ignore[union-attr]
    assert person is not None
    return person.get(field)


def field_state(stack: LocalStack, entity: str, column: str) -> FieldState:
    return stack.services.reload_mapping().get(entity).by_column[column].state


def jobs(stack: LocalStack) -> list[dict[str, Any]]:
    status, body = call(stack, "GET", "/api/quicksync")
    assert status == 200
    return list(body["jobs"])


def test_quick_sync_refreshes_every_linked_person_nulls_included(stack: LocalStack) -> None:
    ids = seed_leads(stack, 5)
    new_column(stack, "lead", Column("new_region", "String", max_length=80))
    set_values(stack, "lead", {ids[0]: {"new_region": "EMEA"}, ids[1]: {"new_region": "APAC"}})
    # Marketo already holds stale values, one of them where Dynamics is empty: the refresh must null it.
    stack.tenants.marketo.leads.create_fields([{"name": "region", "displayName": "Region", "dataType": "string"}])  # type: ignore[union-attr]
    for rid in (ids[1], ids[2]):
        marketo_id = int(str(stack.services.store.get_link("lead", rid).marketo_id))  # type: ignore[union-attr]
        stack.tenants.marketo.change_lead(marketo_id, region="stale")  # type: ignore[union-attr]

    status, body = add_field(stack, "lead", {"dynamics": "new_region", "marketo": "region"})
    assert status == 202, body
    assert body["field"]["state"] == "awaiting_quick_sync"
    assert body["field"]["type"] == "text"
    assert body["field"]["dynamics_max_length"] == 80
    assert body["job"]["state"] == "queued"
    assert field_state(stack, "lead", "new_region") is FieldState.AWAITING_QUICK_SYNC

    stack.host.fire("quick_sync")

    expected = {ids[0]: "EMEA", ids[1]: "APAC", ids[2]: None, ids[3]: None, ids[4]: None}
    assert {rid: marketo_value(stack, "lead", rid, "region") for rid in ids} == expected
    links = stack.services.store.get_links("lead", ids)
    assert {rid: links[rid].baseline["new_region"] for rid in ids} == expected
    assert field_state(stack, "lead", "new_region") is FieldState.ACTIVE
    (job,) = jobs(stack)
    assert job["state"] == "done"
    assert job["finished_at"]
    assert job["records_done"] == 5
    assert job["records_failed"] == 0
    assert "Quick Sync done" in job["notice"]
    assert quick_sync_status(stack.services.store)[0]["id"] == job["id"]


def test_quick_sync_resumes_across_runs_and_removal_waits_for_it(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed_leads(stack, 7)
    new_column(stack, "lead", Column("new_tier", "Picklist", options=TIER_OPTIONS))
    set_values(stack, "lead", {rid: {"new_tier": 1 + i % 3} for i, rid in enumerate(ids[:6])})
    tight = stack.services.settings.model_copy(update={"quick_sync_budget_seconds": 0.0, "quick_sync_page_size": 2})
    monkeypatch.setattr(stack.services, "settings", tight)

    status, body = add_field(stack, "lead", {"dynamics": "new_tier", "marketo": "tier", "create_marketo_field": True})
    assert status == 202, body
    assert body["marketo_field_created"] is True
    assert [o["label"] for o in body["field"]["options"]] == ["Bronze", "Silver", "Gold"]
    status, refused = call(stack, "DELETE", "/api/mapping/lead/fields/new_tier")
    assert status == 409
    assert "queued or running" in refused["error"]["message"]

    stack.host.fire("quick_sync")  # one page of two records, then out of time
    (job,) = jobs(stack)
    assert (job["state"], job["pages"], job["records_done"], job["resumable"]) == ("running", 1, 2, True)
    assert field_state(stack, "lead", "new_tier") is FieldState.QUICK_SYNC_RUNNING
    assert call(stack, "DELETE", "/api/mapping/lead/fields/new_tier")[0] == 409

    runs = 1
    while jobs(stack)[0]["state"] != "done":
        stack.host.fire("quick_sync")
        runs += 1
        assert runs < 10
    (job,) = jobs(stack)
    assert job["pages"] == 4
    assert job["records_done"] == 7
    assert job["runs"] == runs == 4
    labels = {rid: marketo_value(stack, "lead", rid, "tier") for rid in ids}
    assert labels == {rid: (TIER_OPTIONS[1 + i % 3] if i < 6 else None) for i, rid in enumerate(ids)}
    assert field_state(stack, "lead", "new_tier") is FieldState.ACTIVE

    status, removed = call(stack, "DELETE", "/api/mapping/lead/fields/new_tier")
    assert status == 200
    assert removed["field"]["dynamics"] == "new_tier"
    assert "new_tier" not in stack.services.mapping.get("lead").by_column
    status, mapping = call(stack, "GET", "/api/mapping")
    lead = next(e for e in mapping["entities"] if e["entity"] == "lead")
    assert "new_tier" not in {f["dynamics"] for f in lead["fields"]}


def test_the_date_range_limits_the_refresh(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = seed_leads(stack, 4)
    new_column(stack, "lead", Column("new_segment", "String", max_length=40))
    assert stack.tenants is not None
    clock = Clock(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1))
    monkeypatch.setattr(stack.tenants.dataverse, "_now", clock)  # Dynamics stamps modifiedon from it
    set_values(stack, "lead", {rid: {"new_segment": "old"} for rid in ids[:2]})
    clock.advance(timedelta(minutes=10))
    boundary = clock()
    clock.advance(timedelta(minutes=10))
    set_values(stack, "lead", {rid: {"new_segment": "new"} for rid in ids[2:]})
    stack.tenants.marketo.leads.create_fields([{"name": "segment", "displayName": "Segment", "dataType": "string"}])

    status, body = add_field(
        stack,
        "lead",
        {"dynamics": "new_segment", "marketo": "segment", "quick_sync": {"modified_from": boundary.isoformat()}},
    )
    assert status == 202, body
    assert body["job"]["modified_from"] == boundary.strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.host.fire("quick_sync")

    assert [marketo_value(stack, "lead", rid, "segment") for rid in ids] == [None, None, "new", "new"]
    (job,) = jobs(stack)
    assert job["state"] == "done"
    assert job["records_read"] == 2
    assert job["records_done"] == 2


def test_the_live_sync_carries_the_field_once_added(stack: LocalStack) -> None:
    ids = seed_leads(stack, 2)
    add_region(stack, {})
    stack.host.fire("quick_sync")
    # A later edit in Dynamics of another mapped column: the reconcile reads the new field too.
    set_values(stack, "lead", {ids[0]: {"jobtitle": "CTO", "new_region": "LATAM"}})
    assert stack.drain(30)
    assert marketo_value(stack, "lead", ids[0], "region") == "LATAM"


def refusal(stack: LocalStack, body: dict[str, Any], entity: str = "lead") -> tuple[int, str, str]:
    status, answer = add_field(stack, entity, body)
    return status, answer["error"]["code"], answer["error"]["message"]


def test_add_field_refusals(stack: LocalStack) -> None:
    new_column(stack, "lead", Column("new_region", "String", max_length=80))

    status, code, message = refusal(stack, {"dynamics": "new_nothere", "marketo": "region"})
    assert (status, code) == (422, "column-not-found")
    assert "create it in Dynamics first" in message
    assert "never creates Dynamics columns" in message

    status, code, message = refusal(
        stack, {"dynamics": "new_nothere", "marketo": "region", "create_dynamics_column": True}
    )
    assert (status, code) == (422, "dynamics-column-creation-refused")

    status, code, message = refusal(stack, {"dynamics": "new_salarynotes", "marketo": "salaryNotes"})
    assert (status, code) == (422, "column-not-readable")
    assert message == "the sync user cannot read new_salarynotes: add it to a field security profile with Read"

    status, code, message = refusal(stack, {"dynamics": "new_region", "marketo": "region"})
    assert (status, code) == (422, "marketo-field-not-found")
    assert "create_marketo_field" in message

    assert refusal(stack, {"dynamics": "jobtitle", "marketo": "title2"})[:2] == (409, "already-mapped")
    assert refusal(stack, {"dynamics": "new_region", "marketo": "Email"})[:2] == (409, "already-mapped")
    assert refusal(stack, {"dynamics": "new_region", "marketo": "x"}, entity="nosuch")[:2] == (404, "not-found")
    assert refusal(stack, {"dynamics": "leadid", "marketo": "x"})[:2] == (409, "reserved")
    assert refusal(stack, {"dynamics": "new_region"})[:2] == (400, "bad-request")
    body = {"dynamics": "new_region", "marketo": "region", "quick_sync": {"modified_from": "yesterday"}}
    assert refusal(stack, body)[:2] == (400, "bad-request")
    assert refusal(stack, {"dynamics": "fax", "marketo": "faxNumber", "create_marketo_field": True}, "account")[:2] == (
        422,
        "marketo-field-not-creatable",
    )
    assert jobs(stack) == []


def test_a_secured_column_the_sync_user_may_only_read_is_added_one_way(stack: LocalStack) -> None:
    tenants = stack.tenants
    assert tenants is not None
    tenants.dataverse.grant_column(tenants.sync_user_id, "lead", "new_salarynotes", read=True, update=False)
    wanted = {"dynamics": "new_salarynotes", "marketo": "salaryNotes", "create_marketo_field": True}

    status, code, message = refusal(stack, wanted)  # two-way: Marketo's edits would be written back
    assert (status, code) == (422, "column-not-writable")
    assert "no Update privilege" in message
    assert '"one_way": true' in message
    assert "salaryNotes" not in tenants.marketo.leads.fields  # refused before anything was created in Marketo

    status, body = add_field(stack, "lead", {**wanted, "one_way": True})
    assert status == 202, body
    assert (body["field"]["type"], body["field"]["one_way"]) == ("text", True)


def test_a_secured_column_the_sync_user_may_read_and_update_is_added_two_way(stack: LocalStack) -> None:
    tenants = stack.tenants
    assert tenants is not None
    tenants.dataverse.grant_column(tenants.sync_user_id, "lead", "new_salarynotes", read=True, update=True)
    status, body = add_field(
        stack, "lead", {"dynamics": "new_salarynotes", "marketo": "salaryNotes", "create_marketo_field": True}
    )
    assert status == 202, body
    assert "one_way" not in body["field"]


def test_one_way_objects_are_upserted_on_their_link_field(stack: LocalStack) -> None:
    tenants = stack.tenants
    assert tenants is not None
    admin = tenants.admin_user_id
    ids = [
        tenants.dataverse.user_create("account", {"name": f"Acme {i}", "telephone1": f"+1 555 000{i}"}, user_id=admin)
        for i in range(3)
    ]
    assert stack.drain(30)
    # mainPhone moves from telephone1 to fax: remove the old pair, add the new one.
    assert call(stack, "DELETE", "/api/mapping/account/fields/telephone1")[0] == 200
    set_values(stack, "account", {ids[0]: {"fax": "+1 555 9999"}})
    status, body = add_field(stack, "account", {"dynamics": "fax", "marketo": "mainPhone"})
    assert status == 202, body

    stack.host.fire("quick_sync")

    companies = {c.get("externalCompanyId"): c for c in tenants.marketo.objects["companies"].records.values()}
    assert [companies[rid].get("mainPhone") for rid in ids] == ["+1 555 9999", None, None]
    (job,) = jobs(stack)
    assert (job["state"], job["records_done"]) == ("done", 3)


def test_marketo_record_failures_go_to_sync_errors_and_count_in_the_job(stack: LocalStack) -> None:
    ids = seed_leads(stack, 3)
    tenants = stack.tenants
    assert tenants is not None
    gone = stack.services.store.get_link("lead", ids[1])
    assert gone is not None
    tenants.marketo.delete_lead(int(str(gone.marketo_id)))
    add_region(stack, {})

    stack.host.fire("quick_sync")

    (job,) = jobs(stack)
    assert (job["state"], job["records_done"], job["records_failed"]) == ("done", 2, 1)
    (error,) = stack.services.store.list_errors(entity="lead")
    assert (error.record_id, error.operation, error.field) == (ids[1], "quick_sync", "new_region")
    assert error.code == "1004"
    assert "new_region" not in (stack.services.store.get_link("lead", ids[1]) or gone).baseline


def test_a_link_saved_by_the_live_sync_meanwhile_gets_the_settled_value(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed_leads(stack, 2)
    add_region(stack, dict.fromkeys(ids, "EMEA"))
    real = marketo_side.update_persons
    raced: list[str] = []

    def racing(marketo: Any, records: Any) -> Any:
        if not raced:  # while the first page is on its way, the live sync settles a newer value for ids[0]
            raced.append(ids[0])
            set_values(stack, "lead", {ids[0]: {"new_region": "LATAM"}})
            link = stack.services.store.get_link("lead", ids[0])
            assert link is not None
            stack.services.store.save_link(replace(link, baseline={**link.baseline, "new_region": "LATAM"}))
        return real(marketo, records)

    monkeypatch.setattr(marketo_side, "update_persons", racing)
    stack.host.fire("quick_sync")

    assert [marketo_value(stack, "lead", rid, "region") for rid in ids] == ["LATAM", "EMEA"]
    link = stack.services.store.get_link("lead", ids[0])
    assert link is not None
    assert link.baseline["new_region"] == "LATAM"
    (job,) = jobs(stack)
    assert (job["records_done"], job["records_left_to_live_sync"]) == (2, 0)


def test_a_link_the_live_sync_saved_for_another_field_costs_no_second_marketo_call(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed_leads(stack, 2)
    add_region(stack, dict.fromkeys(ids, "EMEA"))
    real = marketo_side.update_persons
    calls: list[int] = []

    def racing(marketo: Any, records: Any) -> Any:
        if not calls:  # while the page is on its way, the live sync saves ids[0]'s link for another field
            set_values(stack, "lead", {ids[0]: {"jobtitle": "CTO"}})
            link = stack.services.store.get_link("lead", ids[0])
            assert link is not None
            stack.services.store.save_link(replace(link, baseline={**link.baseline, "jobtitle": "CTO"}))
        calls.append(len(records))
        return real(marketo, records)

    monkeypatch.setattr(marketo_side, "update_persons", racing)
    stack.host.fire("quick_sync")

    assert calls == [2]  # the region Dynamics holds is still the one written: no call again, only the baseline
    assert [marketo_value(stack, "lead", rid, "region") for rid in ids] == ["EMEA", "EMEA"]
    link = stack.services.store.get_link("lead", ids[0])
    assert link is not None
    assert (link.baseline["new_region"], link.baseline["jobtitle"]) == ("EMEA", "CTO")
    (job,) = jobs(stack)
    assert (job["records_done"], job["records_left_to_live_sync"]) == (2, 0)


def test_a_field_waiting_without_a_job_gets_one(stack: LocalStack) -> None:
    ids = seed_leads(stack, 1)
    new_column(stack, "lead", Column("new_region", "String", max_length=80))
    set_values(stack, "lead", {ids[0]: {"new_region": "EMEA"}})
    stack.tenants.marketo.leads.create_fields([{"name": "region", "displayName": "Region", "dataType": "string"}])  # type: ignore[union-attr]

    def by_hand(document: dict[str, Any]) -> bool:
        lead = entity_document(document, "lead")
        assert lead is not None
        lead["fields"].append(
            {"dynamics": "new_region", "marketo": "region", "type": "text", "state": "awaiting_quick_sync"}
        )
        return CHANGED

    stack.services.mappings.update(by_hand)  # saved without a job, as a crash before the job would leave it
    stack.host.fire("quick_sync")

    (job,) = jobs(stack)
    assert job["state"] == "done"
    assert marketo_value(stack, "lead", ids[0], "region") == "EMEA"
    assert field_state(stack, "lead", "new_region") is FieldState.ACTIVE


def test_a_column_deleted_in_dynamics_mid_quick_sync_marks_the_field_broken_and_cancels_the_job(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed_leads(stack, 4)
    add_region(stack, dict.fromkeys(ids, "EMEA"))
    tight = stack.services.settings.model_copy(update={"quick_sync_budget_seconds": 0.0, "quick_sync_page_size": 2})
    monkeypatch.setattr(stack.services, "settings", tight)
    stack.host.fire("quick_sync")  # the first page, then out of time
    assert (jobs(stack)[0]["state"], jobs(stack)[0]["records_done"]) == ("running", 2)

    del stack.tenants.dataverse.tables["lead"].columns["new_region"]  # type: ignore[union-attr]
    stack.host.fire("quick_sync")  # the resume link selects the column Dynamics no longer has
    stack.host.fire("quick_sync")  # a cancelled job stays cancelled: nothing restarts, nothing is reported again

    (job,) = jobs(stack)
    assert (job["state"], job["restarts"], job["resumable"]) == ("cancelled", 0, False)
    assert "the column no longer exists in Dynamics, the field is marked broken" in job["notice"]
    assert field_state(stack, "lead", "new_region") is FieldState.BROKEN
    (error,) = stack.services.store.list_errors(entity="lead")
    assert (error.code, error.field) == ("column-missing", "new_region")
    assert "the mapped column 'new_region' no longer exists in Dynamics" in error.message
    set_values(stack, "lead", {ids[3]: {"jobtitle": "CTO"}})  # the live sync reads without the column at once
    assert stack.drain(30)
    assert marketo_value(stack, "lead", ids[3], "title") == "CTO"
    assert len(stack.services.store.list_errors()) == 1


def test_a_mapping_document_that_keeps_changing_ends_the_run_with_the_error_noted(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed_leads(stack, 1)
    add_region(stack, {ids[0]: "EMEA"})

    def lost(*_: Any) -> str:
        raise Conflict("another instance saved the document first")

    with monkeypatch.context() as patched:
        patched.setattr(stack.services.store, "save_document", lost)  # every save of a field state loses
        stack.host.fire("quick_sync")
        (job,) = jobs(stack)
        assert (job["state"], job["records_done"], job["runs"]) == ("running", 0, 1)
        assert "the mapping document kept changing under us" in job["last_error"]
        assert field_state(stack, "lead", "new_region") is FieldState.AWAITING_QUICK_SYNC

    stack.host.fire("quick_sync")  # the next run resumes

    (job,) = jobs(stack)
    assert (job["state"], job["records_done"], job["runs"], job["last_error"]) == ("done", 1, 2, None)
    assert marketo_value(stack, "lead", ids[0], "region") == "EMEA"
