"""The history table: a record's history entries, one partition per UTC day.

Row key ``{entity}|{dynamics id}|{inverted time}|{seq}``: within a day's partition a record's entries sit
together, newest first, so reading a record's history is one prefix query per retained day, and a batch's
entries (one day, mostly) go out as :meth:`~shared.store.base.Rows.write_many` requests of up to 100 rows.
``seq`` is the entry's place in its batch and a random tag, so two instances writing at the same millisecond
keep both entries.

Each day also gets a marker row (partition ``days``), written once per process and day, so pruning knows which
day partitions exist without scanning the table; a day older than the retention is deleted page by page, its
marker last.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from shared.core.history import HistoryEntry
from shared.store.base import BATCH_LIMIT, HISTORY, Rows, Write, dumps

DAYS: Final = "days"
"""The partition of the day markers (a day's partition key is ``YYYYMMDD``, so it can never be one)."""
REQUEST_BYTES: Final = 2_000_000
"""A write request carries at most about this much JSON (an Azure Table batch holds at most 4 MiB)."""
_EPOCH_MS_LIMIT: Final = 10**15  # inverted millisecond times stay 15 digits wide (until the year 33658)
_marked: dict[int, tuple[weakref.ref[object], set[str]]] = {}  # by id(rows): the days this process marked
_marked_lock = threading.Lock()


def day_key(at: datetime | date) -> str:
    """The partition of a UTC day: ``20261201``."""
    if isinstance(at, datetime):
        at = at.astimezone(UTC).date()
    return at.strftime("%Y%m%d")


def prefix_range(prefix: str) -> tuple[str, str]:
    """``(ge, lt)`` of the row keys that start with ``prefix`` (not empty)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def record_prefix(entity: str, dynamics_id: str) -> str:
    return f"{entity}|{dynamics_id.lower()}|"


def _row_key(entry: HistoryEntry, seq: int, tag: str) -> str:
    inverted = _EPOCH_MS_LIMIT - int(entry.at.timestamp() * 1000)
    return f"{record_prefix(entry.entity, entry.dynamics_id)}{inverted:015d}|{seq:05d}{tag}"


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one prune run deleted; ``left`` days are older than the retention and not empty yet (the next run
    goes on)."""

    days: tuple[str, ...] = ()
    rows: int = 0
    left: tuple[str, ...] = ()


class HistoryLog:
    """Append a batch's entries, read one record's, and prune old days."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def append(self, entries: Sequence[HistoryEntry]) -> int:
        """Write the entries (each day's in as few requests as :data:`BATCH_LIMIT` and :data:`REQUEST_BYTES`
        allow); returns how many rows were written."""
        if not entries:
            return 0
        tag = secrets.token_hex(3)
        by_day: dict[str, list[Write]] = defaultdict(list)
        for seq, entry in enumerate(entries):
            by_day[day_key(entry.at)].append(Write("upsert", _row_key(entry, seq, tag), entry.as_doc()))
        for day, writes in by_day.items():
            self._mark(day)
            for chunk in _requests(writes):
                self.rows.write_many(HISTORY, day, chunk)
        return len(entries)

    def _mark(self, day: str) -> None:
        """The day's marker, once per process (and store) and day."""
        key = id(self.rows)
        with _marked_lock:
            held = _marked.get(key)
            if held is None or held[0]() is not self.rows:  # new rows (or another object at a reused id)
                for gone in [k for k, (ref, _) in _marked.items() if ref() is None]:
                    del _marked[gone]
                held = _marked[key] = (weakref.ref(self.rows), set())
            if day in held[1]:
                return
        self.rows.upsert(HISTORY, DAYS, day, {"day": day})
        with _marked_lock:
            held[1].add(day)

    def for_record(self, entity: str, dynamics_id: str, days: Iterable[str], limit: int) -> list[HistoryEntry]:
        """A record's entries of these days (give them newest first), newest first, at most ``limit``."""
        ge, lt = prefix_range(record_prefix(entity, dynamics_id))
        found: list[HistoryEntry] = []
        for day in days:
            if len(found) >= limit:
                break
            for row in self.rows.query_range(HISTORY, day, ge, lt, limit=limit - len(found)):
                found.append(HistoryEntry.from_doc(row.doc))
        return found

    def days(self) -> list[str]:
        """The days that hold history (by their markers), oldest first."""
        return sorted(row.rk for row in self.rows.query(HISTORY, DAYS))

    def prune(self, before: str, *, max_rows: int = 200_000, page: int = 1000) -> Pruned:
        """Delete the days before ``before`` (a day key), at most about ``max_rows`` rows per run."""
        pruned: list[str] = []
        deleted = 0
        old = [d for d in self.days() if d < before]
        for day in old:
            while deleted < max_rows:
                rows = list(self.rows.query_range(HISTORY, day, limit=min(page, max_rows - deleted)))
                if not rows:
                    break
                self.rows.write_many(HISTORY, day, [Write("delete", r.rk, etag=r.etag) for r in rows])
                deleted += len(rows)
            else:
                break  # the budget is spent: this day (and the older ones after it) wait for the next run
            self.rows.delete(HISTORY, DAYS, day)
            pruned.append(day)
        return Pruned(tuple(pruned), deleted, tuple(d for d in old if d not in pruned))


def retained_days(now: datetime, retention_days: int) -> list[str]:
    """The day keys a record's history is read from: today and the ``retention_days - 1`` before, newest first."""
    today = now.astimezone(UTC).date()
    return [day_key(today - timedelta(days=n)) for n in range(retention_days)]


def prune_before(now: datetime, retention_days: int) -> str:
    """The first day kept: every day before it is pruned."""
    return day_key(now.astimezone(UTC).date() - timedelta(days=retention_days - 1))


def _requests(writes: list[Write]) -> Iterable[list[Write]]:
    """The writes in requests of at most :data:`BATCH_LIMIT` rows and about :data:`REQUEST_BYTES`."""
    chunk: list[Write] = []
    size = 0
    for write in writes:
        weight = len(dumps(write.doc or {}))
        if chunk and (len(chunk) >= BATCH_LIMIT or size + weight > REQUEST_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(write)
        size += weight
    if chunk:
        yield chunk
