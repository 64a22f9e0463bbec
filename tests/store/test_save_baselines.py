"""Baselines saved in bulk (a Quick Sync page): batch transactions on the links' ETags, the Marketo-id index left
alone, a moved row reported and the rest saved. One contract for both backends (SQLite, and Azure Tables on
Azurite)."""

from __future__ import annotations

from dataclasses import replace

from shared.store.base import LINKS, MARKETO_INDEX, StateStore
from shared.store.link_keys import address
from shared.store.model import Link


def _linked(store: StateStore, count: int) -> list[Link]:
    return [store.save_link(Link("contact", f"c{i:03d}", str(1000 + i), {"name": "old"})) for i in range(count)]


def test_baselines_of_many_links_go_in_transactions_and_leave_the_index_alone(store: StateStore) -> None:
    links = _linked(store, 230)
    index_before = {r.rk: r.etag for r in store.rows.query(MARKETO_INDEX, "person")}
    changed = [replace(link, baseline={**link.baseline, "new_tier": f"T{i}"}) for i, link in enumerate(links)]

    saved, conflicts = store.replace_links("contact", changed)

    assert conflicts == set()
    assert sorted(saved) == [link.dynamics_id for link in links]
    again = store.get_links("contact", [link.dynamics_id for link in links])
    assert {k: v.baseline for k, v in again.items()} == {
        link.dynamics_id: {"name": "old", "new_tier": f"T{i}"} for i, link in enumerate(links)
    }
    assert all(saved[k].etag == again[k].etag for k in again), "the returned ETags are the rows' own"
    assert all(again[k].marketo_id == str(1000 + i) for i, k in enumerate(sorted(again)))
    assert {r.rk: r.etag for r in store.rows.query(MARKETO_INDEX, "person")} == index_before


def test_a_link_saved_meanwhile_is_reported_and_the_rest_of_its_transaction_saved(store: StateStore) -> None:
    links = _linked(store, 120)
    moved = store.save_link(replace(links[5], baseline={"name": "live"}))  # the live sync saved it meanwhile
    changed = [replace(link, baseline={**link.baseline, "new_tier": "T"}) for link in links]

    saved, conflicts = store.replace_links("contact", changed)

    assert conflicts == {links[5].dynamics_id}
    assert len(saved) == 119
    at = address("contact", links[5].dynamics_id)
    row = store.rows.get(LINKS, at.pk, at.rk)
    assert row is not None
    assert row.etag == moved.etag
    assert row.doc["baseline"] == {"name": "live"}
    others = store.get_links("contact", [link.dynamics_id for link in links if link is not links[5]])
    assert all(link.baseline["new_tier"] == "T" for link in others.values())


def test_a_moved_row_costs_a_read_and_a_second_transaction_not_a_write_per_row(store: StateStore) -> None:
    links = _linked(store, 100)
    store.save_link(replace(links[7], baseline={"name": "live"}))  # the live sync saved it meanwhile
    calls: list[str] = []
    rows = store.rows

    class Counting:
        def __getattr__(self, name: str) -> object:
            calls.append(name)
            return getattr(rows, name)

    store.rows = Counting()  # type: ignore[assignment]
    try:
        saved, conflicts = store.replace_links("contact", [replace(link, baseline={"x": 1}) for link in links])
    finally:
        store.rows = rows
    assert conflicts == {links[7].dynamics_id}
    assert len(saved) == 99
    partitions = {address("contact", link.dynamics_id).pk for link in links}
    # a transaction per partition, and for the moved row's: one read and the transaction again without it
    assert sorted(calls) == ["get_many"] + ["write_many"] * (len(partitions) + 1)
