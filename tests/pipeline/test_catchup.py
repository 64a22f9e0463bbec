"""The Dataverse catch-up timer: the initial sync of a large table spread over several runs, then deltas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.stack import LocalStack
from shared.pipeline.feeds import FeedReport, catch_up_dataverse, delta_checkpoint
from tests.stacks import PROMPT_BATCHING, running_stack


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with running_stack(batching=PROMPT_BATCHING) as started:
        yield started


def catch_up(stack: LocalStack, **limits: Any) -> FeedReport:
    svc = stack.services
    return catch_up_dataverse(svc.store, svc.dataverse, svc.mapping, svc.changes, **limits)


def test_an_initial_sync_too_big_for_one_run_resumes_page_by_page(stack: LocalStack) -> None:
    assert stack.tenants is not None
    dv, mk = stack.tenants.dataverse, stack.tenants.marketo
    ids = [dv.seed("lead", {"lastname": f"Lead{i}", "emailaddress1": f"l{i}@example.com"}) for i in range(7)]
    runs = 0
    while True:
        runs += 1
        report = catch_up(stack, budget_seconds=0, page_size=2)
        assert stack.drain(10)
        checkpoint = stack.services.store.get_checkpoint(delta_checkpoint("lead"))
        assert checkpoint is not None
        if '"resume": null' in checkpoint.value:
            break
        assert report.details.get("lead") == 2  # one page of two rows per run, then it stops and checkpoints
        assert runs < 10
    assert runs == 4  # pages of 2, 2, 2 and 1 rows
    assert sorted(lead["dynamicsLeadId"] for lead in mk.leads.leads.values()) == sorted(ids)

    later = dv.user_update  # a change after the initial sync comes through the delta link
    dv.sender = lambda url, headers, body: 0  # with its webhook lost
    later("lead", ids[3], {"lastname": "Changed"}, user_id=stack.tenants.admin_user_id)
    report = catch_up(stack)
    assert report.details["lead"] == 1
    assert stack.drain(10)
    assert [lead["lastName"] for lead in mk.find_leads("dynamicsLeadId", ids[3])] == ["Changed"]
