"""Bulk lead import through marketorestpython: a multipart file upload, ``format`` in the query string."""

from __future__ import annotations

from pathlib import Path

from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]

from local.simulators.marketo.simulator import MarketoSimulator
from tests.conformance.marketo.conftest import Wiretap
from tests.marketo_harness import FakeClock


def csv_file(tmp_path: Path, text: str, name: str = "leads.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_an_import_is_queued_then_completes_and_its_leads_are_there(
    mkto: MarketoClient, clock: FakeClock, tmp_path: Path, wire: Wiretap
) -> None:
    (job,) = mkto.import_lead("csv", csv_file(tmp_path, "email,firstName\na@x.com,A\nb@x.com,B\n"), lookupField="email")
    assert job["status"] in ("Queued", "Importing")
    assert job["importId"] == str(job["batchId"])
    sent = wire.to("/bulk/v1/leads.json")[0]
    assert sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.url.params["format"] == "csv"
    clock.advance(5)
    (status,) = mkto.get_import_lead_status(job["batchId"])
    assert (status["status"], status["numOfLeadsProcessed"], status["numOfRowsFailed"]) == ("Complete", 2, 0)
    found = mkto.get_multiple_leads_by_filter_type("email", ["a@x.com", "b@x.com"], fields=["firstName"])
    assert [lead["firstName"] for lead in found] == ["A", "B"]


def test_failed_and_truncated_rows_come_back_as_csv_files(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    rows = f"email,leadScore,externalCompanyId\nok@x.com,5,{'c' * 120}\nbad@x.com,lots,\n"
    (job,) = mkto.import_lead("csv", csv_file(tmp_path, rows))
    clock.advance(5)
    (status,) = mkto.get_import_lead_status(job["batchId"])
    assert (status["numOfRowsFailed"], status["numOfRowsWithWarning"]) == (1, 1)
    failures = mkto.get_import_failure_file(job["batchId"]).splitlines()
    assert failures[0] == "email,leadScore,externalCompanyId,Import Failure Reason"
    assert failures[1].startswith("bad@x.com,lots,")
    warnings = mkto.get_import_warning_file(job["batchId"]).splitlines()
    assert warnings[1].startswith("ok@x.com,5,")
    assert len(sim.find_leads("email", "ok@x.com")[0]["externalCompanyId"]) == 100


def test_two_imports_run_at_a_time_and_the_rest_wait_in_the_queue(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    sim.imports.import_seconds = 20.0  # longer than the client's paced calls take
    path = csv_file(tmp_path, "email\nq@x.com\n")
    ids = [mkto.import_lead("tsv", path)[0]["batchId"] for _ in range(3)]
    assert [mkto.get_import_lead_status(i)[0]["status"] for i in ids] == ["Importing", "Importing", "Queued"]
    clock.advance(30)
    assert [mkto.get_import_lead_status(i)[0]["status"] for i in ids] == ["Complete", "Complete", "Importing"]


def test_an_import_on_lookup_field_id_updates_existing_persons_only(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    first, second = sim.add_lead(email="one@x.com"), sim.add_lead(email="two@x.com")
    missing = second + 1000
    rows = f"id,firstName\n{first},Uno\n{second},Dos\n{missing},Nobody\n"
    (job,) = mkto.import_lead("csv", csv_file(tmp_path, rows), lookupField="id")
    clock.advance(5)
    (status,) = mkto.get_import_lead_status(job["batchId"])
    assert (status["status"], status["numOfLeadsProcessed"], status["numOfRowsFailed"]) == ("Complete", 2, 1)
    failures = mkto.get_import_failure_file(job["batchId"]).splitlines()
    assert failures[0] == "id,firstName,Import Failure Reason"
    assert failures[1].startswith(f"{missing},Nobody,")
    assert [sim.lead(first)["firstName"], sim.lead(second)["firstName"]] == ["Uno", "Dos"]  # type: ignore[index]
    assert sim.lead(missing) is None, "lookupField=id never creates a person"
