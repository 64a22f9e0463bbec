"""A bulk group's compact per-record memory: ids as 16 bytes, ETags in one buffer, the key order in sorted runs."""

from __future__ import annotations

import random
import uuid

import pytest

from shared.pipeline.quicksync.bulk import RUN, CompactEtags, CompactIds
from shared.store.link_keys import ordered_key


def _guids(rnd: random.Random, n: int) -> list[str]:
    return [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ids_come_back_exactly_and_in_the_stores_key_order(seed: int) -> None:
    rnd = random.Random(seed)
    ids = _guids(rnd, 2 * RUN + 17)
    ids[RUN + 5 : RUN + 5] = ["C-1", "ABCDEF00-0000-4000-8000-000000000000", "{" + ids[0] + "}"]  # other spellings
    ids += _guids(rnd, RUN // 2)
    kept = CompactIds()
    for rid in ids:
        kept.append(rid)
    assert len(kept) == len(ids)
    assert [kept[at] for at in range(len(ids))] == ids
    assert [ids[at] for at in kept.key_order()] == sorted(ids, key=ordered_key)


def test_guids_only_are_ordered_on_their_bytes_as_their_row_keys_sort() -> None:
    ids = _guids(random.Random(9), 3 * RUN)
    kept = CompactIds()
    for rid in ids:
        kept.append(rid)
    assert [ids[at] for at in kept.key_order()] == sorted(ids, key=ordered_key)
    assert list(CompactIds().key_order()) == []


def test_etags_come_back_exactly_none_and_empty_included() -> None:
    etags = [None, "1", "", None, "W/\"datetime'2026-12-01T00%3A00%3A00.1234567Z'\"", "22"]
    kept = CompactEtags()
    for etag in etags:
        kept.append(etag)
    assert [kept[at] for at in range(len(etags))] == etags
