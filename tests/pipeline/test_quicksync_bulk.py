"""Quick Sync of persons through Marketo bulk import: the whole product in-process against the simulated tenants,
on a clock the test owns (the clients' waits between status polls move it; nothing sleeps).

Linked contacts are put in place directly (``bench.quicksync.seed_linked``); a field is added through the HTTP
endpoint and the ``quick_sync`` timer fired. Pages of more than ``QUICK_SYNC_BULK_MIN`` persons go through
``/bulk/v1/leads.json`` with ``lookupField=id``; their baselines are saved in batch transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench.quicksync import CountingRows, seed_linked
from local.stack import LocalStack
from shared.errors import RetryLater
from shared.marketo.bulk import ImportFileBuilder, import_files
from shared.marketo.models import ImportStatus
from shared.pipeline.quicksync.jobs import JobState, list_jobs
from shared.store.link_keys import SHARDS
from tests.pipeline.test_quicksync import add_field, jobs
from tests.stacks import running_stack

COUNT = 1500
SUBMIT = "POST /bulk/v1/leads.json"
SYNC = "POST /rest/v1/leads.json"
SMALL_FILE = 5000  # bytes: a page of 1,500 persons makes several import files
FIELD = {"dynamics": "new_tier", "marketo": "tier", "create_marketo_field": True}


class Time:
    """One clock for the product's clients and the simulated tenants: waiting moves it."""

    def __init__(self) -> None:
        self.now = 1_767_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def bulk_stack() -> Iterator[LocalStack]:
    clock = Time()
    with running_stack(
        sleep=clock.sleep, monotonic=clock, tenant_clock=clock, overrides={"QUICK_SYNC_BULK_MIN": "1000"}
    ) as stack:
        assert stack.tenants is not None
        stack.tenants.marketo.configure_webhook(None, None)  # the live sync's echo handling is not under test
        yield stack


def tier(i: int) -> str:
    return f"Tier {i % 7}"


def seeded(stack: LocalStack, count: int = COUNT) -> tuple[list[str], dict[str, int]]:
    ids = seed_linked(stack, count, "new_tier", tier)
    links = stack.services.store.get_links("contact", ids)
    return ids, {rid: int(str(links[rid].marketo_id)) for rid in ids}


def calls(stack: LocalStack) -> dict[str, int]:
    assert stack.tenants is not None
    return stack.tenants.marketo.call_counts()


def tiers(stack: LocalStack, persons: dict[str, int]) -> dict[str, Any]:
    assert stack.tenants is not None
    mk = stack.tenants.marketo
    return {rid: (mk.lead(pid) or {}).get("tier") for rid, pid in persons.items()}


def expected(ids: list[str]) -> dict[str, Any]:
    return {rid: tier(i) for i, rid in enumerate(ids)}


