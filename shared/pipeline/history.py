"""A record's history in the pipeline: a batch's entries written once at its end, a record's read back, old days
pruned (docs/record-history.md).

The reconcile builds the entries as it decides (``Batch.decided``, from each decision and the state it was made
from); :func:`record_history` settles each one's outcome (a sync error for the record in this batch: failed; put
back to be decided again: requeued) and writes them all, a few store requests per batch. The history is the
admin's audit trail, never the sync's state: when it cannot be written the batch still succeeds (a warning says
how many entries were lost, never what they held).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from shared.core.history import HistoryEntry, Outcome
from shared.errors import SyncError
from shared.store.base import StateStore
from shared.store.history import HistoryLog, Pruned, prune_before, retained_days

if TYPE_CHECKING:  # the reconcile imports this module: no import back at run time
    from shared.pipeline.reconcile.batch import BatchReport

log = logging.getLogger(__name__)

PRUNE_ROWS_PER_RUN = 200_000
"""At most this many history rows are deleted per prune run (about 2,000 store requests); a longer backlog of old
days goes on at the next run."""


def record_history(store: StateStore, report: BatchReport) -> int:
    """Write the batch's history entries with their outcomes; returns how many were written."""
    if not report.history:
        return 0
    failed = {(e.entity, e.record_id.lower()) for e in report.errors}
    entries = [entry.settled(_outcome(entry, failed, report.redecided)) for entry in report.history]
    try:
        return HistoryLog(store.rows).append(entries)
    except SyncError as exc:
        log.warning("record history: %d entries not written (%s)", len(entries), type(exc).__name__)
        return 0


def _outcome(entry: HistoryEntry, failed: set[tuple[str, str]], redecided: set[tuple[str, str]]) -> Outcome:
    key = (entry.entity, entry.dynamics_id)
    if key in redecided:
        return Outcome.REQUEUED
    if key in failed:
        return Outcome.FAILED
    return Outcome.DONE


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history is kept and shown: ``days`` UTC days, at most ``entries`` entries of a record."""

    days: int
    entries: int


def record_entries(
    store: StateStore, entity: str, dynamics_id: str, *, now: datetime, retention: Retention, limit: int | None = None
) -> list[HistoryEntry]:
    """A record's history, newest first: the retained days only, at most ``limit`` (capped by the retention)."""
    cap = min(limit or retention.entries, retention.entries)
    return HistoryLog(store.rows).for_record(entity, dynamics_id, retained_days(now, retention.days), cap)


def prune_history(store: StateStore, *, now: datetime, retention: Retention) -> Pruned:
    """Delete the days older than the retention (up to :data:`PRUNE_ROWS_PER_RUN` rows this run)."""
    return HistoryLog(store.rows).prune(prune_before(now, retention.days), max_rows=PRUNE_ROWS_PER_RUN)
