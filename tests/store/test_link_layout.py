"""Links in the layout before the shards (one partition per entity, the id as key): read, moved when saved, moved
by the timer a page at a time, and never lost or duplicated while the live sync saves them at the same time."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import Conflict
from shared.store.base import LINKS, MARKETO_INDEX, StateStore, Write
from shared.store.link_keys import address, partitions
from shared.store.link_layout import move_legacy_links
from shared.store.links import is_legacy, link_doc
from shared.store.model import Link

AT = datetime(2026, 12, 3, 12, tzinfo=UTC)


def _ids(n: int, seed: int = 0) -> list[str]:
    return [str(uuid.UUID(int=(seed << 64) + i * 104729 + 17)) for i in range(n)]


def _legacy(store: StateStore, ids: list[str], entity: str = "contact", **baseline: Any) -> None:
    """Rows as the previous layout wrote them: the entity's partition, the id as key (and the Marketo index)."""
    for start in range(0, len(ids), 100):
        writes = [
            Write("insert", rid, link_doc(Link(entity, rid, str(1000 + start + i), dict(baseline)), AT))
            for i, rid in enumerate(ids[start : start + 100])
        ]
        store.rows.write_many(LINKS, entity, writes)
    for i, rid in enumerate(ids):
        store.rows.upsert(MARKETO_INDEX, "person", str(1000 + i), {"entity": entity, "id": rid})


def _legacy_rows(store: StateStore, entity: str = "contact") -> list[str]:
    return [row.rk for row in store.rows.query(LINKS, entity)]


def _current_rows(store: StateStore, entity: str = "contact") -> list[str]:
    return [row.rk for pk in partitions(entity) for row in store.rows.query(LINKS, pk)]


def _count(link: Link) -> int:
    value = link.baseline["count"]
    assert isinstance(value, int)
    return value


def _never(*_: object) -> bool:
    return False


def test_legacy_links_are_found_alone_and_among_current_ones(store: StateStore) -> None:
    old, new = _ids(5), _ids(5, seed=1)
    _legacy(store, old)
    store.links.insert_many("contact", [Link("contact", rid, "9", {"n": 1}) for rid in new])

    one = store.get_link("contact", old[2].upper())
    assert one is not None
    assert is_legacy(one)
    assert one.dynamics_id == old[2]
    assert one.marketo_id == "1002"
    found = store.get_links("contact", old + new + [str(uuid.uuid4())])
    assert sorted(found) == sorted(old + new)
    assert all(is_legacy(found[rid]) for rid in old)
    assert not any(is_legacy(found[rid]) for rid in new)
    assert store.find_by_marketo("lead", "1003") == found[old[3]]
    assert sorted(link.dynamics_id for link in store.iter_links("contact")) == sorted(old + new)


def test_saving_a_legacy_link_moves_it_and_the_index_follows(store: StateStore) -> None:
    (rid,) = _ids(1)
    _legacy(store, [rid], name="old")
    link = store.get_link("contact", rid)
    assert link is not None

    saved = store.save_link(replace(link, baseline={"name": "new"}))

    assert not is_legacy(saved)
    assert _legacy_rows(store) == []
    at = address("contact", rid)
    row = store.rows.get(LINKS, at.pk, at.rk)
    assert row is not None
    assert row.etag == saved.etag
    assert row.doc["baseline"] == {"name": "new"}
    again = store.get_link("contact", rid)
    assert again == saved
    assert again.etag == saved.etag
    with pytest.raises(Conflict):  # the legacy ETag is spent
        store.save_link(replace(link, baseline={"name": "stale"}))


def test_a_legacy_link_moved_since_it_was_read_is_a_conflict_and_its_content_kept(store: StateStore) -> None:
    (rid,) = _ids(1)
    _legacy(store, [rid], name="as read")
    read = store.get_link("contact", rid)
    assert read is not None
    other = store.get_link("contact", rid)
    assert other is not None
    moved = store.save_link(replace(other, baseline={"name": "saved by another instance"}))

    with pytest.raises(Conflict):
        store.save_link(replace(read, baseline={"name": "would overwrite it"}))
    current = store.get_link("contact", rid)
    assert current is not None
    assert current.baseline == {"name": "saved by another instance"}
    assert current.etag == moved.etag


