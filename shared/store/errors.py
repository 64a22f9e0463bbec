"""Sync errors in the state store: one row per record, field and cause, merged on its ETag; and the index of the
records that have open errors, which lets a clean reconcile resolve them at the cost of one read per entity.

Rows: table ``syncerrors``, partition ``error``, row key :func:`~shared.store.model.error_key` (the same failure
met by two instances at once ends in one row: the loser of the insert re-reads and merges). The index: partition
``open:<entity>`` (``open:person`` for leads, contacts and Marketo persons together), :data:`INDEX_BUCKETS` rows
each (row key ``00``..), mapping ``<entity>/<record id>`` to the ids of its open or retrying errors. A batch reads
the buckets of the records it reconciled in one ``get_many`` per partition (at most 14 keys: one Azure Table
query). A record is added to its bucket *before* its error becomes open or retrying, and
removed after it is resolved or ignored (a stale entry is dropped when next read), so no open error is ever
missing from it. A bucket row holds some 7,000 records within Azure's 1 MiB entity limit: the index serves up to
about 100,000 records with open errors per partition.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.core.record_links import PERSON_ENTITIES
from shared.errors import Conflict
from shared.store.base import ERRORS, Row, Rows, Write
from shared.store.model import ACTIVE, ErrorQuery, ErrorStatus, SyncErrorRecord

PARTITION = "error"
INDEX_BUCKETS = 14
"""Index rows per entity: all of them fit one Azure Table query (at most 15 comparisons, one is the partition)."""
_ATTEMPTS = 20


def index_partition(entity: str) -> str:
    """Leads, contacts and Marketo persons (a two-way batch reconciles them together) share one partition."""
    return "open:person" if entity in PERSON_ENTITIES else f"open:{entity}"


def bucket(record_id: str) -> str:
    return f"{int(hashlib.sha256(record_id.lower().encode()).hexdigest()[:8], 16) % INDEX_BUCKETS:02d}"


class SyncErrors:
    """Record, read, list and move sync errors; resolve those of records that reconciled cleanly."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    # --- recording ---------------------------------------------------------------------------------------------

    def record(self, errors: Sequence[SyncErrorRecord]) -> list[SyncErrorRecord]:
        """Merge each error into its row (a new row the first time): in one read and one batch write for the lot,
        row by row on ETags when another writer got there first. Returns the errors as stored."""
        merged: dict[str, SyncErrorRecord] = {}
        for error in errors:
            seen = merged.get(error.id)
            merged[error.id] = seen.seen_again(error) if seen is not None else _fresh(error)
        if not merged:
            return []
        found = self.rows.get_many(ERRORS, PARTITION, merged)
        stored = {key: _merge(found.get(key), error) for key, error in merged.items()}
        self._index({key: e for key, e in stored.items() if _becomes_active(found.get(key), e)})
        writes = [
            Write("replace", key, _doc(e), found[key].etag) if key in found else Write("insert", key, _doc(e))
            for key, e in stored.items()
        ]
        try:
            self.rows.write_many(ERRORS, PARTITION, writes)
        except Conflict:  # someone recorded one of them meanwhile: merge row by row
            return [self._record_one(error) for error in merged.values()]
        return list(stored.values())

    def _record_one(self, error: SyncErrorRecord) -> SyncErrorRecord:
        for _ in range(_ATTEMPTS):
            row = self.rows.get(ERRORS, PARTITION, error.id)
            current = _error(row) if row is not None else None
            merged = current.seen_again(error) if current is not None else error
            if _becomes_active(row, merged):
                self._index({merged.id: merged})
            try:
                if row is None:
                    self.rows.insert(ERRORS, PARTITION, merged.id, _doc(merged))
                else:
                    self.rows.replace(ERRORS, PARTITION, merged.id, _doc(merged), row.etag)
            except Conflict:
                continue
            return merged
        raise Conflict(f"sync error {error.id} kept changing under us")

    # --- reading -----------------------------------------------------------------------------------------------

    def get(self, error_id: str) -> SyncErrorRecord | None:
        row = self.rows.get(ERRORS, PARTITION, error_id)
        return _error(row) if row else None

    def find(self, query: ErrorQuery) -> list[SyncErrorRecord]:
        """Those matching ``query``, newest ``last_seen`` first, at most ``query.limit``."""
        found = [e for e in map(_error, self.rows.query(ERRORS, PARTITION)) if query.matches(e)]
        found.sort(key=lambda e: (e.last_seen, e.id), reverse=True)
        return found[: query.limit]

    # --- an admin's actions ------------------------------------------------------------------------------------

    def move(self, error_id: str, status: ErrorStatus, *, by: str, at: datetime) -> SyncErrorRecord | None:
        """Retry (one attempt more), ignore or resolve, on the row's ETag (re-read and tried again when another
        call changed it meanwhile). None: no such error."""
        for _ in range(_ATTEMPTS):
            row = self.rows.get(ERRORS, PARTITION, error_id)
            if row is None:
                return None
            current = _error(row)
            if current.status is status and status is not ErrorStatus.RETRYING:
                return current  # already so: nothing to write
            moved = current.moved_to(status, by=by, at=at)
            if _becomes_active(row, moved):
                self._index({moved.id: moved})
            try:
                self.rows.replace(ERRORS, PARTITION, error_id, _doc(moved), row.etag)
            except Conflict:
                continue
            if current.status in ACTIVE and moved.status not in ACTIVE and moved.record_id:
                self._unindex({moved.id: (moved.entity, moved.record_id.lower())})
            return moved
        raise Conflict(f"sync error {error_id} kept changing under us; try again")

    def put_back(self, record: SyncErrorRecord, *, unless_changed_from: SyncErrorRecord) -> None:
        """Restore an error as it was (a retry whose notification could not be queued) if it still stands as
        ``unless_changed_from`` left it; left as it is when anyone changed it since."""
        row = self.rows.get(ERRORS, PARTITION, record.id)
        if row is None or _error(row) != replace(unless_changed_from, row_id=row.rk):
            return
        try:
            self.rows.replace(ERRORS, PARTITION, record.id, _doc(record), row.etag)
        except Conflict:
            return

    # --- resolved by the sync ----------------------------------------------------------------------------------

    def resolve(
        self,
        records: Iterable[tuple[str, str]],
        clears: Callable[[SyncErrorRecord], bool],
        *,
        at: datetime,
        by: str,
    ) -> list[SyncErrorRecord]:
        """Resolve the open or retrying errors of these records (entity, record id) that ``clears`` accepts. One
        index read per index partition (leads, contacts and Marketo persons share one) when none has an open
        error; otherwise also one read of the errors and one batch write."""
        groups: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for entity, rid in records:
            if rid:
                groups[index_partition(entity)].add((entity, rid.lower()))
        named: dict[str, tuple[str, str]] = {}  # error id -> (entity, record id)
        for pk, keys in groups.items():
            refs = {_ref(entity, rid): (entity, rid) for entity, rid in keys}
            for row in self.rows.get_many(ERRORS, pk, {bucket(rid) for _, rid in keys}).values():
                for ref, eids in _indexed(row).items():
                    if ref in refs:
                        named.update(dict.fromkeys(eids, refs[ref]))
        if not named:
            return []
        rows = self.rows.get_many(ERRORS, PARTITION, named)
        resolved: list[tuple[SyncErrorRecord, str]] = []
        done = {eid for eid in named if eid not in rows}  # gone: stale in the index
        for eid, row in rows.items():
            error = _error(row)
            if error.status not in ACTIVE:
                done.add(eid)
            elif clears(error):
                resolved.append((error.moved_to(ErrorStatus.RESOLVED, by=by, at=at), row.etag))
        saved = self._save_resolved(resolved)
        done |= {e.id for e in saved}
        self._unindex({eid: named[eid] for eid in done})
        return saved

    def _save_resolved(self, resolved: list[tuple[SyncErrorRecord, str]]) -> list[SyncErrorRecord]:
        if not resolved:
            return []
        try:
            self.rows.write_many(ERRORS, PARTITION, [Write("replace", e.id, _doc(e), etag) for e, etag in resolved])
            return [e for e, _ in resolved]
        except Conflict:  # seen again (or moved by an admin) meanwhile: those stay as they are now
            saved = []
            for error, etag in resolved:
                try:
                    self.rows.replace(ERRORS, PARTITION, error.id, _doc(error), etag)
                except Conflict:
                    continue
                saved.append(error)
            return saved

    # --- the index of records with open errors ------------------------------------------------------------------

    def _index(self, errors: Mapping[str, SyncErrorRecord]) -> None:
        adds: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for eid, error in errors.items():
            if error.record_id:
                where = (index_partition(error.entity), bucket(error.record_id))
                adds[where][_ref(error.entity, error.record_id)].add(eid)
        for (pk, key), refs in adds.items():
            self._change_bucket(pk, key, lambda index, refs=refs: _add(index, refs))  # type: ignore[misc]

    def _unindex(self, errors: Mapping[str, tuple[str, str]]) -> None:
        """Drop these error ids (error id -> its entity and record id) from the index."""
        drops: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for eid, (entity, rid) in errors.items():
            drops[(index_partition(entity), bucket(rid))][_ref(entity, rid)].add(eid)
        for (pk, key), refs in drops.items():
            self._change_bucket(pk, key, lambda index, refs=refs: _drop(index, refs))  # type: ignore[misc]

    def _change_bucket(self, pk: str, key: str, change: Callable[[dict[str, list[str]]], bool]) -> None:
        for _ in range(_ATTEMPTS):
            row = self.rows.get(ERRORS, pk, key)
            index = _indexed(row) if row is not None else {}
            if not change(index):
                return  # nothing to change
            try:
                if row is None:
                    self.rows.insert(ERRORS, pk, key, {"records": index})
                else:
                    self.rows.replace(ERRORS, pk, key, {"records": index}, row.etag)
            except Conflict:
                continue
            return
        raise Conflict(f"the open-errors index {pk} kept changing under us")


