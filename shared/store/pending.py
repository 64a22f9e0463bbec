"""Pending marks in the state store: one row per record (partition = entity or "person"), written in batches.

Every write is conditional on the row's ETag (or on its absence), so two instances marking, deferring or
clearing the same record cannot lose each other's change: the loser gets :class:`Conflict` and decides again
from a fresh read. The rules of what a mark becomes are pure (:mod:`shared.core.pending`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from shared.core.pending import MarkKey, PendingMark
from shared.store.base import PENDING, Row, Rows, Write


def _doc(mark: PendingMark) -> dict[str, Any]:
    return {
        "notification": mark.notification,
        "deleted": mark.deleted,
        "first_seen": mark.first_seen.isoformat(),
        "last_seen": mark.last_seen.isoformat(),
        "version": mark.version,
        "next_due_at": mark.next_due_at.isoformat(),
        "attempts": mark.attempts,
        "last_error": mark.last_error,
        "waiting_on": mark.waiting_on,
        "resends": mark.resends,
        "parked": mark.parked,
    }


def _mark(row: Row) -> PendingMark:
    doc = row.doc
    return PendingMark(
        key=MarkKey(row.pk, row.rk),
        notification=str(doc["notification"]),
        deleted=bool(doc.get("deleted")),
        first_seen=datetime.fromisoformat(doc["first_seen"]),
        last_seen=datetime.fromisoformat(doc["last_seen"]),
        version=int(doc["version"]),
        next_due_at=datetime.fromisoformat(doc["next_due_at"]),
        attempts=int(doc.get("attempts", 0)),
        last_error=doc.get("last_error"),
        waiting_on=doc.get("waiting_on"),
        resends=int(doc.get("resends", 0)),  # rows written before the cap: no re-send counted yet
        parked=bool(doc.get("parked", False)),
        etag=row.etag,
    )


class PendingMarks:
    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def get_many(self, keys: Iterable[MarkKey]) -> dict[MarkKey, PendingMark]:
        """The marks that exist among ``keys``: one read per partition (as few round trips as the backend
        allows)."""
        by_partition: dict[str, set[str]] = defaultdict(set)
        for key in keys:
            by_partition[key.partition].add(key.record_id)
        found: dict[MarkKey, PendingMark] = {}
        for partition, ids in by_partition.items():
            for row in self.rows.get_many(PENDING, partition, ids).values():
                mark = _mark(row)
                found[mark.key] = mark
        return found

    def save_many(self, marks: Sequence[PendingMark]) -> None:
        """Insert (``etag`` None) or conditionally replace, per partition in batch transactions."""
        self._write(
            marks,
            lambda m: (
                Write("replace", m.key.record_id, _doc(m), m.etag)
                if m.etag
                else Write("insert", m.key.record_id, _doc(m))
            ),
        )

    def delete_many(self, marks: Sequence[PendingMark]) -> None:
        """Delete each mark only if it is still the row that was read (its ETag)."""
        self._write(marks, lambda m: Write("delete", m.key.record_id, None, m.etag))

    def _write(self, marks: Sequence[PendingMark], write: Any) -> None:
        by_partition: dict[str, list[Write]] = defaultdict(list)
        for mark in marks:
            by_partition[mark.key.partition].append(write(mark))
        for partition, writes in by_partition.items():
            self.rows.write_many(PENDING, partition, writes)

    def all(self) -> Iterator[PendingMark]:
        for row in self.rows.query(PENDING):
            yield _mark(row)
