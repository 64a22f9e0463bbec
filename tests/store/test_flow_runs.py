"""Flow-step runs on both backends: a run and its open marker are written and cleared together."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.errors import Conflict
from shared.store.base import StateStore
from shared.store.flow_runs import FlowRun, FlowRuns, RunState

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _run(key: str) -> FlowRun:
    return FlowRun(key, "create-task", "42", {"personId": 42, "subject": "Call"}, AT, due_at=AT)


def test_a_run_is_added_once_and_listed_open_until_finished(store: StateStore) -> None:
    runs = FlowRuns(store.rows)
    first, new = runs.add(_run("k1"))
    again, new_again = runs.add(_run("k1"))
    assert (new, new_again) == (True, False)
    assert again.etag == first.etag
    runs.add(_run("k2"))
    assert list(runs.open_keys(10)) == ["k1", "k2"]
    done = runs.finish(replace(first, state=RunState.DONE, outcome={"status": "created"}))
    assert list(runs.open_keys(10)) == ["k2"]
    stored = runs.get("k1")
    assert stored is not None
    assert (stored.state, stored.outcome, stored.etag) == (RunState.DONE, {"status": "created"}, done.etag)


def test_finishing_on_a_stale_etag_changes_nothing(store: StateStore) -> None:
    runs = FlowRuns(store.rows)
    run, _ = runs.add(_run("k3"))
    runs.save(replace(run, attempts=1))
    with pytest.raises(Conflict):
        runs.finish(replace(run, state=RunState.DONE))
    assert list(runs.open_keys(10)) == ["k3"]
