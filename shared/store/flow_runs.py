"""Marketo flow-step runs: the record of each accepted call, kept before its message is queued.

One partition (``flowstep`` of the control table) holds two rows per run: ``run:<key>`` (the request, its state,
its outcome) and, while the run is not finished, ``open:<key>``. Both are written in one batch transaction, and a
finished run replaces the first and deletes the second in another: the sweep finds every unfinished run with one
prefix query, and a crash between any two steps leaves a run either open or finished, never lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.errors import Conflict
from shared.store.base import CONTROL, Rows, Write

PARTITION = "flowstep"
RUN = "run:"
OPEN = "open:"


class RunState(StrEnum):
    QUEUED = "queued"  # accepted, not finished: the sweep re-sends it when it is due
    DONE = "done"
    FAILED = "failed"  # finished with a sync error (a retry of the same request does not run it again)


@dataclass(frozen=True, slots=True)
class FlowRun:
    key: str
    step: str
    person_id: str
    request: dict[str, Any]
    received_at: datetime
    state: RunState = RunState.QUEUED
    attempts: int = 0
    due_at: datetime | None = None  # the sweep re-sends it from then on (None: at once)
    outcome: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    etag: str | None = None

    @property
    def finished(self) -> bool:
        return self.state is not RunState.QUEUED


def _doc(run: FlowRun) -> dict[str, Any]:
    return {
        "step": run.step,
        "person_id": run.person_id,
        "request": run.request,
        "received_at": run.received_at.isoformat(),
        "state": run.state.value,
        "attempts": run.attempts,
        "due_at": run.due_at.isoformat() if run.due_at else None,
        "outcome": run.outcome,
        "error": run.error,
    }


def _run(key: str, doc: Mapping[str, Any], etag: str) -> FlowRun:
    due = doc.get("due_at")
    return FlowRun(
        key=key,
        step=str(doc["step"]),
        person_id=str(doc["person_id"]),
        request=dict(doc.get("request") or {}),
        received_at=datetime.fromisoformat(doc["received_at"]),
        state=RunState(doc.get("state", RunState.QUEUED.value)),
        attempts=int(doc.get("attempts") or 0),
        due_at=datetime.fromisoformat(due) if due else None,
        outcome=dict(doc.get("outcome") or {}),
        error=doc.get("error"),
        etag=etag,
    )


class FlowRuns:
    """The runs over the store's rows (Azure Tables or SQLite alike)."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def add(self, run: FlowRun) -> tuple[FlowRun, bool]:
        """Record a new run (and its open marker) at once; an existing run of that key is returned instead,
        with False: the same flow-step run delivered again."""
        writes = [Write("insert", RUN + run.key, _doc(run)), Write("insert", OPEN + run.key, {"key": run.key})]
        try:
            etags = self.rows.write_many(CONTROL, PARTITION, writes)
        except Conflict:
            existing = self.get(run.key)
            if existing is None:  # only the open marker was there (cannot happen through this class): retry
                raise
            return existing, False
        return replace(run, etag=etags[RUN + run.key]), True

    def get(self, key: str) -> FlowRun | None:
        row = self.rows.get(CONTROL, PARTITION, RUN + key)
        return _run(key, row.doc, row.etag) if row else None

    def save(self, run: FlowRun) -> FlowRun:
        """Keep an unfinished run's attempts and due time (on its ETag)."""
        etag = self.rows.replace(CONTROL, PARTITION, RUN + run.key, _doc(run), str(run.etag))
        return replace(run, etag=etag)

    def finish(self, run: FlowRun) -> FlowRun:
        """Save a finished run and drop its open marker in one transaction (on the run's ETag)."""
        writes = [Write("replace", RUN + run.key, _doc(run), run.etag)]
        marker = self.rows.get(CONTROL, PARTITION, OPEN + run.key)
        if marker is not None:
            writes.append(Write("delete", OPEN + run.key, etag=marker.etag))
        etags = self.rows.write_many(CONTROL, PARTITION, writes)
        return replace(run, etag=etags[RUN + run.key])

    def open_keys(self, limit: int) -> Iterator[str]:
        """The keys of unfinished runs, in key order."""
        for row in self.rows.query_range(CONTROL, PARTITION, OPEN, OPEN[:-1] + ";", limit=limit):
            yield row.rk.removeprefix(OPEN)