def _ref(entity: str, record_id: str) -> str:
    """A record in the index: ``<entity>/<record id>``."""
    return f"{entity}/{record_id.lower()}"


def _indexed(row: Row | None) -> dict[str, list[str]]:
    return {rid: list(eids) for rid, eids in ((row.doc.get("records") or {}) if row else {}).items()}


def _add(index: dict[str, list[str]], records: Mapping[str, set[str]]) -> bool:
    changed = False
    for rid, eids in records.items():
        have = index.setdefault(rid, [])
        for eid in sorted(eids - set(have)):
            have.append(eid)
            changed = True
    return changed


def _drop(index: dict[str, list[str]], records: Mapping[str, set[str]]) -> bool:
    changed = False
    for rid, eids in records.items():
        if rid not in index:
            continue
        kept = [e for e in index[rid] if e not in eids]
        changed |= len(kept) != len(index[rid])
        if kept:
            index[rid] = kept
        else:
            del index[rid]
    return changed


def _fresh(error: SyncErrorRecord) -> SyncErrorRecord:
    return replace(error, first_seen=error.since)


def _merge(row: Row | None, error: SyncErrorRecord) -> SyncErrorRecord:
    return _error(row).seen_again(error) if row is not None else error


def _becomes_active(before: Row | None, after: SyncErrorRecord) -> bool:
    """Whether the error enters (or may enter) the open or retrying statuses with this write: index it first."""
    if after.status not in ACTIVE:
        return False
    return before is None or ErrorStatus(before.doc.get("status", "open")) not in ACTIVE


def _doc(error: SyncErrorRecord) -> dict[str, Any]:
    doc = error.as_row()
    del doc["id"]
    return doc


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _error(row: Row) -> SyncErrorRecord:
    doc = row.doc
    last_seen = _when(doc.get("last_seen") or doc.get("occurred_at"))  # occurred_at: rows stored before counts
    assert last_seen is not None
    return SyncErrorRecord(
        entity=doc["entity"],
        record_id=doc["record_id"],
        operation=doc["operation"],
        direction=doc["direction"],
        code=doc["code"],
        message=doc["message"],
        last_seen=last_seen,
        field=doc.get("field") or None,
        status=ErrorStatus(doc.get("status", "open")),
        count=int(doc.get("count", 1)),
        first_seen=_when(doc.get("first_seen")),
        attempts=int(doc.get("attempts", 0)),
        marketo_id=doc.get("marketo_id"),
        label=doc.get("label") or "",
        resolved_at=_when(doc.get("resolved_at")),
        resolved_by=doc.get("resolved_by"),
        row_id=row.rk,
    )
