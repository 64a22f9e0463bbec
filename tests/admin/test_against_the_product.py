"""The CLI against the product through the local host: each command's call, its output and its exit code."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from local.stack import IN_PROCESS_HOST
from shared.admin.__main__ import main
from tests.admin.conftest import Product, run_cli
from tests.stacks import running_stack

ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}


def _bad_value(product: Product) -> str:
    """One open sync error: a title Marketo holds (150 characters) that the lead's jobtitle column (100) cannot."""
    world = product.world
    lead_id = world.create("lead", **ADA)
    world.settle()
    world.mk.change_lead(world.person(email="ada@example.com")["id"], title="x" * 150)
    world.settle()
    (error,) = world.store.list_errors()
    assert error.record_id == lead_id
    return error.id


def test_status_is_a_table_of_the_mapped_entities(product: Product) -> None:
    ran = product("status")
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].startswith("Sync status at ")
    assert lines[0].endswith(": running")
    assert "ENTITY" in lines[2]
    assert "BACKLOG" in lines[2]
    assert "FAILED 1H" in lines[2]
    entities = {line.split()[0] for line in lines[4:] if line and not line.startswith(" ")}
    assert {"lead", "contact", "account"} <= entities
    assert "." not in lines[0].split(" at ")[1].split(":")[0]  # no microseconds


def test_status_json_is_the_api_answer(product: Product) -> None:
    ran = product("status", "--json")
    assert ran.code == 0
    assert '"entities"' in ran.out


def test_pause_and_resume_one_entity_then_all(product: Product) -> None:
    assert product("pause", "--entity", "lead").out.strip() == "paused lead; now paused: lead"
    assert "PAUSED" in next(line for line in product("status").out.splitlines() if line.startswith("lead "))
    assert product("resume", "--entity", "lead").out.strip() == "resumed lead; now nothing paused"
    assert product("pause").out.strip() == "paused the whole sync; now ALL entities paused"
    assert "ALL paused" in product("status").out.splitlines()[0]
    assert product("resume").code == 0


def test_errors_list_export_and_retry(product: Product, tmp_path: Path) -> None:
    error_id = _bad_value(product)
    listed = product("errors", "list", "--entity", "lead")
    assert listed.code == 0, listed.err
    assert error_id in listed.out
    assert listed.out.splitlines()[-1] == "1 error(s)"
    assert product("errors", "list", "--entity", "contact").out.splitlines()[-1] == "0 error(s)"


def test_errors_export_writes_the_filtered_csv(product: Product, tmp_path: Path) -> None:
    error_id = _bad_value(product)
    exported = tmp_path / "errors.csv"
    ran = product("errors", "export", "--entity", "lead", "-o", str(exported))
    assert ran.code == 0
    assert ran.out.strip() == f"wrote 1 error(s) to {exported}"
    rows = list(csv.DictReader(io.StringIO(exported.read_text())))
    assert [r["id"] for r in rows] == [error_id]
    assert error_id in product("errors", "export").out


def test_errors_retry_one_and_all(product: Product) -> None:
    error_id = _bad_value(product)
    retried = product("errors", "retry", error_id)
    assert retried.code == 0, retried.err
    assert product("errors", "retry", "--all", "--entity", "lead").out.startswith("retry queued: ")


def test_errors_retry_needs_an_id_or_all(product: Product) -> None:
    ran = product("errors", "retry")
    assert ran.code == 2
    assert "errors retry ID" in ran.err


