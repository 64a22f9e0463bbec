"""How the Table Storage rows reach the service: batch transactions built by hand (split at 100 rows and 4 MiB,
keys escaped, the ETags they return good for the next conditional write) and many-key reads (a dense run of keys
read as one range, sparse keys by 14-key filters in parallel), with the requests counted as they went to Azurite.
The same reads and writes run on SQLite too: the answers must not depend on the backend."""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableEntity, TableServiceClient

from shared.errors import Conflict
from shared.store.base import BATCH_LIMIT, LINKS, PENDING, StateStore, Write
from shared.store.link_keys import SHARDS, ordered_key
from shared.store.model import Link
from shared.store.sqlite import sqlite_store
from shared.store.table_transactions import MAX_BODY_BYTES, chunks, operation
from shared.store.tables import RANGE_MIN_KEYS, TableRows, _read_dense, table_store

_suffixes = iter(range(1_000_000))


class Requests:
    """Every HTTP request the Table client sent: ``$batch`` for a transaction, else by method."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def hook(self, response: Any) -> None:
        request = response.http_request
        self.sent["$batch" if request.url.endswith("/$batch") else request.method] += 1


@pytest.fixture
def requests() -> Requests:
    return Requests()


@pytest.fixture(params=["sqlite", "azure-tables"])
def counted(request: pytest.FixtureRequest, requests: Requests, tmp_path: Any) -> Iterator[StateStore]:
    """A store on either backend; on Table Storage, its requests counted in ``requests``."""
    if request.param == "sqlite":
        yield sqlite_store(tmp_path / "state.sqlite3")
        return
    endpoint = request.getfixturevalue("azurite_endpoint")
    development = TableServiceClient.from_connection_string("UseDevelopmentStorage=true")
    service = TableServiceClient(endpoint=endpoint, credential=development.credential, raw_response_hook=requests.hook)
    rows = TableRows(service, table_suffix=f"q{os.getpid()}n{next(_suffixes)}")
    yield table_store(rows)


def _on_tables(store: StateStore) -> bool:
    return isinstance(store.rows, TableRows)


def test_transactions_hold_at_most_100_rows_and_4_mib_in_order() -> None:
    small = [operation({"RowKey": f"r{i}", "doc0": "x"}, Write("upsert", f"r{i}", {})) for i in range(250)]
    assert [len(c) for c in chunks(small)] == [BATCH_LIMIT, BATCH_LIMIT, 50]
    big = [operation({"RowKey": f"b{i}", "doc0": "y" * 900_000}, Write("upsert", f"b{i}", {})) for i in range(9)]
    sized = list(chunks(big))
    assert [op.write.rk for c in sized for op in c] == [f"b{i}" for i in range(9)]
    assert all(sum(op.size for op in c) <= MAX_BODY_BYTES for c in sized)
    assert [len(c) for c in sized] == [4, 4, 1]
    deletes = [operation({}, Write("delete", f"d{i}", etag="*")) for i in range(3)]
    assert [op.body for c in chunks(deletes) for op in c] == [None, None, None]


@pytest.mark.azurite
def test_rows_past_4_mib_in_all_are_written_in_several_transactions(counted: StateStore, requests: Requests) -> None:
    doc = {"memo": "m" * 450_000}  # 16 parts of 30,000 characters: under the service's 1 MiB a row
    writes = [Write("insert", f"big{i:02d}", {**doc, "i": i}) for i in range(12)]
    etags = counted.rows.write_many(PENDING, "contact", writes)
    assert sorted(etags) == [f"big{i:02d}" for i in range(12)]
    found = counted.rows.get_many(PENDING, "contact", [f"big{i:02d}" for i in range(12)])
    assert {rk: row.doc["i"] for rk, row in found.items()} == {f"big{i:02d}": i for i in range(12)}
    assert all(row.doc["memo"] == doc["memo"] for row in found.values())
    if _on_tables(counted):
        assert requests.sent["$batch"] == 2  # 5.4 MB of rows: two transactions, not one the service would refuse


def test_batch_etags_serve_the_next_conditional_write_and_odd_keys_round_trip(counted: StateStore) -> None:
    keys = ["o'neil", "ümlaut café", "a b+c&d=e", "100%"]
    etags = counted.rows.write_many(PENDING, "p'x", [Write("insert", k, {"k": k}) for k in keys])
    for key in keys:
        row = counted.rows.get(PENDING, "p'x", key)
        assert row is not None
        assert (row.doc, row.etag) == ({"k": key}, etags[key])
    replaced = counted.rows.write_many(PENDING, "p'x", [Write("replace", k, {"k": "new"}, etag=etags[k]) for k in keys])
    with pytest.raises(Conflict):  # the first ETags are spent
        counted.rows.write_many(PENDING, "p'x", [Write("replace", keys[0], {"k": "again"}, etag=etags[keys[0]])])
    counted.rows.write_many(PENDING, "p'x", [Write("delete", k, etag=replaced[k]) for k in keys])
    assert counted.rows.get_many(PENDING, "p'x", keys) == {}


@pytest.mark.azurite
def test_a_dense_run_of_keys_is_read_as_a_range_and_sparse_keys_by_filters(
    counted: StateStore, requests: Requests
) -> None:
    dense = [f"{i:05d}" for i in range(1500)]  # stored links, one after the other
    for start in range(0, len(dense), BATCH_LIMIT):
        counted.rows.write_many(LINKS, "contact", [Write("insert", k, {"n": k}) for k in dense[start : start + 100]])
    sparse = [f"{i:05d}" for i in range(1500, 30_000, 100)]  # 285 links far apart, between unwanted rows
    unwanted = [f"{i:05d}" for i in range(1500, 30_000) if i % 100 and i % 7 == 0][:3000]
    for keys in (sparse, unwanted):
        for start in range(0, len(keys), BATCH_LIMIT):
            counted.rows.write_many(LINKS, "contact", [Write("insert", k, {"n": k}) for k in keys[start : start + 100]])
    missing = ["00010x", "zzz"]
    asked = dense[::2] + dense[1::2] + sparse + missing  # any order, missing ids absent from the answer
    assert len(asked) >= RANGE_MIN_KEYS
    requests.sent.clear()
    found = counted.rows.get_many(LINKS, "contact", asked)
    assert sorted(found) == sorted(dense + sparse)
    assert all(row.doc == {"n": rk} for rk, row in found.items())
    if _on_tables(counted):
        # the dense run in 2 or 3 pages of 1000 (the last one found sparse), the rest by at most 21 filters,
        # where 14-key filters alone would take 129
        assert requests.sent["GET"] <= 3 + 21, requests.sent


class _Pages:
    """A range query's answer as the service may page it: an empty page (with a continuation) among full ones."""

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages

    def query_entities(self, *_: Any, **__: Any) -> _Pages:
        return self

    def by_page(self) -> Iterator[list[TableEntity]]:
        for keys in self.pages:
            entities = []
            for key in keys:
                entity = TableEntity(PartitionKey="contact", RowKey=key, parts=1, doc0='{"k":1}')
                entity._metadata = {"etag": f"e-{key}", "timestamp": None}
                entities.append(entity)
            yield entities


