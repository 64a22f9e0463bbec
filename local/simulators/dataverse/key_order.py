"""A table's rows in the order of their primary key, as SQL Server sorts a ``uniqueidentifier``.

Dataverse pages a query in primary-key order (its paging cookie names the last id of a page), and a primary key
is a SQL Server ``uniqueidentifier``: compared by the bytes of ``Guid.ToByteArray`` in the order 10-15, 8-9, 6-7,
4-5, 0-3 (``System.Data.SqlTypes.SqlGuid``), which is not the order of the id's text. Python's
``uuid.UUID.bytes_le`` is that byte array. The index is kept sorted as rows come and go (a bisect each), so a
page costs the same at any table size: a seek to the page's first key, then the page.
"""

from __future__ import annotations

import bisect
import uuid
from dataclasses import dataclass, field

SQL_ORDER = (10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3)


def sql_key(record_id: str) -> bytes:
    """The bytes SQL Server compares, most significant first; an id that is not a GUID sorts after every GUID."""
    try:
        raw = uuid.UUID(record_id).bytes_le
    except ValueError:
        return b"\xff" * 17 + record_id.encode()
    return bytes(raw[i] for i in SQL_ORDER)


@dataclass
class KeyOrder:
    """The ids of one table, sorted by :func:`sql_key` (built on first use, then kept in step)."""

    keys: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, ids: list[str]) -> KeyOrder:
        pairs = sorted((sql_key(i), i) for i in ids)
        return cls([k for k, _ in pairs], [i for _, i in pairs])

    def add(self, record_id: str) -> None:
        key = sql_key(record_id)
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.ids[at] == record_id:
            return
        self.keys.insert(at, key)
        self.ids.insert(at, record_id)

    def remove(self, record_id: str) -> None:
        key = sql_key(record_id)
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.ids[at] == record_id:
            del self.keys[at]
            del self.ids[at]

    def after(self, record_id: str | None) -> int:
        """Where the ids past ``record_id`` start (None: the first)."""
        return 0 if record_id is None else bisect.bisect_right(self.keys, sql_key(record_id))
