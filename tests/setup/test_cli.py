"""The CLI's inputs: a local.settings.json, a mapping file, and the URL rules."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from shared.setup.__main__ import UsageError, load_settings, main, webhook_url
from tests.setup.conftest import DATAVERSE, HOOK, MARKETO, ROOT, World


def test_settings_file_and_mapping_file(world: World, tmp_path: Path) -> None:
    values = world.tenants.environment(DATAVERSE, MARKETO)
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    settings = load_settings(str(settings_file))
    assert settings.dataverse_url == DATAVERSE
    assert settings.dataverse_webhook_secret.get_secret_value() == values["DATAVERSE_WEBHOOK_SECRET"]

    out = io.StringIO()
    argv = ["register", "--url", HOOK, "--settings-file", str(settings_file)]
    code = main([*argv, "--mapping-file", str(ROOT / "config" / "mapping.json")], http=world.http, out=out)
    assert code == 0, out.getvalue()
    steps = 3 * (len(world.mapping.entities) + 1)  # and the connection table's: an opportunity's stakeholders
    assert len(world.tenants.dataverse.rows("sdkmessageprocessingstep")) == steps


def test_a_bad_mapping_file_is_an_error_not_a_traceback(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "mapping.json"
    bad.write_text('{"entities": [{"entity": "lead", "fields": [{"dynamics": "x"}]}]}')
    out = io.StringIO()
    code = main(
        ["register", "--url", HOOK, "--mapping-file", str(bad)], settings=world.settings, http=world.http, out=out
    )
    assert code == 1
    assert out.getvalue().startswith("error: invalid sync mapping")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://app.example", "https://app.example/api/dataverse/webhook"),
        ("https://app.example/", "https://app.example/api/dataverse/webhook"),
        ("https://app.example/api/dataverse/webhook", "https://app.example/api/dataverse/webhook"),
        ("http://localhost:7071", "http://localhost:7071/api/dataverse/webhook"),
    ],
)
def test_webhook_url(world: World, given: str, expected: str) -> None:
    assert webhook_url(given, world.settings, "/api/dataverse/webhook") == expected


@pytest.mark.parametrize("given", ["http://app.example/api/dataverse/webhook", "app.example", None])
def test_webhook_url_refused(world: World, given: str | None) -> None:
    with pytest.raises(UsageError):
        webhook_url(given, world.settings, "/api/dataverse/webhook")
