"""Status that tells the truth, resume that delivers at once, jobs that start at once with progress, and the force
resync: through the local host on the simulated tenants."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.stack import LocalStack
from shared.pipeline.quicksync.jobs import JobKind, JobState, QuickSyncJob
from tests.pipeline.test_quicksync import Clock, call, marketo_value, seed_leads
from tests.stacks import running_stack


def wait_for(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Until ``check()`` is truthy (the queue functions run on their own threads); its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@pytest.fixture
def nudged() -> Iterator[LocalStack]:
    """The product with its job runner pumped from QUICK_SYNC_QUEUE, as in Azure; no timer ever fires."""
    with running_stack(run_job_nudges=True) as stack:
        yield stack


def entity_status(stack: LocalStack, entity: str) -> dict[str, Any]:
    status, body = call(stack, "GET", f"/api/status?entity={entity}")
    assert status == 200, body
    (found,) = body["entities"]
    return dict(found)


# --- status ----------------------------------------------------------------------------------------------------------


def test_the_backlog_counts_records_not_notifications(stack: LocalStack) -> None:
    assert call(stack, "POST", "/api/sync/pause?entity=account")[0] == 200
    assert stack.tenants is not None
    for n in range(5):
        stack.tenants.user_create("account", name=f"Paused {n}")
    stack.host.fire("dataverse_catchup")  # the same five records notified once more
    account = wait_for(lambda: (s := entity_status(stack, "account"))["queued_messages"] >= 10 and s)
    assert (account["backlog_records"], account["backlog"], account["queued_messages"]) == (5, 5, 10)
    assert account["paused"] is True
    assert account["oldest_pending"].endswith("+00:00")
    assert len(account["trend_24h"]) == 24
    assert set(account["trend_24h"][0]) == {"hour", "synced", "failed"}


def test_status_of_an_unmapped_entity_is_a_404_and_an_entity_narrows_the_list(stack: LocalStack) -> None:
    status, body = call(stack, "GET", "/api/status?entity=bogus")
    assert status == 404
    assert body["error"]["code"] == "not-found"
    assert [e["entity"] for e in call(stack, "GET", "/api/status?entity=lead")[1]["entities"]] == ["lead"]


def assert_status_reports_budgets_timers_and_throughput(nudged: LocalStack) -> None:
    """After three leads were created and synced."""
    status, body = call(nudged, "GET", "/api/status")
    assert status == 200
    marketo = body["budgets"]["marketo"]
    assert marketo["calls_last_20s"] >= 1  # the seeding's own calls, as this instance's limiter counts them
    assert marketo["limit_20s"] == 100
    assert marketo["daily_used"] >= 1
    assert marketo["daily_left"] == marketo["daily_limit"] - marketo["daily_used"]
    assert body["budgets"]["dataverse"]["concurrency_limit"] >= 1
    assert body["budgets"]["dataverse"]["requests_last_5min"] is None  # not known: said so, not made up
    call(nudged, "GET", "/api/status")
    assert nudged.services.marketo.usage.reads == 1, "Marketo's usage is read at most once a minute"
    sweep = body["timers"]["pending_sweep"]
    assert sweep["schedule"] == nudged.settings.pending_sweep_schedule
    assert sweep["last_run"] is None
    assert datetime.fromisoformat(sweep["next_run"]) > datetime.now(UTC)
    lead = next(e for e in body["entities"] if e["entity"] == "lead")
    assert lead["synced_last_hour"] == 3
    assert lead["failed_last_hour"] == 0
    assert sum(row["synced"] for row in lead["trend_24h"]) == 3
    assert (body["paused_all"], body["paused_entities"]) == (False, [])


# --- pause and resume ------------------------------------------------------------------------------------------------


class StillClock:
    """The product's time stands still: a notification held by the pause comes round again only after 30 s of real
    waiting, so a change seen within seconds of the resume was delivered by the resume itself."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_resume_delivers_held_changes_at_once_and_a_plain_resume_keeps_entity_pauses() -> None:
    with running_stack(clock=StillClock()) as stack:
        assert stack.tenants is not None
        assert call(stack, "POST", "/api/sync/pause?entity=contact")[0] == 200
        assert call(stack, "POST", "/api/sync/pause")[0] == 200
        contact = stack.tenants.user_create("contact", firstname="Ada", lastname="Held", emailaddress1="held@x.org")
        assert wait_for(lambda: entity_status(stack, "contact")["backlog_records"] == 1)
        status, body = call(stack, "POST", "/api/sync/resume")
        assert status == 200
        assert (body["paused_all"], body["paused_entities"]) == (False, ["contact"])
        assert "still paused: contact" in body["note"]
        assert stack.services.store.get_link("contact", contact) is None, "the contact stays paused by name"

        resumed_at = time.monotonic()
        status, body = call(stack, "POST", "/api/sync/resume?entity=contact")
        assert (status, body["held_changes_sent"], body["paused_entities"]) == (200, 1, [])
        assert wait_for(lambda: stack.tenants.marketo.find_leads("email", "held@x.org"), 5)  # type: ignore[union-attr]
        assert time.monotonic() - resumed_at < 2.5
        assert wait_for(lambda: entity_status(stack, "contact")["backlog_records"] == 0, 5)


