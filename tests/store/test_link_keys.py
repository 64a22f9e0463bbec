"""Link addresses: row keys in SQL Server's uniqueidentifier order (Dataverse's page order), ids back exactly."""

from __future__ import annotations

import functools
import uuid

from hypothesis import given
from hypothesis import strategies as st

from local.simulators.dataverse.key_order import sql_key
from shared.store.link_keys import SHARDS, address, dynamics_id_of, ordered_key, partitions

SQLGUID_ORDER = (10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3)  # System.Data.SqlTypes.SqlGuid


def _sqlguid_compare(a: str, b: str) -> int:
    """SqlGuid.CompareTo, as its reference source writes it: byte by byte of Guid.ToByteArray in that order."""
    x, y = uuid.UUID(a).bytes_le, uuid.UUID(b).bytes_le
    for i in SQLGUID_ORDER:
        if x[i] != y[i]:
            return -1 if x[i] < y[i] else 1
    return 0


guids = st.uuids().map(str)


@given(st.lists(guids, min_size=2, max_size=60, unique=True))
def test_row_keys_sort_as_sql_server_sorts_the_ids(ids: list[str]) -> None:
    expected = sorted(ids, key=functools.cmp_to_key(_sqlguid_compare))
    assert sorted(ids, key=ordered_key) == expected
    assert sorted(ids, key=sql_key) == expected  # the Dataverse simulator pages in the same order


def test_the_last_group_counts_most_and_the_first_group_least() -> None:
    low = "ffffffff-ffff-ffff-ffff-000000000000"
    high = "00000000-0000-0000-0000-000000000001"
    assert ordered_key(low) < ordered_key(high)
    # within the first group, the last byte counts most (Guid.ToByteArray keeps it little-endian)
    assert ordered_key("01000000-0000-0000-0000-000000000000") < ordered_key("00000001-0000-0000-0000-000000000000")


@given(guids)
def test_a_guid_comes_back_exactly_in_lower_case(rid: str) -> None:
    key = ordered_key(rid.upper())
    assert len(key) == 32
    assert dynamics_id_of(key) == rid.lower()


@given(st.text(alphabet=st.characters(blacklist_characters="/\\#?", blacklist_categories=["Cc", "Cs"]), min_size=1))
def test_any_other_id_comes_back_in_lower_case(rid: str) -> None:
    assert dynamics_id_of(ordered_key(rid)) == rid.lower()


def test_links_spread_over_the_shards_of_their_entity() -> None:
    ids = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(4000)]
    used = {address("contact", rid).pk for rid in ids}
    assert used == set(partitions("contact"))
    counts = [sum(1 for rid in ids if address("contact", rid).pk == pk) for pk in partitions("contact")]
    assert min(counts) > 4000 / SHARDS * 0.8  # even, whatever the ids look like
    assert address("contact", ids[0]) == address("contact", ids[0].upper())