def small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import files of at most :data:`SMALL_FILE` bytes: a page of 1,500 persons makes several import jobs."""

    def small(columns: Any, *, max_bytes: int = SMALL_FILE) -> ImportFileBuilder:
        return ImportFileBuilder(columns, max_bytes=min(max_bytes, SMALL_FILE))

    monkeypatch.setattr("shared.pipeline.quicksync.backfill.ImportFileBuilder", small)


def test_a_large_page_of_persons_goes_through_bulk_import(bulk_stack: LocalStack) -> None:
    ids, persons = seeded(bulk_stack)
    status, body = add_field(bulk_stack, "contact", FIELD)
    assert status == 202, body
    counting = CountingRows(bulk_stack.services.store.rows)
    bulk_stack.services.store.rows = counting
    before = calls(bulk_stack)

    bulk_stack.host.fire("quick_sync")

    after = calls(bulk_stack)
    assert tiers(bulk_stack, persons) == expected(ids)
    assert after.get(SYNC, 0) == before.get(SYNC, 0), "no 300-record sync calls"
    assert after[SUBMIT] - before.get(SUBMIT, 0) == 1
    (job,) = jobs(bulk_stack)
    assert (job["state"], job["records_done"], job["records_failed"]) == ("done", COUNT, 0)
    assert job["import_batches"] == []
    links = bulk_stack.services.store.get_links("contact", ids)
    assert all(links[rid].baseline["new_tier"] == tier(i) for i, rid in enumerate(ids))
    # baselines in transactions of up to 100 per partition, a chunk of links at a time: never a write per record
    assert counting.requests["write_many"] <= COUNT // 100 + 2 * SHARDS, "baselines in transactions"
    assert counting.requests["replace"] <= 10, "no write per record"
    assert counting.requests["upsert"] == 0, "the Marketo-id index is left alone"


def test_a_failed_import_row_becomes_a_sync_error_naming_its_record(bulk_stack: LocalStack) -> None:
    ids, persons = seeded(bulk_stack)
    assert bulk_stack.tenants is not None
    gone = ids[7]
    bulk_stack.tenants.marketo.delete_lead(persons[gone])  # deleted in Marketo: lookupField=id finds no person
    add_field(bulk_stack, "contact", FIELD)

    bulk_stack.host.fire("quick_sync")

    (job,) = jobs(bulk_stack)
    assert (job["state"], job["records_done"], job["records_failed"]) == ("done", COUNT - 1, 1)
    errors = bulk_stack.services.store.list_errors(entity="contact")
    assert [(e.record_id, e.operation, e.code, e.field) for e in errors] == [
        (gone, "quick_sync", "bulk-import-failed", "new_tier")
    ]
    assert errors[0].message.startswith("Quick Sync: ")
    link = bulk_stack.services.store.get_link("contact", gone)
    assert link is not None
    assert "new_tier" not in link.baseline, "a failed row keeps its old baseline"
    assert calls(bulk_stack).get(SUBMIT) == 1
    assert "POST /rest/v1/leads.json" not in calls(bulk_stack)


def crash_once(stack: LocalStack, when: Callable[[ImportStatus], bool], error: Callable[[], Exception]) -> list[int]:
    """The product's Marketo client raises ``error()`` once, the first time a status poll answers ``when``."""
    client = stack.services.backfill  # the job runner's client: the backfill lane of the budget
    real = client.import_status
    seen: list[int] = []

    def status(batch_id: int) -> ImportStatus:
        answer = real(batch_id)
        if not seen and when(answer):
            seen.append(batch_id)
            raise error()
        return answer

    client.import_status = status  # type: ignore[method-assign]
    return seen