def test_fields_list_and_the_catalogue(product: Product) -> None:
    listed = product("fields", "list", "contact")
    assert listed.code == 0
    assert listed.out.splitlines()[0].startswith("contact -> Marketo person")
    assert any(line.split()[:2] == ["emailaddress1", "email"] for line in listed.out.splitlines())

    catalogue = product("fields", "list", "contact", "--catalogue")
    assert catalogue.code == 0, catalogue.err
    lines = catalogue.out.splitlines()
    assert lines[0] == "Columns of contact"
    secured = next(line for line in lines if line.startswith("new_nationalid "))
    assert "no" in secured.split()  # not readable by the sync user
    assert "the sync user cannot read" in secured
    assert lines[-1].endswith("mapped")

    unknown = product("fields", "list", "bogus", "--catalogue")
    assert (unknown.code, unknown.err.strip()) == (1, "error 404 not-found: the entity is not in the sync mapping")
    assert product("fields", "list", "bogus").code == 2


def test_fields_add_watch_and_remove(product: Product) -> None:
    added = product.watching(
        "fields", "add", "contact", "address1_line2", "--marketo", "address", "--one-way", "--watch"
    )
    assert added.code == 0, added.err
    lines = added.out.splitlines()
    assert lines[0] == "added contact.address1_line2 -> address (text)"
    assert lines[1].startswith("Quick Sync ")
    assert "quicksync watch " in lines[1]
    assert ": done  0/0  100%" in lines[-2]
    assert lines[-1].startswith("  Quick Sync done: contact.address1_line2 -> Marketo address: 0 records refreshed")
    assert "address1_line2" in product("fields", "list", "contact").out
    removed = product("fields", "remove", "contact", "address1_line2")
    assert (removed.code, removed.out.strip()) == (0, "removed contact.address1_line2 (was -> address)")
    assert product("fields", "remove", "contact", "address1_line2").code == 1


def test_quicksync_start_then_watch(product: Product) -> None:
    product.world.create("contact", **ADA)
    product.world.settle()
    started = product("quicksync", "start", "contact", "jobtitle")
    assert started.code == 0, started.err
    assert started.out.startswith("quick sync contact.jobtitle (")
    job_id = product.world.call("GET", "jobs").json()["jobs"][0]["id"]
    watched = product.watching("quicksync", "watch", job_id)
    assert watched.code == 0, watched.err
    assert ": done  1/1  100%" in watched.out.splitlines()[-2]
    assert product("quicksync", "watch").out.strip() == "no Quick Sync is queued or running"
    assert product("quicksync", "start", "contact", "bogus").code == 1


def test_resync_of_a_date_range_watched_to_the_end(product: Product) -> None:
    product.world.create("lead", **ADA)
    product.world.settle()
    ran = product.watching("resync", "lead", "--from", "2026-01-01", "--to", "2099-12-31", "--watch")
    assert ran.code == 0, ran.err
    first, *_, done, notice = ran.out.splitlines()
    assert first.startswith("resync lead (")
    assert "scope modified, mode both_ways" in first
    assert ": done  1/1  100%" in done
    assert notice.startswith("  Resync done: lead, 1 records queued for a reconcile both ways")
    refused = product("resync", "bogus")
    assert refused.code == 1
    assert "the entity is not in the sync mapping" in refused.err


def test_record_history_of_a_lead(product: Product) -> None:
    lead_id = product.world.create("lead", **ADA)
    product.world.settle()
    ran = product("record", "ada@example.com")
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0] == "lead Ada Lovelace <ada@example.com>"
    assert lead_id in lines[1]
    assert any(line.startswith("History (") for line in lines)
    assert any(line.strip().startswith("jobtitle ") for line in lines)
    assert product("record", lead_id, "--json").out.lstrip().startswith("{")
    assert product("record", "nobody@example.com").code == 1


def test_errors_ignore_and_resolve(product: Product) -> None:
    error_id = _bad_value(product)
    assert product("errors", "ignore", error_id).out.strip() == f"error {error_id}: ignored"
    assert product("errors", "resolve", error_id).out.strip() == f"error {error_id}: resolved"
    assert product("errors", "list", "--status", "open").out.splitlines()[-1] == "0 error(s)"
    assert product("errors", "resolve", "no-such-error").code == 1


