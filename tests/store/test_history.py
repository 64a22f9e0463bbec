"""The range query and the history table, one contract for both backends (SQLite, and Azure Tables on Azurite),
and what a batch's history costs in store requests."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from bench.quicksync import CountingRows
from shared.core.history import FieldEntry, HistoryEntry
from shared.store.base import HISTORY, PENDING, StateStore, Write
from shared.store.history import DAYS, HistoryLog, day_key, prefix_range, prune_before, retained_days

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _entry(record: str, at: datetime, title: str = "CTO", entity: str = "lead") -> HistoryEntry:
    fields = (FieldEntry("jobtitle", "write_dynamics", "changed on both sides", "D", title, "B", title, "marketo"),)
    return HistoryEntry(entity, record, at, "sync", "reconciled", fields, "marketo_webhook", "marketo")


def test_a_range_query_reads_a_prefix_of_one_partition_in_row_key_order(store: StateStore) -> None:
    keys = ["lead|a|1", "lead|a|2", "lead|a|3", "lead|ab|1", "lead|b|1", "leae"]
    store.rows.write_many(PENDING, "p1", [Write("insert", k, {"k": k}) for k in keys])
    store.rows.insert(PENDING, "p2", "lead|a|0", {"k": "other partition"})
    ge, lt = prefix_range("lead|a|")
    assert [r.rk for r in store.rows.query_range(PENDING, "p1", ge, lt)] == ["lead|a|1", "lead|a|2", "lead|a|3"]
    assert [r.rk for r in store.rows.query_range(PENDING, "p1", ge, lt, limit=2)] == ["lead|a|1", "lead|a|2"]
    assert [r.rk for r in store.rows.query_range(PENDING, "p1", "lead|b")] == ["lead|b|1", "leae"]
    assert len(list(store.rows.query_range(PENDING, "p1"))) == len(keys)
    assert list(store.rows.query_range(PENDING, "p1", *prefix_range("nothing|"))) == []
    row = next(iter(store.rows.query_range(PENDING, "p1", ge, lt)))
    assert row.doc == {"k": "lead|a|1"}
    assert row.etag


def test_a_range_query_pages_past_the_services_page_size(store: StateStore) -> None:
    store.rows.write_many(PENDING, "many", [Write("insert", f"r{i:05d}", {"i": i}) for i in range(1100)])
    assert len(list(store.rows.query_range(PENDING, "many"))) == 1100
    assert len(list(store.rows.query_range(PENDING, "many", limit=1050))) == 1050


def test_a_records_history_is_read_newest_first_across_days_and_capped(store: StateStore) -> None:
    log = HistoryLog(store.rows)
    yesterday = T0 - timedelta(days=1)
    log.append([_entry("r1", yesterday, "old"), _entry("r2", yesterday)])
    log.append([_entry("r1", T0, "new"), _entry("r1", T0 + timedelta(minutes=5), "newer"), _entry("r10", T0)])
    days = retained_days(T0 + timedelta(hours=1), 14)
    found = log.for_record("lead", "R1", days, limit=10)
    assert [e.fields[0].marketo for e in found] == ["newer", "new", "old"]
    assert [e.fields[0].marketo for e in log.for_record("lead", "r1", days, limit=2)] == ["newer", "new"]
    assert log.for_record("contact", "r1", days, limit=10) == []
    assert found[0] == _entry("r1", T0 + timedelta(minutes=5), "newer")  # every value round-trips


def test_two_entries_of_one_record_at_the_same_moment_are_both_kept(store: StateStore) -> None:
    log = HistoryLog(store.rows)
    log.append([_entry("r1", T0, "a")])
    log.append([_entry("r1", T0, "b")])  # another instance, the same millisecond
    found = log.for_record("lead", "r1", [day_key(T0)], limit=10)
    assert sorted(str(e.fields[0].marketo) for e in found) == ["a", "b"]


def test_old_days_are_pruned_and_the_retained_ones_kept(store: StateStore) -> None:
    log = HistoryLog(store.rows)
    for days_ago in (20, 15, 14, 13, 0):
        log.append([_entry(f"r{i}", T0 - timedelta(days=days_ago)) for i in range(3)])
    first_kept = prune_before(T0, 14)
    assert first_kept == day_key(T0 - timedelta(days=13))
    pruned = log.prune(first_kept)
    assert pruned.days == (
        day_key(T0 - timedelta(days=20)),
        day_key(T0 - timedelta(days=15)),
        day_key(T0 - timedelta(days=14)),
    )
    assert (pruned.rows, pruned.left) == (9, ())
    assert log.days() == [day_key(T0 - timedelta(days=13)), day_key(T0)]
    assert list(store.rows.query_range(HISTORY, day_key(T0 - timedelta(days=14)))) == []
    assert len(log.for_record("lead", "r1", retained_days(T0, 14), limit=10)) == 2


def test_a_long_backlog_is_pruned_over_several_runs(store: StateStore) -> None:
    log = HistoryLog(store.rows)
    log.append([_entry(f"r{i}", T0 - timedelta(days=30)) for i in range(25)])
    log.append([_entry(f"r{i}", T0 - timedelta(days=29)) for i in range(5)])
    first = log.prune(day_key(T0), max_rows=20, page=10)
    assert (first.days, first.rows) == ((), 20)
    assert first.left == (day_key(T0 - timedelta(days=30)), day_key(T0 - timedelta(days=29)))
    second = log.prune(day_key(T0), max_rows=20, page=10)
    assert (second.rows, second.left) == (10, ())
    assert log.days() == []


# --- what it costs (bench.quicksync.CountingRows counts requests as the backend makes them) ---------------------------------------------------------------------------------------------------


def test_a_batch_of_300_entries_costs_3_write_requests_and_the_days_marker_once(store: StateStore) -> None:
    counting = CountingRows(store.rows)
    log = HistoryLog(counting)
    detail = tuple(
        FieldEntry(f"field{i}", "write_marketo", "changed in Dynamics only", "new value", "old", "old", "new value")
        for i in range(5)
    )
    batch = [HistoryEntry("contact", f"c{i:03d}", T0, "sync", "reconciled", detail) for i in range(300)]
    assert log.append(batch) == 300
    assert counting.requests == Counter({"write_many": 3, "upsert": 1})  # the day's marker, once per process
    counting.requests.clear()
    log.append(batch)
    assert counting.requests == Counter({"write_many": 3})
    counting.requests.clear()
    found = log.for_record("contact", "c007", retained_days(T0, 14), limit=50)
    assert len(found) == 2
    assert counting.requests == Counter({"query_range": 14})  # one prefix query per retained day
    assert [r.rk for r in store.rows.query(HISTORY, DAYS)] == [day_key(T0)]
