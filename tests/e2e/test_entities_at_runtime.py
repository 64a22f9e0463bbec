"""An entity added while the sync runs (Marketo's "enable a custom entity later"): through the local host on the
simulated tenants, its existing records reach Marketo by an initial sync job behind live traffic, then its live
changes follow (through the catch-up: its plug-in steps come with the next `shared.setup register`); refusals
are 4xx JSON naming the problem; removing one stops it and keeps its links; two adds at once map it once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from local.simulators.dataverse.schema import Column, _table
from local.stack import LocalStack
from shared.core.mapping import EntityState
from tests.e2e.conftest import ManualClock
from tests.pipeline.test_quicksync import call
from tests.stacks import running_stack

WIDGET = {
    "entity": "new_widget",
    "custom_object": "widget_c",
    "fields": [{"dynamics": "new_name", "marketo": "widgetName"}, {"dynamics": "new_size", "marketo": "size"}],
}


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """The product on its own clock: the initial sync waits for no mapping refresh (one instance), and its job
    runs only when the test fires the Quick Sync timer (the job runner's safety net), so each run is a step."""
    with running_stack(overrides={"SYNC_MAPPING_REFRESH_SECONDS": "0"}) as running:
        yield running


def customise(stack: LocalStack, *, change_tracking: bool = True) -> None:
    """What the customiser did in both systems before asking for the sync: a Dynamics table and a Marketo custom
    object deduplicated on the field that holds the Dynamics id."""
    assert stack.tenants is not None
    table = _table(
        "new_widget",
        "new_widgets",
        "new_name",
        [Column("new_name", "String", max_length=100, custom=True), Column("new_size", "Integer", custom=True)],
        custom=True,
    )
    table.change_tracking = change_tracking
    stack.tenants.dataverse.tables["new_widget"] = table
    stack.tenants.marketo.define_custom_object(
        "widget_c",
        dedupe_fields=("dynamicsId",),
        fields={"dynamicsId": "string", "widgetName": "string", "size": "integer"},
    )


def widgets(stack: LocalStack, custom_object: str = "widget_c") -> dict[str, dict[str, Any]]:
    assert stack.tenants is not None
    records = stack.tenants.marketo.custom_objects[custom_object].records.values()
    return {str(r["dynamicsId"]): r for r in records if r.get("dynamicsId")}


def run_jobs_until_done(stack: LocalStack, job_id: str, runs: int = 20) -> dict[str, Any]:
    """Fire the job runner, let the queued records reconcile, again, until the job has ended."""
    for _ in range(runs):
        stack.host.fire("quick_sync")
        assert stack.drain(15), "the changes queue did not drain"
        status, job = call(stack, "GET", f"/api/jobs/{job_id}")
        assert status == 200, job
        if job["state"] not in ("queued", "running"):
            return dict(job)
    raise AssertionError(f"job {job_id} did not end in {runs} runs")


def entity_entry(stack: LocalStack, entity: str) -> dict[str, Any] | None:
    status, body = call(stack, "GET", "/api/mapping/entities")
    assert status == 200, body
    return next((e for e in body["entities"] if e["entity"] == entity), None)


def test_a_custom_entity_added_at_runtime_has_its_records_synced_then_its_live_changes(stack: LocalStack) -> None:
    customise(stack)
    assert stack.tenants is not None
    dv = stack.tenants.dataverse
    existing = [dv.seed("new_widget", {"new_name": f"Widget {n}", "new_size": n}) for n in range(5)]
    assert call(stack, "POST", "/api/mapping/new_widget/fields", {"dynamics": "new_name", "marketo": "x"})[0] == 404

    status, added = call(stack, "POST", "/api/mapping/entities", {**WIDGET, "page_size": 2})
    assert status == 202, added
    assert added["entity"]["state"] == EntityState.INITIAL_SYNC.value
    assert (added["entity"]["link_field"], added["change_tracking"]) == ("dynamicsId", True)
    assert [f["state"] for f in added["entity"]["fields"]] == ["active", "active"]
    job = added["job"]
    assert (job["kind"], job["entity"], job["state"]) == ("initial_sync", "new_widget", "queued")
    assert any("shared.setup register" in n for n in added["notices"])

    stack.host.fire("dataverse_catchup")  # the catch-up leaves the table to the job while it runs
    assert stack.drain(10)
    assert stack.services.store.get_checkpoint("dataverse:delta:new_widget") is None
    assert widgets(stack) == {}

    done = run_jobs_until_done(stack, job["id"])
    assert (done["state"], done["records_done"], done["records_total"], done["pages"]) == ("done", 5, 5, 3)
    assert done["percent"] == 100.0
    synced = widgets(stack)
    assert set(synced) == set(existing)
    assert {r["widgetName"] for r in synced.values()} == {f"Widget {n}" for n in range(5)}
    listed = call(stack, "GET", "/api/jobs")[1]
    assert any(j["id"] == job["id"] and j["kind"] == "initial_sync" for j in listed["jobs"])
    entry = entity_entry(stack, "new_widget")
    assert entry is not None
    assert (entry["state"], "initial_sync" in entry) == ("active", False)
    assert stack.services.store.get_checkpoint("dataverse:delta:new_widget") is not None, "handed to the catch-up"

    # Its plug-in steps are not registered yet: the catch-up brings its changes, from the job's delta link.
    stack.tenants.user_update("new_widget", existing[0], new_size=42)
    created = stack.tenants.user_create("new_widget", new_name="Widget new", new_size=7)
    stack.host.fire("dataverse_catchup")
    assert stack.drain(10)
    synced = widgets(stack)
    assert synced[existing[0]]["size"] == 42
    assert synced[created]["widgetName"] == "Widget new"
    # ...and the fields API now knows the entity.
    status, answer = call(stack, "POST", "/api/mapping/new_widget/fields", {"dynamics": "new_name", "marketo": "x"})
    assert (status, answer["error"]["code"]) == (409, "already-mapped")


def test_a_table_without_change_tracking_is_read_as_a_query_and_said_so(stack: LocalStack) -> None:
    customise(stack, change_tracking=False)
    assert stack.tenants is not None
    ids = [stack.tenants.dataverse.seed("new_widget", {"new_name": f"W{n}"}) for n in range(3)]
    status, added = call(stack, "POST", "/api/mapping/entities", WIDGET)
    assert status == 202, added
    assert added["change_tracking"] is False
    assert any("change tracking is off" in n for n in added["notices"])
    done = run_jobs_until_done(stack, added["job"]["id"])
    assert (done["state"], done["scope"], done["records_done"]) == ("done", "entity", 3)
    assert set(widgets(stack)) == set(ids)
    stack.host.fire("dataverse_catchup")  # its change feed is refused: skipped, the other tables still caught up
    assert stack.drain(10)


def _refusal(stack: LocalStack, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, answer = call(stack, "POST", "/api/mapping/entities", body)
    assert 400 <= status < 500, answer
    assert set(answer["error"]) >= {"code", "message"}
    return status, answer["error"]


def test_refusals_name_the_problem_and_change_nothing(stack: LocalStack) -> None:
    customise(stack)
    assert stack.tenants is not None
    before = call(stack, "GET", "/api/mapping")[1]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**WIDGET, "entity": "new_gadget"}, 422, "table-not-found"),
        ({**WIDGET, "custom_object": "gadget_c"}, 422, "marketo-object-not-found"),
        ({**WIDGET, "link_field": "widgetName"}, 422, "marketo-link-field-not-dedupe"),
        ({**WIDGET, "link_field": "crmId"}, 422, "marketo-link-field-not-found"),
        ({**WIDGET, "fields": [{"dynamics": "new_colour", "marketo": "size"}]}, 422, "column-not-found"),
        ({**WIDGET, "fields": [{"dynamics": "new_name", "marketo": "colour"}]}, 422, "marketo-field-not-found"),
        ({"entity": "new_project", "custom_object": "project_c"}, 409, "already-mapped"),
        ({"entity": "lead", "custom_object": "widget_c"}, 422, "entity-not-addable"),
        ({**WIDGET, "colour": "red"}, 400, "bad-request"),
        ({"entity": "New Widget!", "custom_object": "widget_c"}, 400, "bad-request"),
        (
            {**WIDGET, "fields": [{"dynamics": "new_name", "marketo": "widgetName", "quick_sync": {}}]},
            400,
            "bad-request",
        ),
    ]
    for body, status, code in cases:
        got, error = _refusal(stack, body)
        assert (got, error["code"]) == (status, code), (body, error)
    unknown = _refusal(stack, {**WIDGET, "colour": "red"})[1]
    assert (unknown["field"], "red" not in unknown["message"]) == ("body", True)
    field = _refusal(stack, {**WIDGET, "fields": [{"dynamics": "new_colour", "marketo": "size"}]})[1]
    assert field["message"].startswith("fields.0: ")

    stack.tenants.dataverse.deny_read(stack.tenants.sync_user_id, "new_widget")
    status, error = _refusal(stack, WIDGET)
    assert (status, error["code"]) == (422, "table-not-readable")
    assert "Read" in error["message"]
    assert call(stack, "GET", "/api/mapping")[1] == before
    assert call(stack, "GET", "/api/jobs")[1]["count"] == 0