def test_a_legacy_row_left_behind_by_a_crash_is_never_read_and_the_timer_deletes_it(store: StateStore) -> None:
    (rid,) = _ids(1)
    _legacy(store, [rid], name="before the crash")
    store.links.insert_many("contact", [Link("contact", rid, "1000", {"name": "moved, then the crash"})])

    current = store.get_link("contact", rid)
    assert current is not None
    assert not is_legacy(current)
    assert current.baseline == {"name": "moved, then the crash"}
    assert [link.baseline for link in store.iter_links("contact")] == [{"name": "moved, then the crash"}]

    report = move_legacy_links(store, ["contact"], out_of_time=_never)
    assert (report.moved, report.outlived, report.left) == (0, 1, [])
    assert _legacy_rows(store) == []
    again = store.get_link("contact", rid)
    assert again is not None
    assert again.baseline == {"name": "moved, then the crash"}
    assert again.etag == current.etag


def test_a_batch_of_baselines_moves_its_legacy_links_and_reports_one_moved_meanwhile(store: StateStore) -> None:
    old, new = _ids(150), _ids(30, seed=2)
    _legacy(store, old)
    store.links.insert_many("contact", [Link("contact", rid, "9") for rid in new])
    links = store.get_links("contact", old + new)
    elsewhere = store.get_link("contact", old[7])
    assert elsewhere is not None
    store.save_link(replace(elsewhere, baseline={"name": "live"}))

    saved, conflicts = store.replace_links("contact", [replace(k, baseline={"tier": "T"}) for k in links.values()])

    assert conflicts == {old[7]}
    assert sorted(saved) == sorted(set(old + new) - {old[7]})
    assert _legacy_rows(store) == []
    after = store.get_links("contact", old + new)
    assert after[old[7]].baseline == {"name": "live"}
    assert all(after[rid].baseline == {"tier": "T"} for rid in saved)
    assert all(after[rid].etag == saved[rid].etag for rid in saved)


def test_the_timer_moves_a_page_at_a_time_within_its_time_and_the_next_run_finishes(store: StateStore) -> None:
    ids = _ids(260)
    _legacy(store, ids, name="x")
    before = {rid: store.get_link("contact", rid) for rid in ids[:3]}
    pages = iter(range(100))

    first = move_legacy_links(store, ["contact", "lead"], out_of_time=lambda: next(pages) >= 2, page=100)
    assert (first.moved, first.left) == (200, ["contact"])
    assert len(_legacy_rows(store)) == 60
    assert len(_current_rows(store)) == 200
    assert sorted(store.get_links("contact", ids)) == sorted(ids)  # both layouts read meanwhile

    second = move_legacy_links(store, ["contact", "lead"], out_of_time=_never, page=100)
    assert (second.moved, second.left) == (60, [])
    assert _legacy_rows(store) == []
    assert sorted(_current_rows(store)) == sorted(address("contact", i).rk for i in ids)
    assert not store.links.legacy_left("contact")
    for rid, link in before.items():
        moved = store.get_link("contact", rid)
        assert link is not None
        assert moved is not None
        assert replace(moved, etag=None) == replace(link, etag=None)  # the same content, at its address
    assert store.find_by_marketo("contact", "1001") == store.get_link("contact", ids[1])


def test_a_legacy_row_rewritten_by_the_previous_version_while_it_moves_keeps_the_rewrite(store: StateStore) -> None:
    (rid,) = _ids(1)
    _legacy(store, [rid], name="copied")
    rows = store.rows

    class OldVersionWrites:
        """Rewrites the legacy row (as an instance of the previous version would) just before its delete."""

        def __getattr__(self, name: str) -> Any:
            return getattr(rows, name)

        def write_many(self, table: str, pk: str, writes: Any) -> Any:
            if pk == "contact" and writes[0].op == "delete" and not done:
                current = rows.get(LINKS, "contact", rid)
                assert current is not None
                doc = {**current.doc, "baseline": {"name": "rewritten by the previous version"}}
                rows.replace(LINKS, "contact", rid, doc, current.etag)
                done.append(True)
            return rows.write_many(table, pk, writes)

    done: list[bool] = []
    store.rows = OldVersionWrites()
    try:
        move_legacy_links(store, ["contact"], out_of_time=_never)
    finally:
        store.rows = rows
    assert done
    assert _legacy_rows(store) == []
    link = store.get_link("contact", rid)
    assert link is not None
    assert link.baseline == {"name": "rewritten by the previous version"}