def test_a_crash_after_the_first_import_finished_resumes_without_submitting_it_again(
    bulk_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(monkeypatch)
    ids, persons = seeded(bulk_stack)
    add_field(bulk_stack, "contact", FIELD)
    crashed = crash_once(bulk_stack, lambda s: s.finished, lambda: RuntimeError("the process died"))

    with pytest.raises(RuntimeError, match="the process died"):
        bulk_stack.host.fire("quick_sync")

    (job,) = list_jobs(bulk_stack.services.store)
    assert job.state is JobState.RUNNING
    assert job.import_batches[0] == crashed[0], "the finished batch is in the checkpoint"
    assert job.next_link is None, "the page is not passed before its baselines are saved"
    assert job.import_pages == 1
    submitted = calls(bulk_stack)[SUBMIT]
    assert submitted == len(job.import_batches) == 2, "two jobs open at most"

    bulk_stack.restart(keep_queue=True)  # a fresh process over the same store and tenants
    bulk_stack.tenants.marketo.configure_webhook(None, None)  # type: ignore[union-attr]
    bulk_stack.host.fire("quick_sync")

    (done,) = list_jobs(bulk_stack.services.store)
    assert (done.state, done.records_done, done.records_failed) == (JobState.DONE, COUNT, 0)
    files = len(
        import_files([{"id": p, "tier": tier(i)} for i, p in enumerate(persons.values())], max_bytes=SMALL_FILE)
    )
    assert files > 2
    assert calls(bulk_stack)[SUBMIT] == files, "every file submitted once: the finished ones were not re-imported"
    assert tiers(bulk_stack, persons) == expected(ids)


def test_an_outage_mid_import_leaves_the_job_resumable_and_it_completes_after(
    bulk_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(monkeypatch)
    ids, persons = seeded(bulk_stack)
    add_field(bulk_stack, "contact", FIELD)
    assert bulk_stack.tenants is not None
    mk = bulk_stack.tenants.marketo
    crash_once(bulk_stack, lambda s: True, lambda: (mk.outage(36_000), RetryLater("Marketo is down"))[1])

    bulk_stack.host.fire("quick_sync")  # the timer notes the outage and returns

    (job,) = list_jobs(bulk_stack.services.store)
    assert job.state is JobState.RUNNING
    assert "Marketo is down" in (job.last_error or "")
    assert job.import_batches
    assert job.records_done == 0
    submitted = calls(bulk_stack)[SUBMIT]

    bulk_stack.host.fire("quick_sync")  # still down: the client gives up, the job waits with the error noted
    (still,) = list_jobs(bulk_stack.services.store)
    assert still.state is JobState.RUNNING
    assert still.import_batches == job.import_batches
    assert calls(bulk_stack)[SUBMIT] == submitted

    mk.faults.clear(gateway=True)  # Marketo is back
    bulk_stack.host.fire("quick_sync")

    (done,) = list_jobs(bulk_stack.services.store)
    assert (done.state, done.records_done, done.last_error) == (JobState.DONE, COUNT, None)
    files = len(
        import_files([{"id": p, "tier": tier(i)} for i, p in enumerate(persons.values())], max_bytes=SMALL_FILE)
    )
    assert calls(bulk_stack)[SUBMIT] == files, "no file imported twice"
    assert tiers(bulk_stack, persons) == expected(ids)


def test_records_the_sync_filter_keeps_out_are_left_alone_by_bulk_import(bulk_stack: LocalStack) -> None:
    ids, persons = seeded(bulk_stack)
    assert bulk_stack.tenants is not None
    dv = bulk_stack.tenants.dataverse
    out = ids[:3]
    for rid in out:
        dv.user_update("contact", rid, {"new_synctomkto": False}, user_id=bulk_stack.tenants.admin_user_id)
    add_field(bulk_stack, "contact", FIELD)

    bulk_stack.host.fire("quick_sync")

    (job,) = jobs(bulk_stack)
    assert (job["state"], job["records_done"], job["records_filtered"]) == ("done", COUNT - 3, 3)
    found = tiers(bulk_stack, persons)
    assert [found[rid] for rid in out] == [None, None, None]
    assert calls(bulk_stack).get(SUBMIT) == 1


def test_a_run_out_of_time_while_marketo_imports_leaves_the_batch_to_the_next_run() -> None:
    clock = Time()
    options: dict[str, Any] = {"QUICK_SYNC_BULK_MIN": "1000", "QUICK_SYNC_BUDGET_SECONDS": "0.000001"}
    with running_stack(sleep=clock.sleep, monotonic=clock, tenant_clock=clock, overrides=options) as stack:
        assert stack.tenants is not None
        stack.tenants.marketo.configure_webhook(None, None)
        ids, persons = seeded(stack)
        add_field(stack, "contact", FIELD)

        stack.host.fire("quick_sync")  # submits, finds the import running, and stops: the budget is spent

        (job,) = list_jobs(stack.services.store)
        assert job.state is JobState.RUNNING
        assert len(job.import_batches) == 1
        assert job.records_done == 0
        pages = dict(stack.tenants.dataverse.calls)

        stack.host.fire("quick_sync")  # still importing (no time passed): polled, nothing read again
        assert dict(stack.tenants.dataverse.calls) == pages

        clock.sleep(60)
        stack.host.fire("quick_sync")

        (done,) = list_jobs(stack.services.store)
        assert (done.state, done.records_done) == (JobState.DONE, COUNT)
        assert calls(stack)[SUBMIT] == 1
        assert tiers(stack, persons) == expected(ids)


def test_pages_that_changed_since_their_files_were_submitted_are_written_the_ordinary_way(
    bulk_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(monkeypatch)
    ids, persons = seeded(bulk_stack)
    add_field(bulk_stack, "contact", FIELD)
    crash_once(bulk_stack, lambda s: s.finished, lambda: RuntimeError("the process died"))
    with pytest.raises(RuntimeError, match="the process died"):
        bulk_stack.host.fire("quick_sync")
    submitted = calls(bulk_stack)[SUBMIT]
    assert bulk_stack.tenants is not None
    changed = ids[1200]  # in a file not submitted yet
    bulk_stack.tenants.dataverse.seed("contact", {"new_tier": "Changed"}, record_id=changed)  # no webhook

    bulk_stack.restart(keep_queue=True)
    bulk_stack.tenants.marketo.configure_webhook(None, None)
    before = calls(bulk_stack).get(SYNC, 0)
    bulk_stack.host.fire("quick_sync")

    (done,) = list_jobs(bulk_stack.services.store)
    assert (done.state, done.records_done, done.records_failed) == (JobState.DONE, COUNT, 0)
    assert calls(bulk_stack)[SUBMIT] == submitted, "the rebuilt files differ: none submitted again"
    assert calls(bulk_stack).get(SYNC, 0) - before == -(-COUNT // 300), "the group written by 300-record syncs"
    want = {**expected(ids), changed: "Changed"}
    assert tiers(bulk_stack, persons) == want
    links = bulk_stack.services.store.get_links("contact", ids)
    assert links[changed].baseline["new_tier"] == "Changed"
