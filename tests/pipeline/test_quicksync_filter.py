"""Quick Sync and the sync filter: a record kept out of the sync (``new_synctomkto`` = No) is not written by a
backfill either, and the job says how many it left out (issue: Quick Sync pushed a new column to such a person)."""

from __future__ import annotations

from local.simulators.dataverse.schema import Column
from local.stack import LocalStack
from tests.pipeline.test_quicksync import add_field, jobs, marketo_value, new_column, seed_leads, set_values


def test_quick_sync_leaves_a_record_the_sync_filter_keeps_out_untouched(stack: LocalStack) -> None:
    ids = seed_leads(stack, 3)
    set_values(stack, "lead", {ids[2]: {"new_synctomkto": False}})
    assert stack.drain(30)
    new_column(stack, "lead", Column("new_region", "String", max_length=80))
    set_values(stack, "lead", {rid: {"new_region": f"R{i}"} for i, rid in enumerate(ids)})
    status, body = add_field(
        stack, "lead", {"dynamics": "new_region", "marketo": "region", "create_marketo_field": True}
    )
    assert status == 202, body

    stack.host.fire("quick_sync")

    assert [marketo_value(stack, "lead", rid, "region") for rid in ids] == ["R0", "R1", None]
    (job,) = jobs(stack)
    assert (job["state"], job["records_done"], job["records_filtered"]) == ("done", 2, 1)
    assert "1 kept out by the sync filter" in job["notice"]
