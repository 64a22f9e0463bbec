"""Live changes overtake a running backfill: the whole product in-process (webhooks, the local broker and host,
the reconcile, the Quick Sync timer) against both simulators, on a clock the test owns.

A Quick Sync of a few thousand linked contacts goes through Marketo bulk import; while its import is open (the job
runner waits between status polls) a person edits one of the contacts in Dynamics. That change goes the live way
(plug-in step -> webhook -> queue -> reconcile -> ``leads.json`` on the live lane) and is in Marketo before the
Quick Sync finishes; the import, which holds the value read before the edit, does not win in the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench.quicksync import seed_linked
from shared.pipeline.quicksync.jobs import JobState, list_jobs
from tests.pipeline.test_quicksync import add_field, jobs
from tests.stacks import running_stack

COUNT = 3000
FIELD = {"dynamics": "new_tier", "marketo": "tier", "create_marketo_field": True}
SUBMIT = "POST /bulk/v1/leads.json"
SYNC = "POST /rest/v1/leads.json"


class Time:
    """One clock for the product's clients and the simulated tenants; the job runner's first wait on an open
    import runs ``on_wait`` (once) before the clock moves, which moves it as it waits for the live write."""

    def __init__(self) -> None:
        self.now = 1_767_000_000.0
        self.on_wait: Callable[[], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        hook = self.on_wait
        if hook is not None and threading.current_thread() is threading.main_thread():
            self.on_wait = None
            hook()
        self.now += seconds


def test_a_live_change_made_while_a_quick_sync_imports_is_in_marketo_before_the_quick_sync_ends() -> None:
    clock = Time()
    options = {"QUICK_SYNC_BULK_MIN": "1000"}
    with running_stack(sleep=clock.sleep, monotonic=clock, tenant_clock=clock, overrides=options) as stack:
        assert stack.tenants is not None
        mk, dv, admin = stack.tenants.marketo, stack.tenants.dataverse, stack.tenants.admin_user_id
        mk.configure_webhook(None, None)  # Marketo's echo of the writes is not under test
        ids = seed_linked(stack, COUNT, "new_tier", lambda i: f"Tier {i % 7}")
        edited = ids[42]
        person = int(str(stack.services.store.get_link("contact", edited).marketo_id))  # type: ignore[union-attr]
        seen: dict[str, Any] = {}

        def live_edit() -> None:
            (job,) = list_jobs(stack.services.store)
            seen["import open"] = bool(job.import_batches) and job.state is JobState.RUNNING
            syncs = mk.call_counts().get(SYNC, 0)
            dv.user_update("contact", edited, {"jobtitle": "Overtaker", "new_tier": "Platinum"}, user_id=admin)
            began, deadline = clock.now, time.monotonic() + 60  # bounded on the wall clock for a loaded machine
            while (mk.lead(person) or {}).get("title") != "Overtaker" and time.monotonic() < deadline:
                clock.now += 0.1  # the product's time passes (its batching waits on it) while the job runner waits
                time.sleep(0.005)
            seen["seconds"] = clock.now - began
            seen["title"] = (mk.lead(person) or {}).get("title")
            seen["live syncs"] = mk.call_counts().get(SYNC, 0) - syncs
            (still,) = list_jobs(stack.services.store)
            seen["quick sync state"] = still.state

        clock.on_wait = live_edit
        status, body = add_field(stack, "contact", FIELD)
        assert status == 202, body

        stack.host.fire("quick_sync")

        assert seen["import open"], "the edit was made while the bulk import was open"
        assert seen["seconds"] < 30, "within the job runner's first waits"
        assert seen["title"] == "Overtaker", "the live write reached Marketo while the Quick Sync was running"
        assert seen["live syncs"] >= 1
        assert seen["quick sync state"] is JobState.RUNNING, "... and before it finished"
        (job,) = jobs(stack)
        assert job["state"] == "done"
        assert job["records_done"] + job["records_left_to_live_sync"] == COUNT
        assert mk.call_counts()[SUBMIT] == 1
        lead = mk.lead(person) or {}
        assert (lead.get("title"), lead.get("tier")) == ("Overtaker", "Platinum"), "the older imported value lost"
        links = stack.services.store.get_links("contact", ids[:5])
        assert [(mk.lead(int(str(links[rid].marketo_id))) or {}).get("tier") for rid in ids[:5]] == [
            f"Tier {i}" for i in range(5)
        ], "the others imported"
