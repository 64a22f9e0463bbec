"""``validate --local`` and ``register --local``: the setup CLI against the tenants a local run is serving, over
real loopback HTTP, from the settings file the run wrote (as ``make run`` writes ``.local/run/settings.json``)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import function_app
from local.session import SESSION, SETTINGS, session_settings, write_session
from local.stack import LocalStack
from shared.core.mapping import SyncMapping, load_mapping
from shared.setup import local_target
from shared.setup.__main__ import main


@pytest.fixture
def settings_file(tmp_path: Path) -> Iterator[Path]:
    stack = LocalStack(function_app.app, port=0, run_timers=False).start()
    try:
        settings = session_settings(stack)
        assert settings is not None
        write_session(tmp_path / SESSION, settings)
        yield tmp_path / SESSION / SETTINGS
    finally:
        stack.stop()


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out, mapping=_mapping())
    return code, out.getvalue()


def _mapping() -> SyncMapping:
    return load_mapping((Path(__file__).resolve().parents[2] / "config" / "mapping.json").read_text())


def test_the_local_setup_validates_once_registered(settings_file: Path) -> None:
    code, out = _run("validate", "--local", str(settings_file), "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    assert checks["Dataverse credentials"]["status"] == "PASS"  # Entra's calls reached the Dataverse simulator
    assert checks["Marketo credentials"]["status"] == "PASS"
    assert [n for n, c in checks.items() if c["status"] != "PASS"] == ["Webhook registration"]

    code, out = _run("register", "--local", str(settings_file))
    assert code == 0, out
    local_hook = json.loads(settings_file.read_text())["DATAVERSE_WEBHOOK_URL"]
    assert local_hook in out  # registered for the local host's webhook, no --url needed

    code, out = _run("validate", "--local", str(settings_file))
    assert code == 0, out
    assert out.startswith(f"Validating the local setup of {settings_file}")
    assert out.rstrip().endswith("0 failed, 0 skipped")


def test_failing_credentials_skip_each_dependent_item_with_the_reason(settings_file: Path, tmp_path: Path) -> None:
    values = json.loads(settings_file.read_text())
    secret = "definitely-not-the-dataverse-secret"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**values, "DATAVERSE_CLIENT_SECRET": secret}))
    code, out = _run("validate", "--local", str(wrong))
    assert code == 1
    assert "  FAIL  Dataverse credentials" in out
    assert "  SKIP  Columns of contact: needs Dataverse credentials (they failed: invalid_client)" in out
    assert "  SKIP  Webhook registration: needs Dataverse credentials" in out
    assert "  PASS  Marketo person fields" in out  # Marketo is checked all the same
    assert secret not in out


def test_without_a_running_local_setup_it_says_what_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = _run("validate", "--local")
    assert code == 1
    assert "start `make run` (or `make sims`) first" in out
    with pytest.raises(local_target.NoLocalSettings):
        local_target.settings_file(str(tmp_path / "nothing.json"))


def test_a_local_settings_json_in_the_functions_form_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"DATAVERSE_URL": "http://127.0.0.1:1", "N": 3}}))
    assert local_target.read_values(path) == {"DATAVERSE_URL": "http://127.0.0.1:1"}
