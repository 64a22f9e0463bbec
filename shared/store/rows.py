"""The row primitive each backend implements: ``(table, partition key, row key) -> JSON document + ETag``.

Optimistic concurrency: ``insert`` fails if the row exists, ``replace`` fails unless the caller's ETag is the
current one. Both failures raise :class:`shared.errors.Conflict`; the caller re-reads and decides again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

LINKS = "synclinks"
MARKETO_INDEX = "syncmarketoindex"
CHECKPOINTS = "synccheckpoints"
DOCUMENTS = "syncdocuments"
ERRORS = "syncerrors"
STATS = "syncstats"
CONTROL = "synccontrol"
PENDING = "syncpending"
HISTORY = "synchistory"  # a record's history, one partition per UTC day (shared/store/history.py)
MAPPING_DOCUMENT = "mapping"  # the sync mapping, a document with an ETag
PERSON_CLAIMS = "personclaim"  # CONTROL partition: who creates a Marketo person's lead
TABLES = (LINKS, MARKETO_INDEX, CHECKPOINTS, DOCUMENTS, ERRORS, STATS, CONTROL, PENDING, HISTORY)
BATCH_LIMIT = 100
"""Rows one :meth:`Rows.write_many` request carries (an Azure Table batch transaction holds at most 100)."""


@dataclass(frozen=True, slots=True)
class Row:
    pk: str
    rk: str
    doc: dict[str, Any]
    etag: str


@dataclass(frozen=True, slots=True)
class Write:
    """One row of a :meth:`Rows.write_many`: ``insert`` (must not exist), ``replace`` and ``delete`` (only on
    ``etag``), ``upsert`` (unconditional)."""

    op: Literal["insert", "replace", "upsert", "delete"]
    rk: str
    doc: Mapping[str, Any] | None = None
    etag: str | None = None


class Rows(Protocol):
    """The primitive a backend provides. Keys are plain strings without '/', '\\', '#' or '?'."""

    def get(self, table: str, pk: str, rk: str) -> Row | None: ...

    def get_many(self, table: str, pk: str, rks: Iterable[str]) -> dict[str, Row]: ...

    def insert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str: ...

    def replace(self, table: str, pk: str, rk: str, doc: Mapping[str, Any], etag: str) -> str: ...

    def upsert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str: ...

    def query(self, table: str, pk: str | None = None) -> Iterator[Row]: ...

    def query_range(
        self, table: str, pk: str, ge: str = "", lt: str | None = None, *, limit: int | None = None
    ) -> Iterator[Row]:
        """Rows of one partition whose row key is ``>= ge`` and (when given) ``< lt``, in row-key order, at most
        ``limit`` of them (a prefix query: ``shared.store.history.prefix_range``)."""
        ...

    def delete(self, table: str, pk: str, rk: str) -> None: ...

    def write_many(self, table: str, pk: str, writes: Sequence[Write]) -> dict[str, str | None]:
        """Rows of one partition, each row key at most once, in requests of up to :data:`BATCH_LIMIT` rows
        applied all or nothing (a failed condition raises :class:`Conflict` and that request changes nothing;
        earlier requests stay applied). Returns each row's new ETag (None for a delete)."""
        ...


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)