# --- jobs: Quick Sync at once, progress -------------------------------------------------------------------------------


def test_progress_rate_and_eta_are_reckoned_from_the_counters() -> None:
    job = QuickSyncJob(
        "j", "lead", "new_x", "x", JobState.RUNNING, "2026-12-01T12:00:00Z", started_at="2026-12-01T12:00:00Z"
    )
    job.records_read, job.records_total = 50, 200
    shown = job.public(datetime(2026, 12, 1, 12, 0, 10, tzinfo=UTC))
    assert (shown["percent"], shown["rate_per_s"], shown["eta_s"]) == (25.0, 5.0, 30.0)
    assert (shown["kind"], shown["created_at"], shown["finished_at"]) == (
        "quick_sync",
        "2026-12-01T12:00:00+00:00",
        None,
    )
    job.records_total = None  # more than Dataverse counts: no percent, no ETA, until every page is read
    assert (job.public()["percent"], job.public()["eta_s"]) == (None, None)


def test_adding_a_field_starts_its_quick_sync_without_a_timer_tick(nudged: LocalStack) -> None:
    from local.simulators.dataverse.schema import Column

    ids = seed_leads(nudged, 3)
    assert_status_reports_budgets_timers_and_throughput(nudged)
    assert nudged.tenants is not None
    nudged.tenants.dataverse.tables["lead"].columns["new_region"] = Column("new_region", "String", max_length=80)
    nudged.tenants.user_update("lead", ids[0], new_region="EMEA")
    assert nudged.drain(10)
    status, body = call(
        nudged,
        "POST",
        "/api/mapping/lead/fields",
        {"dynamics": "new_region", "marketo": "region", "create_marketo_field": True},
    )
    assert status == 202, body
    job_id = body["job"]["id"]
    job = wait_for(lambda: (j := call(nudged, "GET", f"/api/jobs/{job_id}")[1])["state"] == "done" and j)
    assert job, "the Quick Sync ran, no timer fired"
    assert nudged.host.timer_runs == {}
    assert (job["kind"], job["records_total"], job["records_done"], job["percent"]) == ("quick_sync", 3, 3, 100.0)
    assert job["started_at"]
    assert job["finished_at"]
    assert job["eta_s"] == 0.0
    listed = call(nudged, "GET", "/api/jobs")[1]
    assert (listed["count"], listed["active"], listed["jobs"][0]["id"]) == (1, 0, job_id)
    assert call(nudged, "GET", "/api/jobs/no-such-job")[0] == 404

    status, again = call(nudged, "POST", "/api/quicksync", {"entity": "lead", "column": "new_region"})
    assert status == 202
    assert again["job"]["id"] != job_id
    assert wait_for(lambda: call(nudged, "GET", f"/api/jobs/{again['job']['id']}")[1]["state"] == "done")
    assert call(nudged, "POST", "/api/quicksync", {"entity": "lead", "column": "nope"})[0] == 404


# --- force resync ------------------------------------------------------------------------------------------------------


