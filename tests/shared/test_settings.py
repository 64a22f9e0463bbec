"""Settings: one object reads the environment; the sample documents every setting; secrets stay hidden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import Settings

SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "local.settings.sample.json").read_text())


def _env_names() -> set[str]:
    names = set()
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        assert choices, "every setting has an environment name"
        names.add(str(choices[0]))
    return names


def test_the_sample_lists_every_setting_with_a_description() -> None:
    missing = _env_names() - set(SAMPLE["Values"])
    assert not missing, f"local.settings.sample.json lacks {sorted(missing)}"
    undocumented = set(SAMPLE["Values"]) - set(SAMPLE["Descriptions"])
    assert not undocumented, f"no description for {sorted(undocumented)}"
    assert all(len(text) > 10 for text in SAMPLE["Descriptions"].values())


def test_the_sample_holds_no_secret_values() -> None:
    for name, value in SAMPLE["Values"].items():
        if "SECRET" in name or "CONNECTION_STRING" in name:
            assert value == "", name


def test_the_sample_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SAMPLE["Values"].items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.target == "simulated"
    assert settings.changes_queue == "sync-changes"


def test_secrets_never_show_in_repr_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETO_CLIENT_SECRET", "hunter2-marketo")
    monkeypatch.setenv("DATAVERSE_CLIENT_SECRET", "hunter2-dataverse")
    settings = Settings()
    assert settings.marketo_client_secret.get_secret_value() == "hunter2-marketo"
    text = repr(settings) + str(settings) + settings.model_dump_json()
    assert "hunter2" not in text


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETO_CALLS_PER_20S", "500")
    with pytest.raises(ValueError, match="MARKETO_CALLS_PER_20S"):
        Settings()


@pytest.mark.parametrize(("raw", "mode"), [("shared", "shared"), ("process", "process"), ("Local", "process")])
def test_both_budgets_take_the_same_modes(monkeypatch: pytest.MonkeyPatch, raw: str, mode: str) -> None:
    monkeypatch.setenv("DATAVERSE_BUDGET", raw)
    monkeypatch.setenv("MARKETO_BUDGET", raw)
    settings = Settings()
    assert (settings.dataverse_budget, settings.marketo_budget) == (mode, mode)


def test_an_unknown_budget_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETO_BUDGET", "everyone")
    with pytest.raises(ValueError, match=r"marketo_budget|MARKETO_BUDGET"):
        Settings()
