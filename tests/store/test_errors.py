"""Sync errors in the store, on both backends: one row per record, field and cause, merged on its ETag (also by
racing threads), the lifecycle's moves, and the index that lets a clean reconcile resolve them cheaply."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.store.base import Row, Rows, StateStore, Write
from shared.store.errors import SyncErrors
from shared.store.model import ErrorQuery, ErrorStatus, SyncErrorRecord

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEAD = "5a4b3c2d-0000-4000-8000-00000000000a"


def _error(at: datetime = AT, **changes: Any) -> SyncErrorRecord:
    error = SyncErrorRecord(
        entity="lead",
        record_id=LEAD,
        operation="convert",
        direction="marketo_to_dynamics",
        code="conversion",
        message="unknown option label 'Tepid'",
        last_seen=at,
        field="leadqualitycode",
    )
    return replace(error, **changes)


class CountingRows:
    """The backend's rows, counting the requests made through them."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.calls: Counter[str] = Counter()

    def get(self, table: str, pk: str, rk: str) -> Row | None:
        self.calls["get"] += 1
        return self.rows.get(table, pk, rk)

    def get_many(self, table: str, pk: str, rks: Iterable[str]) -> dict[str, Row]:
        self.calls["get_many"] += 1
        return self.rows.get_many(table, pk, rks)

    def insert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        self.calls["insert"] += 1
        return self.rows.insert(table, pk, rk, doc)

    def replace(self, table: str, pk: str, rk: str, doc: Mapping[str, Any], etag: str) -> str:
        self.calls["replace"] += 1
        return self.rows.replace(table, pk, rk, doc, etag)

    def upsert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        self.calls["upsert"] += 1
        return self.rows.upsert(table, pk, rk, doc)

    def query(self, table: str, pk: str | None = None) -> Iterator[Row]:
        self.calls["query"] += 1
        return self.rows.query(table, pk)

    def query_range(
        self, table: str, pk: str, ge: str = "", lt: str | None = None, *, limit: int | None = None
    ) -> Iterator[Row]:
        self.calls["query_range"] += 1
        return self.rows.query_range(table, pk, ge, lt, limit=limit)

    def delete(self, table: str, pk: str, rk: str) -> None:
        self.calls["delete"] += 1
        self.rows.delete(table, pk, rk)

    def write_many(self, table: str, pk: str, writes: Sequence[Write]) -> dict[str, str | None]:
        self.calls["write_many"] += 1
        return self.rows.write_many(table, pk, writes)


def test_the_same_failure_seen_again_is_counted_on_one_row(store: StateStore) -> None:
    first = store.add_error(_error())
    again = store.add_error(_error(AT + timedelta(minutes=5), message="unknown option label 'Lukewarm'"))
    assert again.id == first.id
    (stored,) = store.list_errors()
    assert (stored.count, stored.first_seen, stored.last_seen) == (2, AT, AT + timedelta(minutes=5))
    assert stored.message == "unknown option label 'Lukewarm'"  # the latest wording
    other_cause = store.add_error(_error(code="0x80044331", field=None, operation="update"))
    assert other_cause.id != first.id
    assert len(store.list_errors()) == 2


def test_many_errors_are_recorded_in_one_read_and_one_write(store: StateStore) -> None:
    rows = CountingRows(store.rows)
    errors = SyncErrors(rows)
    batch = [_error(record_id=f"{i:08d}-0000-4000-8000-000000000000") for i in range(30)]
    errors.record([*batch, batch[0]])  # a repeat inside the batch merges too
    assert rows.calls["write_many"] == 1
    assert rows.calls["get_many"] == 1
    found = errors.find(ErrorQuery(limit=100))
    assert len(found) == 30
    assert sorted(e.count for e in found)[-1] == 2


def test_racing_instances_recording_the_same_error_end_in_one_row(store: StateStore) -> None:
    threads = 8
    start = threading.Barrier(threads)

    def one(index: int) -> None:
        start.wait()
        store.add_error(_error(AT + timedelta(seconds=index)))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(threads)))
    (stored,) = store.list_errors()
    assert stored.count == threads
    assert stored.last_seen == AT + timedelta(seconds=threads - 1)


def test_racing_batches_of_the_same_errors_merge_row_by_row(store: StateStore) -> None:
    threads = 4
    start = threading.Barrier(threads)
    batch = [_error(record_id=f"{i:08d}-0000-4000-8000-000000000000") for i in range(5)]

    def one(_: int) -> None:
        start.wait()
        store.errors.record(batch)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(threads)))
    assert sorted(e.count for e in store.list_errors()) == [threads] * 5


