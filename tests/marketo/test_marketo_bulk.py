from __future__ import annotations

import csv
import io

import pytest

from shared.errors import SkipRecord
from shared.marketo.bulk import import_files
from shared.marketo.models import ImportState
from tests.marketo_harness import Harness

SUBMIT = "POST /bulk/v1/leads.json"


def test_import_leads_runs_to_completion_with_failures_and_warnings(h: Harness) -> None:
    rows = [{"email": f"r{i}@example.com", "firstName": f"R{i}", "leadScore": i} for i in range(1000)]
    rows[10]["leadScore"] = "not-a-number"
    rows[20]["firstName"] = "F" * 300  # longer than the field: truncated, with a warning
    [status] = h.client.import_leads(rows, poll_interval=0.5)
    assert status.status is ImportState.COMPLETE
    assert (status.leads_processed, status.rows_failed, status.rows_with_warning) == (999, 1, 1)
    failures = list(csv.DictReader(io.StringIO(h.client.import_failures(status.batch_id))))
    assert [row["email"] for row in failures] == ["r10@example.com"]
    assert "leadScore" in failures[0]["Import Failure Reason"]
    warnings = list(csv.DictReader(io.StringIO(h.client.import_warnings(status.batch_id))))
    assert [row["email"] for row in warnings] == ["r20@example.com"]
    assert len(h.sim.find_leads("email", "r999@example.com")) == 1
    assert h.sim.calls[SUBMIT] == 1


def test_large_imports_are_split_and_at_most_two_jobs_are_open(h: Harness) -> None:
    rows = [{"email": f"s{i}@example.com", "city": "Lyon"} for i in range(900)]
    statuses = h.client.import_leads(rows, max_file_bytes=6_000, poll_interval=0.5)
    assert len(statuses) == h.sim.calls[SUBMIT] > 3
    assert all(s.status is ImportState.COMPLETE for s in statuses)
    assert sum(s.leads_processed for s in statuses) == 900
    assert h.sim.imports.peak_in_system <= 2


def test_files_of_10_mb_are_refused_before_any_call(h: Harness) -> None:
    with pytest.raises(SkipRecord, match="10 MB"):
        h.client.submit_lead_import(b"email\n" + b"x" * (10 * 1024 * 1024))
    assert h.sim.calls[SUBMIT] == 0


def test_full_import_queue_1016_waits_and_retries(h: Harness) -> None:
    for _ in range(10):  # other integrations filled Marketo's queue (10 jobs)
        h.sim.imports.submit(b"email\nother@example.com\n", "csv", "email", h.clock.time())
    batch_id = h.client.submit_lead_import(b"email\nmine@example.com\n")
    assert h.client.retries["1016"] >= 1
    status = h.client.wait_for_import(batch_id, poll_interval=1.0)
    assert status.status is ImportState.COMPLETE


def test_import_files_split_under_the_limit_with_headers() -> None:
    rows = [{"email": f"{i}@example.com", "note": 'a,b "quoted"'} for i in range(100)]
    files = import_files(rows, max_bytes=1_000)
    assert len(files) > 1
    assert all(len(f) <= 1_000 and f.startswith(b"email,note\n") for f in files)
    parsed = [row for f in files for row in csv.DictReader(io.StringIO(f.decode()))]
    assert parsed == [{k: str(v) for k, v in row.items()} for row in rows]
    with pytest.raises(ValueError, match="too large"):
        import_files([{"email": "x" * 2_000}], max_bytes=1_000)