def test_a_removed_entity_stops_keeps_its_links_and_can_be_added_again(stack: LocalStack) -> None:
    assert stack.tenants is not None
    team = stack.tenants.user_create("team", name="Field Marketing")
    assert stack.drain(10)
    assert team in widgets(stack, "dynamicsTeam_c")
    shipped = entity_entry(stack, "team")
    assert shipped is not None

    status, removed = call(stack, "DELETE", "/api/mapping/entities/team")
    assert status == 200, removed
    assert (removed["status"], removed["entity"], removed["mapping"]["custom_object"]) == (
        "removed",
        "team",
        "dynamicsTeam_c",
    )
    status, again = call(stack, "DELETE", "/api/mapping/entities/team")
    assert (status, again["error"]["code"]) == (404, "not-found")
    assert entity_entry(stack, "team") is None
    assert stack.services.store.get_link("team", team) is not None, "its links stay"

    unmapped = stack.tenants.user_create("team", name="Events")  # its webhook is answered "not in the mapping"
    assert stack.drain(10)
    linked = next(
        r
        for r in stack.tenants.marketo.custom_objects["dynamicsTeam_c"].records.values()
        if r.get("dynamicsId") == team
    )
    linked["teamName"] = "Edited in Marketo while unmapped"
    assert unmapped not in widgets(stack, "dynamicsTeam_c")

    body = {
        "entity": "team",
        "custom_object": "dynamicsTeam_c",
        "fields": [{"dynamics": "name", "marketo": "teamName"}],
    }
    status, added = call(stack, "POST", "/api/mapping/entities", body)
    assert status == 202, added
    assert added["entity"]["marketo_object"] == "custom_object"
    run_jobs_until_done(stack, added["job"]["id"])
    teams = widgets(stack, "dynamicsTeam_c")
    assert teams[unmapped]["teamName"] == "Events", "the team made while unmapped came with the initial sync"
    records = stack.tenants.marketo.custom_objects["dynamicsTeam_c"].records.values()
    assert [r.get("dynamicsId") for r in records].count(team) == 1, "the linked team was not duplicated"
    assert teams[team]["teamName"] == "Field Marketing", "every field of a linked record is written again"
    assert call(stack, "DELETE", "/api/mapping/entities/lead")[1]["error"]["code"] == "entity-not-removable"