def test_walks_cover_both_layouts_once_and_resume_from_a_cursor_or_an_old_id(store: StateStore) -> None:
    old, new = _ids(7), _ids(9, seed=3)
    _legacy(store, old)
    store.links.insert_many("contact", [Link("contact", rid, "9") for rid in new])
    seen: list[str] = []
    after = ""
    while True:
        page = store.links_page("contact", after=after, limit=4)
        seen += [link.dynamics_id for link in page]
        if len(page) < 4:
            break
        after = store.link_cursor(page[-1])
    assert sorted(seen) == sorted(old + new)
    assert len(seen) == len(set(seen))
    assert seen[:7] == sorted(old)  # the legacy partition first, in its order
    resumed = store.links_page("contact", after=sorted(old)[4], limit=100)  # a walk saved before the shards
    assert [link.dynamics_id for link in resumed] == seen[5:]


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_saves_and_the_timer_lose_no_update_and_leave_one_row_per_link(
    store: StateStore, round_: int
) -> None:
    ids = _ids(40, seed=10 + round_)
    _legacy(store, ids, count=0)
    increments = 6

    def live(worker: int) -> None:
        """Read, add one, save on the ETag; re-read on a conflict (what the reconcile does)."""
        for n in range(increments):
            rid = ids[(worker * 7 + n * 3) % len(ids)]
            for _ in range(50):
                link = store.get_link("contact", rid)
                assert link is not None, rid
                try:
                    store.save_link(replace(link, baseline={"count": _count(link) + 1}))
                    break
                except Conflict:
                    continue
            else:
                raise AssertionError("kept conflicting")

    def mover() -> None:
        for _ in range(3):
            move_legacy_links(store, ["contact"], out_of_time=_never, page=10)

    threads = [threading.Thread(target=live, args=(w,)) for w in range(4)] + [threading.Thread(target=mover)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    move_legacy_links(store, ["contact"], out_of_time=_never)

    assert _legacy_rows(store) == []
    assert sorted(_current_rows(store)) == sorted(address("contact", rid).rk for rid in ids)
    total = sum(_count(link) for link in store.get_links("contact", ids).values())
    assert total == 4 * increments


@pytest.mark.parametrize("many", [False, True])
def test_a_link_moved_between_the_two_reads_is_still_found(store: StateStore, many: bool) -> None:
    """The reader misses the new row, the link moves, the reader misses the legacy row: it must look again."""
    (rid,) = _ids(1)
    _legacy(store, [rid], name="x")
    assert store.links.legacy_left("contact")
    rows = store.rows
    at = address("contact", rid)

    class MovesAfterTheFirstRead:
        def __getattr__(self, name: str) -> Any:
            return getattr(rows, name)

        def _then_move(self, found: Any) -> Any:
            if not moved:
                moved.append(True)
                move_legacy_links(_plain(rows), ["contact"], out_of_time=_never)
            return found

        def get(self, table: str, pk: str, rk: str) -> Any:
            found = rows.get(table, pk, rk)
            return self._then_move(found) if (pk, rk) == (at.pk, at.rk) else found

        def get_many(self, table: str, pk: str, rks: Any) -> Any:
            found = rows.get_many(table, pk, rks)
            return self._then_move(found) if pk == at.pk else found

    moved: list[bool] = []
    store.rows = MovesAfterTheFirstRead()
    try:
        link = store.get_links("contact", [rid]).get(rid) if many else store.get_link("contact", rid)
    finally:
        store.rows = rows
    assert moved
    assert _legacy_rows(store) == []
    assert link is not None
    assert not is_legacy(link)
    assert link.baseline == {"name": "x"}


def _plain(rows: Any) -> StateStore:
    """A store over the same rows, unhooked."""
    return StateStore(rows)


def test_a_legacy_id_that_looks_like_a_row_key_comes_back_as_it_was(store: StateStore) -> None:
    odd = "0123456789abcdef0123456789abcdef"  # not a GUID, but 32 hex digits: the shape of a current row key
    store.rows.write_many(LINKS, "contact", [Write("insert", odd, link_doc(Link("contact", odd, "5"), AT))])
    link = store.get_link("contact", odd)
    assert link is not None
    assert link.dynamics_id == odd
    assert [k.dynamics_id for k in store.iter_links("contact")] == [odd]
    move_legacy_links(store, ["contact"], out_of_time=_never)
    moved = store.get_link("contact", odd)
    assert moved is not None
    assert (moved.dynamics_id, is_legacy(moved)) == (odd, False)