def test_an_ignored_error_stays_ignored_when_seen_again_and_a_retried_one_opens_again(store: StateStore) -> None:
    error = store.add_error(_error())
    store.errors.move(error.id, ErrorStatus.IGNORED, by="admin", at=AT)
    again = store.add_error(_error(AT + timedelta(minutes=1)))
    assert (again.status, again.count) == (ErrorStatus.IGNORED, 2)
    retried = store.errors.move(error.id, ErrorStatus.RETRYING, by="admin", at=AT)
    assert retried is not None
    assert (retried.status, retried.attempts) == (ErrorStatus.RETRYING, 1)
    failed = store.add_error(_error(AT + timedelta(minutes=2)))
    assert (failed.status, failed.count, failed.attempts) == (ErrorStatus.OPEN, 3, 1)


def test_a_clean_record_resolves_its_open_errors_and_leaves_the_index_empty(store: StateStore) -> None:
    error = store.add_error(_error())
    record_level = store.add_error(_error(code="0x80044331", field=None, operation="update"))
    later = AT + timedelta(minutes=1)
    resolved = store.errors.resolve([("lead", LEAD.upper())], lambda e: e.field is None, at=later, by="sync")
    assert [e.id for e in resolved] == [record_level.id]
    assert store.get_error(record_level.id).resolved_by == "sync"  # type: ignore[union-attr]
    assert store.get_error(error.id).status is ErrorStatus.OPEN  # type: ignore[union-attr]
    resolved = store.errors.resolve([("lead", LEAD)], lambda e: True, at=later, by="sync")
    assert [e.id for e in resolved] == [error.id]
    stored = store.get_error(error.id)
    assert stored is not None
    assert (stored.status, stored.resolved_at, stored.resolved_by) == (ErrorStatus.RESOLVED, later, "sync")
    rows = CountingRows(store.rows)
    assert SyncErrors(rows).resolve([("lead", LEAD)], lambda e: True, at=later, by="sync") == []
    assert sum(rows.calls.values()) == 1  # the index only: the resolved errors left it


def test_with_no_open_errors_a_resolve_costs_one_read(store: StateStore) -> None:
    store.add_error(replace(_error(), entity="contact"))  # another entity's error
    rows = CountingRows(store.rows)
    records = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(300)]
    wanted = [("lead", r) for r in records] + [("contact", r) for r in records] + [("person", "1001")]
    assert SyncErrors(rows).resolve(wanted, lambda e: True, at=AT, by="sync") == []
    assert dict(rows.calls) == {"get_many": 1}  # leads, contacts and persons share one index partition
    assert SyncErrors(rows).resolve([("account", r) for r in records], lambda e: True, at=AT, by="sync") == []
    assert dict(rows.calls) == {"get_many": 2}


def test_a_resolved_error_seen_again_opens_again_and_an_ignored_one_is_not_resolved_by_the_sync(
    store: StateStore,
) -> None:
    error = store.add_error(_error())
    store.errors.move(error.id, ErrorStatus.RESOLVED, by="admin", at=AT)
    again = store.add_error(_error(AT + timedelta(minutes=1)))
    assert (again.status, again.resolved_at, again.resolved_by, again.count) == (ErrorStatus.OPEN, None, None, 2)
    store.errors.move(error.id, ErrorStatus.IGNORED, by="admin", at=AT)
    rows = CountingRows(store.rows)
    assert SyncErrors(rows).resolve([("lead", LEAD)], lambda e: True, at=AT, by="sync") == []
    assert dict(rows.calls) == {"get_many": 1}  # ignored: out of the index
    assert store.get_error(error.id).status is ErrorStatus.IGNORED  # type: ignore[union-attr]


def test_filters_combine(store: StateStore) -> None:
    store.add_error(_error())
    store.add_error(
        _error(AT + timedelta(hours=2), direction="dynamics_to_marketo", code="1006", field=None, message="skipped")
    )
    find = store.errors.find
    assert len(find(ErrorQuery(direction="marketo_to_dynamics"))) == 1
    assert len(find(ErrorQuery(code="1006"))) == 1
    assert len(find(ErrorQuery(since=AT + timedelta(hours=1)))) == 1
    assert len(find(ErrorQuery(until=AT + timedelta(hours=1)))) == 1
    assert len(find(ErrorQuery(search="tepid", status=ErrorStatus.OPEN))) == 1
    assert find(ErrorQuery(status=ErrorStatus.RESOLVED)) == []
    assert len(find(ErrorQuery(limit=1))) == 1
