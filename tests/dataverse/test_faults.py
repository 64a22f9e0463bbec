"""Dataverse's answers become the product's error tree in one place; a vanished column is named, not guessed at.

Each recorded shape (tests/fixtures/dataverse) is classified as a value, then raised; the client tests below run
the same shapes end to end against the simulator, for reads, single writes and ``$batch`` parts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.dataverse.client import RecordUpdate
from shared.dataverse.faults import Action, ColumnRef, classify
from shared.errors import MissingColumn, SkipRecord
from tests.dataverse.conftest import Env

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dataverse"


def _recorded(name: str, status: int = 400) -> httpx.Response:
    payload: Any = json.loads((FIXTURES / name).read_text())
    return httpx.Response(status, json=payload)


@pytest.mark.parametrize(
    ("fixture", "missing"),
    [
        ("error_missing_property_select.json", ColumnRef("account", "Name")),
        ("error_missing_lookup_select.json", ColumnRef("lead", "new_regionid")),
        ("error_undeclared_property_write.json", ColumnRef("lead", "new_legacyscore")),
    ],
)
def test_a_400_naming_a_column_the_table_lacks_is_a_missing_column(fixture: str, missing: ColumnRef) -> None:
    fault = classify(_recorded(fixture))
    assert fault is not None
    assert (fault.action, fault.missing) == (Action.MISSING_COLUMN, missing)
    error = fault.error()
    assert isinstance(error, MissingColumn)
    assert (error.table, error.column) == (missing.table, missing.column)
    assert isinstance(error, SkipRecord)  # the rest of the batch goes on


def test_other_rejections_stay_plain_skips_even_when_they_quote_the_same_words() -> None:
    too_long = httpx.Response(
        400, json={"error": {"code": "0x80044331", "message": "The length of the 'jobtitle' attribute exceeded 10."}}
    )
    not_found = _recorded("error_not_found.json", status=404)
    for response in (too_long, not_found):
        fault = classify(response)
        assert fault is not None
        assert fault.missing is None
        error = fault.error()
        assert isinstance(error, SkipRecord)
        assert not isinstance(error, MissingColumn)
    server = classify(_recorded("error_missing_property_select.json", status=500))
    assert server is not None
    assert server.action is Action.RETRY


def _lead(env: Env) -> str:
    return env.sim.seed("lead", {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com"})


def test_reading_a_deleted_column_raises_missing_column_with_the_column_a_lookup_names(env: Env) -> None:
    lead = _lead(env)
    del env.sim.tables["lead"].columns["jobtitle"]
    with pytest.raises(MissingColumn) as plain:
        env.client.read_by_ids("lead", [lead], ["firstname", "jobtitle"])
    assert (plain.value.table, plain.value.column) == ("lead", "jobtitle")
    del env.sim.tables["lead"].columns["parentaccountid"]
    with pytest.raises(MissingColumn) as lookup:
        env.client.read_by_ids("lead", [lead], ["firstname", "_parentaccountid_value"])
    assert (lookup.value.table, lookup.value.column) == ("lead", "parentaccountid")


def test_writing_a_deleted_column_raises_missing_column_and_a_batch_part_carries_it(env: Env) -> None:
    lead = _lead(env)
    del env.sim.tables["lead"].columns["jobtitle"]
    with pytest.raises(MissingColumn) as single:
        env.client.update("lead", lead, {"jobtitle": "Engineer"})
    assert (single.value.table, single.value.column) == ("lead", "jobtitle")
    updates = [RecordUpdate(lead, {"firstname": "Grace"}), RecordUpdate(lead, {"jobtitle": "x"})]
    ok, gone = env.client.update_many("lead", updates)
    assert ok.ok
    assert gone.fault is not None
    assert gone.fault.missing == ColumnRef("lead", "jobtitle")
    assert env.sim.get("lead", lead)["firstname"] == "Grace"  # type: ignore[index]