def test_fields_add_without_quick_sync_sends_a_window_from_now(product: Product) -> None:
    ran = product("fields", "add", "contact", "address1_line2", "--marketo", "address", "--no-quick-sync")
    assert ran.code == 0, ran.err
    assert "records modified from now on only" in ran.out
    (job,) = [j for j in product.world.call("GET", "quicksync").json()["jobs"] if j["column"] == "address1_line2"]
    assert job["modified_from"] == "2026-12-01T12:00:00Z"


def test_a_refusal_prints_the_code_and_message(product: Product) -> None:
    ran = product("fields", "add", "contact", "new_doesnotexist", "--marketo", "nothing")
    assert ran.code == 1
    assert ran.err.startswith("error 422 column-not-found: contact.new_doesnotexist: the column does not exist")
    assert ran.out == ""


def test_deadletters_list_and_replay_all(product: Product) -> None:
    listed = product("deadletters", "list")
    assert listed.code == 0, listed.err
    assert listed.out.splitlines()[-1].startswith("0 dead letter(s) on ")
    replayed = product("deadletters", "replay", "--all")
    assert replayed.out.startswith("replayed 0 dead letter(s)")
    missing = product("deadletters", "replay", "no-such-id")
    assert (missing.code, missing.err.split(":")[0]) == (1, "error 404 not-found")


def test_the_function_key_is_sent_and_never_printed() -> None:
    key = "k3y-" + "s" * 40
    with running_stack(overrides={"LOCAL_FUNCTIONS_KEY": key}) as stack:
        transport = httpx.MockTransport(stack.host.handle_http)
        without = run_cli(transport, "status")
        assert without.code == 1
        assert without.err.startswith("error 401 unauthorized")
        ran = run_cli(transport, "status", env={"SYNC_FUNCTION_KEY": key})
        assert ran.code == 0, ran.err
        wrong = run_cli(transport, "pause", env={"SYNC_FUNCTION_KEY": key + "x"})
        for output in (without, ran, wrong):
            assert key not in output.out + output.err


def test_an_unreachable_app_names_the_url() -> None:
    err = io.StringIO()
    code = main(["--url", "http://127.0.0.1:9", "status"], env={"SYNC_FUNCTION_KEY": "secret-key"}, err=err)
    assert code == 3
    assert err.getvalue().startswith("error: cannot reach the app at http://127.0.0.1:9: ")
    assert "secret-key" not in err.getvalue()


def test_the_url_comes_from_the_environment_and_keeps_no_query(product: Product) -> None:
    env = {"SYNC_URL": IN_PROCESS_HOST + "/api/"}
    out = io.StringIO()
    assert main(["status"], transport=product.transport(), env=env, out=out) == 0
    err = io.StringIO()
    assert main(["--url", IN_PROCESS_HOST + "/?code=abc", "status"], env={}, err=err) == 2
    assert "SYNC_FUNCTION_KEY" in err.getvalue()
    assert "abc" not in err.getvalue()


@pytest.mark.parametrize(
    "command",
    [
        [], ["status"], ["pause"], ["resume"], ["errors"], ["errors", "list"], ["errors", "export"],
        ["errors", "retry"], ["errors", "ignore"], ["errors", "resolve"], ["fields"], ["fields", "list"],
        ["fields", "add"], ["fields", "remove"], ["quicksync"], ["quicksync", "start"], ["quicksync", "watch"],
        ["resync"], ["deadletters"], ["deadletters", "list"], ["deadletters", "replay"], ["deadletters", "discard"],
        ["record"],
    ],
)  # fmt: skip
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m shared.admin")
    assert "options:" in shown


def test_a_bad_command_line_is_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resync", "lead", "--mode", "sideways"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_module_runs_as_the_docs_write_it() -> None:
    """`.venv/bin/python -m shared.admin --help`, from the repository's root, as README and docs/cli.md show it."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "shared.admin", "--help"], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m shared.admin")
    assert "Exit codes: 0 done, 1 the app refused" in done.stdout