def test_a_resync_of_a_date_range_reconciles_those_records_and_one_refreshes_marketo(
    nudged: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed_leads(nudged, 5)
    assert nudged.tenants is not None
    dv = nudged.tenants.dataverse
    clock = Clock(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1))
    monkeypatch.setattr(dv, "_now", clock)  # Dynamics stamps modifiedon from it
    dv.sender = lambda url, headers, body: 0  # edits the webhook never tells: only a resync brings them
    for n, rid in enumerate(ids):
        clock.advance(timedelta(minutes=10))
        nudged.tenants.user_update("lead", rid, jobtitle=f"Edited {n}")
    start = clock() - timedelta(minutes=25)  # the last three edits
    body = {"entity": "lead", "mode": "both_ways", "modified_from": start.isoformat(), "page_size": 2}
    status, answer = call(nudged, "POST", "/api/resync", body)
    assert status == 202, answer
    job_id = answer["job"]["id"]
    assert (answer["job"]["kind"], answer["job"]["scope"], answer["job"]["mode"]) == ("resync", "modified", "both_ways")
    job = wait_for(lambda: (j := call(nudged, "GET", f"/api/jobs/{job_id}")[1])["state"] == "done" and j, 15)
    assert job, call(nudged, "GET", f"/api/jobs/{job_id}")[1]
    assert (job["records_total"], job["records_done"], job["pages"], job["percent"]) == (3, 3, 2, 100.0)
    assert job["rate_per_s"] > 0
    assert job["eta_s"] == 0.0
    expected = [None, None, "Edited 2", "Edited 3", "Edited 4"]
    titles = wait_for(lambda: (t := [marketo_value(nudged, "lead", rid, "title") for rid in ids]) == expected and t)
    assert titles == expected, "the three records in the range reconciled; the two before it did not"

    for rid in ids[2:4]:  # changed in Marketo behind the sync's back: no webhook, no activity
        marketo_id = int(str(nudged.services.store.get_link("lead", rid).marketo_id))  # type: ignore[union-attr]
        nudged.tenants.marketo.leads.leads[marketo_id]["title"] = "x"
    body = {"entity": "lead", "ids": [ids[2]], "mode": "refresh_marketo"}
    status, answer = call(nudged, "POST", "/api/resync", body)
    assert status == 202, answer
    job_id = answer["job"]["id"]
    job = wait_for(lambda: (j := call(nudged, "GET", f"/api/jobs/{job_id}")[1])["state"] == "done" and j)
    assert (job["scope"], job["records_total"], job["records_done"], job["records_failed"]) == ("record", 1, 1, 0)
    assert marketo_value(nudged, "lead", ids[2], "title") == "Edited 2"
    assert marketo_value(nudged, "lead", ids[3], "title") == "x", "only the record asked for"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"entity": "lead", "mode": "sideways"}, "mode"),
        ({"entity": "bogus", "mode": "both_ways"}, "entity"),
        ({"entity": "lead", "mode": "both_ways", "modified_from": "yesterday"}, "modified_from"),
        ({"entity": "lead", "modified_from": "2026-02-01", "modified_to": "2026-01-01"}, "modified_from"),
        ({"entity": "lead", "ids": [f"00000000-0000-0000-0000-{n:012d}" for n in range(1001)]}, "ids"),
        ({"entity": "lead", "ids": ["not-a-guid"]}, "ids.0"),
        ({"entity": "lead", "<b>": 1}, "body"),
    ],
)
def test_a_resync_that_cannot_run_is_a_400_naming_the_field(
    stack: LocalStack, body: dict[str, Any], where: str
) -> None:
    status, answer = call(stack, "POST", "/api/resync", body)
    assert status == 400, answer
    assert answer["error"]["field"] == where
    assert "<b>" not in answer["error"]["message"]


def test_the_same_resync_twice_answers_the_running_job(stack: LocalStack) -> None:
    body = {"entity": "contact", "ids": ["6f1c9a0e-8a57-4a57-9b0e-000000000001"], "mode": "refresh_marketo"}
    first = call(stack, "POST", "/api/resync", body)
    second = call(stack, "POST", "/api/resync", body)
    assert (first[0], second[0]) == (202, 200)
    assert second[1]["job"]["id"] == first[1]["job"]["id"]
    assert (second[1]["created"], first[1]["job"]["records_total"], first[1]["job"]["scope"]) == (False, 1, "record")
    assert JobKind(first[1]["job"]["kind"]) is JobKind.RESYNC


def test_the_status_lists_every_timer_the_app_registers(stack: LocalStack) -> None:
    """A timer added to the app shows in the status (last and next run) without anyone remembering to list it."""
    from functions.status_view import timer_schedules

    registered = {t.name: t.schedule.text for t in stack.host.functions.timers}
    assert timer_schedules(stack.settings) == registered
