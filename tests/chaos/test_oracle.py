"""The oracle's reading of the collision rules, as a table: what a field may hold once quiet, given its edits
(side, value, and how many batches or timer runs had worked when the edit was made)."""

from __future__ import annotations

from typing import Any

import pytest

from local.chaos.oracle import FieldLog, Tracked, compare
from local.chaos.plan import Record, Side


def _log(*edits: tuple[Side, str, int], settled: str = "old", known: bool = True) -> FieldLog:
    return FieldLog(settled, known, list(edits))


@pytest.mark.parametrize(
    ("entity", "log", "allowed"),
    [
        ("lead", _log(), {"old"}),
        ("lead", _log(known=False), None),
        ("lead", _log(("dynamics", "d1", 0), ("dynamics", "d2", 3)), {"d2"}),  # one side only: its last value
        ("contact", _log(("marketo", "m1", 0)), {"m1"}),
        ("lead", _log(("dynamics", "d1", 4), ("marketo", "m1", 4)), {"m1"}),  # a certain collision: Marketo wins
        ("lead", _log(("marketo", "m1", 4), ("dynamics", "d1", 4)), {"m1"}),
        ("contact", _log(("marketo", "m1", 4), ("dynamics", "d1", 4)), {"d1"}),  # Dynamics wins for contacts
        ("contact", _log(("dynamics", "d1", 4), ("marketo", "m1", 4)), {"d1"}),
        ("lead", _log(("dynamics", "d1", 1), ("marketo", "m1", 5)), {"m1"}),  # the winner edited last
        ("lead", _log(("marketo", "m1", 1), ("dynamics", "d1", 5)), {"m1", "d1"}),  # synced in between, or not
        ("contact", _log(("dynamics", "d1", 1), ("marketo", "m1", 5)), {"m1", "d1"}),
        ("account", _log(("dynamics", "d1", 1)), {"d1"}),
    ],
)
def test_what_a_field_may_hold(entity: str, log: FieldLog, allowed: set[str] | None) -> None:
    assert log.expected(entity) == allowed


def _tracked(**kw: Any) -> Tracked:
    return Tracked(Record("lead-0", "lead"), "id", "lead-0@chaos.example", {c: FieldLog("old") for c in ("jobtitle", "telephone1", "address1_city")}, **kw)  # fmt: skip


ROW = {"jobtitle": "old", "telephone1": "old", "address1_city": "old"}
PERSON = {"title": "old", "phone": "old", "city": "old"}


def test_a_record_in_step_with_nothing_changed_passes() -> None:
    found, settled = compare(_tracked(), ROW, PERSON, 1)
    assert found == []
    assert settled == ROW


def test_out_of_step_lost_duplicate_and_filter_are_named() -> None:
    assert [v.rule for v in compare(_tracked(), ROW, {**PERSON, "phone": "v9"}, 1)[0]] == ["out of step"]
    t = _tracked()
    t.fields["jobtitle"].edits.append(("dynamics", "v1", 0))
    assert [v.rule for v in compare(t, ROW, PERSON, 1)[0]] == ["lost"]
    assert [v.rule for v in compare(_tracked(), ROW, PERSON, 2)[0]] == ["duplicate person"]
    assert [v.rule for v in compare(_tracked(), ROW, None, 0)[0]] == ["lost"]
    hidden = _tracked(syncs=False, hidden={"v7"})
    assert [v.rule for v in compare(hidden, ROW, {**PERSON, "city": "v7"}, 1)[0]] == ["sync filter"]
    assert compare(hidden, ROW, {**PERSON, "city": "v6"}, 1)[0] == []  # filtered out: no in-step rule