def test_removing_an_entity_cancels_its_initial_sync() -> None:
    overrides = {"SYNC_MAPPING_REFRESH_SECONDS": "0", "QUICK_SYNC_BUDGET_SECONDS": "0.000001"}  # a page a run
    with running_stack(overrides=overrides) as stack:
        customise(stack)
        assert stack.tenants is not None
        for n in range(4):
            stack.tenants.dataverse.seed("new_widget", {"new_name": f"W{n}"})
        status, added = call(stack, "POST", "/api/mapping/entities", {**WIDGET, "page_size": 1})
        assert status == 202, added
        stack.host.fire("quick_sync")
        assert stack.drain(10)
        running = call(stack, "GET", f"/api/jobs/{added['job']['id']}")[1]
        assert (running["state"], running["records_done"]) == ("running", 1)
        status, removed = call(stack, "DELETE", "/api/mapping/entities/new_widget")
        assert (status, removed["jobs_cancelled"]) == (200, [added["job"]["id"]])
        stack.host.fire("quick_sync")
        assert stack.drain(10)
        job = call(stack, "GET", f"/api/jobs/{added['job']['id']}")[1]
        assert (job["state"], job["records_done"]) == ("cancelled", 1)
        assert "removed from the sync mapping" in job["notice"]
        assert len(widgets(stack)) == 1