def test_an_empty_page_of_a_range_read_is_read_past_not_taken_for_its_end() -> None:
    keys = [f"k{i}" for i in range(6)]
    found: dict[str, Any] = {}
    left = _read_dense(_Pages([["k0", "k1"], [], ["k2", "k3", "k4", "k5"]]), "contact", keys, found)  # type: ignore[arg-type]
    assert (sorted(found), left) == (keys, [])
    sparse = _Pages([["k0", "k0a", "k0b", "k0c", "k0d"], ["k5"]])  # one wanted row in five: the rest by filters
    found.clear()
    assert _read_dense(sparse, "contact", keys, found) == keys[1:]  # type: ignore[arg-type]
    assert found["k0"].etag == "e-k0"


@pytest.mark.azurite
def test_a_page_of_links_in_dataverse_order_is_read_as_one_range_per_shard_and_a_live_batch_by_filters(
    counted: StateStore, requests: Requests
) -> None:
    rnd = random.Random(5)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(4000)]
    counted.links.insert_many("contact", [Link("contact", rid, str(i)) for i, rid in enumerate(ids)])
    page = sorted(ids, key=ordered_key)[1500:2500]  # a Dataverse page: consecutive in primary-key order
    counted.links.legacy_left("contact")  # (asked once a minute; not this read's cost)
    requests.sent.clear()
    found = counted.get_links("contact", page)
    assert sorted(found) == sorted(page)
    assert all(found[rid].marketo_id == str(ids.index(rid)) for rid in page[:50])
    if _on_tables(counted):
        assert requests.sent["GET"] <= SHARDS, requests.sent  # 1000 links: one range page per shard
    live = random.Random(6).sample(ids, 300)  # a live batch: ids from anywhere
    requests.sent.clear()
    assert sorted(counted.get_links("contact", live)) == sorted(live)
    if _on_tables(counted):
        # ~38 ids a shard, below RANGE_MIN_KEYS: filters of 14 (never a range page of unwanted rows)
        assert requests.sent["GET"] <= SHARDS * 4, requests.sent
