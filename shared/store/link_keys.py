"""Where a link lives in the store: its partition and row key, a pure function of the entity and the Dynamics id.

Two things decide the layout, both about reading many links at once:

* **Row keys in Dataverse's page order.** Dataverse pages a table in the order of its primary key, a SQL Server
  ``uniqueidentifier``, which does not sort as the id's text: SQL Server compares the last six bytes first, then
  bytes 8-9, 7-6, 5-4 and 3-0 (``System.Data.SqlTypes.SqlGuid``'s comparison order over ``Guid.ToByteArray``).
  A link's row key is its id's 16 bytes in that order, as 32 hex digits, so the links of one Dataverse page are
  one unbroken run of keys, which Table Storage reads as a range (pages of 1000 rows) instead of filters naming 14
  keys each -- filters that the service answers with a scan of the partition (an ``or`` of row keys is not a
  range query).
* **:data:`SHARDS` partitions per entity**, the shard a hash of the key. Table Storage serves one partition at up
  to 2,000 entities a second, and Azurite's cost per request grows with the partition; a Quick Sync of a million
  links spreads its reads and baseline writes over all of them. Within each shard the keys keep the page order,
  so a page is still one run per shard: a page of 5000 is read in :data:`SHARDS` range requests.

Before this layout, a link lived in the partition named by the entity under its lower-case id: a *legacy* row.
:mod:`shared.store.links` still reads those, and moves them (:mod:`shared.store.link_layout`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

SHARDS = 8
"""Partitions per entity. Fixed: a link's address must not change (a different count is a new layout)."""
SHARD_MARK = "~"
"""Between the entity and its shard number in a partition key (an entity's logical name never holds one)."""
_OTHER = "="  # the row key of an id that is not a GUID: this mark, then the id in lower case
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_KEY = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Address:
    pk: str
    rk: str


def ordered_key(dynamics_id: str) -> str:
    """The row key: a GUID's bytes in SQL Server's comparison order as hex (a text order that is Dataverse's page
    order); any other id, :data:`_OTHER` and the id in lower case (tests and hand-made ids; they sort apart)."""
    text = dynamics_id.lower()
    return guid_key(text) or _OTHER + text


def guid_key(dynamics_id: str) -> str | None:
    """:func:`ordered_key` of a GUID in Dataverse's spelling (``8-4-4-4-12`` lower-case hex); None for any other
    spelling."""
    if not _GUID.fullmatch(dynamics_id):
        return None
    g1, g2, g3, g4, g5 = dynamics_id.split("-")
    # Guid.ToByteArray: g1, g2 and g3 little-endian, g4 and g5 as written; compared as bytes 10-15, 8-9, 6-7,
    # 4-5, 0-3 -- g5, g4, g3's bytes swapped, g2's swapped, g1's reversed.
    return g5 + g4 + g3[2:] + g3[:2] + g2[2:] + g2[:2] + g1[6:] + g1[4:6] + g1[2:4] + g1[:2]


def dynamics_id_of(key: str) -> str:
    """The Dynamics id a row key was made from (the inverse of :func:`ordered_key`, in lower case)."""
    if key.startswith(_OTHER):
        return key[len(_OTHER) :]
    if not _KEY.fullmatch(key):
        return key  # a legacy row: its key is the id
    g5, g4 = key[:12], key[12:16]
    g3 = key[18:20] + key[16:18]
    g2 = key[22:24] + key[20:22]
    g1 = key[30:32] + key[28:30] + key[26:28] + key[24:26]
    return f"{g1}-{g2}-{g3}-{g4}-{g5}"


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


def partition(entity: str, shard: int) -> str:
    return f"{entity}{SHARD_MARK}{shard}"


def partitions(entity: str) -> list[str]:
    """Every partition of an entity's links, in order (a walk over them all goes in this order)."""
    return [partition(entity, shard) for shard in range(SHARDS)]


def address(entity: str, dynamics_id: str) -> Address:
    key = ordered_key(dynamics_id)
    return Address(partition(entity, shard_of(key)), key)


def legacy_address(entity: str, dynamics_id: str) -> Address:
    """Where the layout before this one kept the link: the entity's one partition, the id as its key."""
    return Address(entity, dynamics_id.lower())