def test_two_adds_of_one_entity_at_once_map_it_once() -> None:
    with running_stack(overrides={"SYNC_MAPPING_REFRESH_SECONDS": "0"}) as stack:
        customise(stack)
        start = threading.Barrier(2)
        answers: list[tuple[int, Any]] = []

        def add() -> None:
            start.wait()
            answers.append(call(stack, "POST", "/api/mapping/entities", WIDGET))

        threads = [threading.Thread(target=add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(status for status, _ in answers) == [202, 409], answers
        refused = next(body for status, body in answers if status == 409)
        assert refused["error"]["code"] == "already-mapped"
        mapping = call(stack, "GET", "/api/mapping")[1]
        assert [e["entity"] for e in mapping["entities"]].count("new_widget") == 1
        assert call(stack, "GET", "/api/jobs")[1]["count"] == 1


def test_the_initial_sync_waits_until_every_instance_has_refreshed_its_mapping() -> None:
    clock = ManualClock()
    with running_stack(clock=clock) as stack:  # SYNC_MAPPING_REFRESH_SECONDS: 30, the default
        customise(stack)
        assert stack.tenants is not None
        record = stack.tenants.dataverse.seed("new_widget", {"new_name": "W"})
        status, added = call(stack, "POST", "/api/mapping/entities", WIDGET)
        assert status == 202, added
        assert added["job"]["not_before"] is not None
        stack.host.fire("quick_sync")
        assert call(stack, "GET", f"/api/jobs/{added['job']['id']}")[1]["state"] == "queued"
        clock.advance(31)
        done = run_jobs_until_done(stack, added["job"]["id"])
        assert (done["state"], done["records_done"]) == ("done", 1)
        assert record in widgets(stack)


def test_an_entity_left_waiting_without_its_job_gets_one(stack: LocalStack) -> None:
    """A crash between saving the entity in the mapping and saving its job: the job runner adopts it."""
    customise(stack)
    assert stack.tenants is not None
    record = stack.tenants.dataverse.seed("new_widget", {"new_name": "W"})
    entry = {"entity": "new_widget", "entity_set": "new_widgets", "custom_object": "widget_c", "state": "initial_sync"}

    def change(document: dict[str, Any]) -> bool:
        document["entities"].append(entry)
        return True

    stack.services.live_mapping.update(change)
    stack.host.fire("quick_sync")
    assert stack.drain(10)
    (job,) = call(stack, "GET", "/api/jobs")[1]["jobs"]
    done = run_jobs_until_done(stack, job["id"])
    assert (done["kind"], done["state"]) == ("initial_sync", "done")
    assert record in widgets(stack)
    assert entity_entry(stack, "new_widget")["state"] == "active"  # type: ignore[index]
