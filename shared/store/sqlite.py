"""SQLite rows for the local host: one file, WAL mode, safe across the host's threads."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.errors import Conflict
from shared.store.base import BATCH_LIMIT, Row, StateStore, Write, dumps

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    rk TEXT NOT NULL,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tbl, pk, rk)
)
"""


class SqliteRows:
    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            if str(path) != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _row(pk: str, rk: str, doc: str, version: int) -> Row:
        return Row(pk, rk, json.loads(doc), str(version))

    def get(self, table: str, pk: str, rk: str) -> Row | None:
        with self._lock:
            found = self._db.execute(
                "SELECT doc, version FROM rows WHERE tbl=? AND pk=? AND rk=?", (table, pk, rk)
            ).fetchone()
        return self._row(pk, rk, found[0], found[1]) if found else None

    def get_many(self, table: str, pk: str, rks: Iterable[str]) -> dict[str, Row]:
        keys = list(dict.fromkeys(rks))
        found: dict[str, Row] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(
                    f"SELECT rk, doc, version FROM rows WHERE tbl=? AND pk=? AND rk IN ({marks})",  # noqa: S608
                    (table, pk, *chunk),
                ).fetchall()
            found.update({rk: self._row(pk, rk, doc, version) for rk, doc, version in rows})
        return found

    def insert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO rows (tbl, pk, rk, doc, version) VALUES (?, ?, ?, ?, 1)", (table, pk, rk, dumps(doc))
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"{table}/{pk}/{rk} already exists") from None
        return "1"

    def replace(self, table: str, pk: str, rk: str, doc: Mapping[str, Any], etag: str) -> str:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE rows SET doc=?, version=version+1 WHERE tbl=? AND pk=? AND rk=? AND version=?",
                (dumps(doc), table, pk, rk, int(etag)),
            )
            if cursor.rowcount == 0:
                raise Conflict(f"{table}/{pk}/{rk} changed since it was read (or is gone)")
        return str(int(etag) + 1)

    def upsert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        with self._lock:
            version = self._db.execute(
                "INSERT INTO rows (tbl, pk, rk, doc, version) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT (tbl, pk, rk) DO UPDATE SET doc=excluded.doc, version=rows.version+1 "
                "RETURNING version",
                (table, pk, rk, dumps(doc)),
            ).fetchone()[0]
        return str(version)

    def query(self, table: str, pk: str | None = None) -> Iterator[Row]:
        with self._lock:
            if pk is None:
                rows = self._db.execute(
                    "SELECT pk, rk, doc, version FROM rows WHERE tbl=? ORDER BY pk, rk", (table,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT pk, rk, doc, version FROM rows WHERE tbl=? AND pk=? ORDER BY rk", (table, pk)
                ).fetchall()
        for row_pk, rk, doc, version in rows:
            yield self._row(row_pk, rk, doc, version)

    def query_range(
        self, table: str, pk: str, ge: str = "", lt: str | None = None, *, limit: int | None = None
    ) -> Iterator[Row]:
        sql = "SELECT rk, doc, version FROM rows WHERE tbl=? AND pk=? AND rk>=?"
        params: list[Any] = [table, pk, ge]
        if lt is not None:
            sql += " AND rk<?"
            params.append(lt)
        sql += " ORDER BY rk"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        for rk, doc, version in rows:
            yield self._row(pk, rk, doc, version)

    def delete(self, table: str, pk: str, rk: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM rows WHERE tbl=? AND pk=? AND rk=?", (table, pk, rk))

    def write_many(self, table: str, pk: str, writes: Sequence[Write]) -> dict[str, str | None]:
        etags: dict[str, str | None] = {}
        for start in range(0, len(writes), BATCH_LIMIT):
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    chunk = {w.rk: self._apply(table, pk, w) for w in writes[start : start + BATCH_LIMIT]}
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            etags.update(chunk)
        return etags

    def _apply(self, table: str, pk: str, write: Write) -> str | None:
        """One write inside :meth:`write_many`'s transaction (the lock is held)."""
        where = f"{table}/{pk}/{write.rk}"
        if write.op == "delete":
            cursor = self._db.execute(
                "DELETE FROM rows WHERE tbl=? AND pk=? AND rk=? AND version=?",
                (table, pk, write.rk, int(write.etag or 0)),
            )
            if cursor.rowcount == 0:
                raise Conflict(f"{where} changed since it was read (or is gone)")
            return None
        doc = dumps(write.doc or {})
        if write.op == "insert":
            try:
                self._db.execute(
                    "INSERT INTO rows (tbl, pk, rk, doc, version) VALUES (?, ?, ?, ?, 1)", (table, pk, write.rk, doc)
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"{where} already exists") from None
            return "1"
        if write.op == "replace":
            cursor = self._db.execute(
                "UPDATE rows SET doc=?, version=version+1 WHERE tbl=? AND pk=? AND rk=? AND version=?",
                (doc, table, pk, write.rk, int(write.etag or 0)),
            )
            if cursor.rowcount == 0:
                raise Conflict(f"{where} changed since it was read (or is gone)")
            return str(int(write.etag or 0) + 1)
        version = self._db.execute(
            "INSERT INTO rows (tbl, pk, rk, doc, version) VALUES (?, ?, ?, ?, 1) "
            "ON CONFLICT (tbl, pk, rk) DO UPDATE SET doc=excluded.doc, version=rows.version+1 RETURNING version",
            (table, pk, write.rk, doc),
        ).fetchone()[0]
        return str(version)


def sqlite_store(path: str | Path = ":memory:") -> StateStore:
    return StateStore(SqliteRows(path))
