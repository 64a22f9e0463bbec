"""The batch write and the pending marks, one contract for both backends (SQLite, and Azure Tables on Azurite)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.pending import MarkKey, PendingMark
from shared.errors import Conflict
from shared.store.base import PENDING, StateStore, Write
from shared.store.model import Link

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _mark(partition: str, record: str, version: int = 1, etag: str | None = None) -> PendingMark:
    return PendingMark(
        MarkKey(partition, record), '{"x":1}', False, T0, T0, version, T0 + timedelta(minutes=5), etag=etag
    )


def test_many_rows_of_a_partition_are_written_past_the_transaction_limit(store: StateStore) -> None:
    writes = [Write("insert", f"r{i:03d}", {"n": i}) for i in range(250)]
    etags = store.rows.write_many(PENDING, "contact", writes)
    assert len(etags) == 250
    rows = store.rows.get_many(PENDING, "contact", [f"r{i:03d}" for i in range(250)])
    assert {r.doc["n"] for r in rows.values()} == set(range(250))


def test_a_failed_condition_leaves_the_whole_request_unapplied(store: StateStore) -> None:
    (stale,) = store.rows.write_many(PENDING, "lead", [Write("insert", "a", {"v": 1})]).values()
    assert stale
    store.rows.write_many(PENDING, "lead", [Write("upsert", "a", {"v": 2})])
    with pytest.raises(Conflict):
        store.rows.write_many(
            PENDING, "lead", [Write("insert", "b", {"v": 1}), Write("replace", "a", {"v": 3}, etag=stale)]
        )
    assert store.rows.get(PENDING, "lead", "b") is None
    row = store.rows.get(PENDING, "lead", "a")
    assert row is not None
    assert row.doc == {"v": 2}


def test_insert_replace_upsert_and_delete_are_conditional_as_their_single_forms(store: StateStore) -> None:
    first = store.rows.write_many(PENDING, "lead", [Write("insert", "a", {"v": 1}), Write("upsert", "b", {"v": 1})])
    with pytest.raises(Conflict):
        store.rows.write_many(PENDING, "lead", [Write("insert", "a", {"v": 9})])
    second = store.rows.write_many(PENDING, "lead", [Write("replace", "a", {"v": 2}, etag=first["a"])])
    with pytest.raises(Conflict):
        store.rows.write_many(PENDING, "lead", [Write("delete", "a", etag=first["a"])])  # stale
    assert store.rows.write_many(PENDING, "lead", [Write("delete", "a", etag=second["a"])]) == {"a": None}
    assert store.rows.get(PENDING, "lead", "a") is None
    with pytest.raises(Conflict):
        store.rows.write_many(PENDING, "lead", [Write("delete", "a", etag=second["a"])])  # gone


def test_pending_marks_round_trip_and_are_deleted_only_as_read(store: StateStore) -> None:
    marks = [_mark("contact", "c1"), _mark("contact", "c2"), _mark("person", "1001")]
    store.pending.save_many(marks)
    found = store.pending.get_many([m.key for m in marks] + [MarkKey("lead", "nope")])
    assert set(found) == {m.key for m in marks}
    c1 = found[MarkKey("contact", "c1")]
    assert (c1.version, c1.first_seen, c1.next_due_at) == (1, T0, T0 + timedelta(minutes=5))
    store.pending.save_many([_mark("contact", "c1", version=2, etag=c1.etag)])
    with pytest.raises(Conflict):
        store.pending.delete_many([c1])  # the row changed since c1 was read
    store.pending.delete_many([found[MarkKey("person", "1001")]])
    assert {m.key for m in store.pending.all()} == {MarkKey("contact", "c1"), MarkKey("contact", "c2")}


def test_write_intents_are_saved_in_batches_on_their_etags_and_read_back(store: StateStore) -> None:
    links = [store.save_link(Link("lead", f"l{i}", str(i), {"jobtitle": "old"})) for i in range(130)]
    moved = store.save_link(replace(links[7], baseline={"jobtitle": "moved"}))  # another instance saved first
    intended = [replace(link, intent={"marketo:jobtitle": "v2"}) for link in links]
    saved, conflicts = store.replace_links("lead", intended)
    assert conflicts == {"l7"}
    assert len(saved) == 129
    again = store.get_link("lead", "l120")
    assert again is not None
    assert (again.intent, again.etag) == ({"marketo:jobtitle": "v2"}, saved["l120"].etag)
    assert store.get_link("lead", "l7") == moved
    cleared = store.save_link(replace(saved["l3"], baseline={"jobtitle": "v2"}, intent={}))
    assert store.get_link("lead", "l3") == cleared
    assert cleared.intent == {}
