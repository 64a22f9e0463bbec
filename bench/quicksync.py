"""Quick Sync of linked persons through Marketo bulk import: 100,000 and 1,000,000, with live changes meanwhile.

    python -m bench.quicksync [--persons 100000,1000000] [--live-rate 30] [--alone-seconds 20] [--store all]

For each store in :data:`STORES` (``sqlite``: :mod:`bench._quicksync_sqlite`) and each size: the contacts with a
new column, their Marketo persons and the links are seeded directly (not through the pipeline, so setup takes
seconds), the field is added through ``POST /api/mapping/contact/fields`` and the ``quick_sync`` timer fired until
its job is done, while a person edits contacts in Dynamics at ``--live-rate`` per second. Printed beside the floor
or target each is compared to: Dataverse requests, the backfill's Marketo calls by endpoint, state-store requests
(SQLite: 500 keys per read, 100 rows per batch transaction; and the reads as Azure Table Storage would make them,
14 keys per filter), wall time, the time Marketo's limits would impose, the product's peak memory (the simulators
run in their own process) and its ratio between the sizes, and the p95 from a live change to its write arriving in
Marketo during the backfill and with no backfill.

``seed_linked`` and ``CountingRows`` are the in-process helpers the tests use.
"""

from __future__ import annotations

import argparse
import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.simulators.dataverse.schema import Column
from local.stack import LocalStack
from shared.store.base import BATCH_LIMIT, Rows, Write
from shared.store.model import Link

FIELD = {"dynamics": "new_tier", "marketo": "tier", "create_marketo_field": True}
SQLITE_READ_KEYS = 500  # row keys per SQLite read (shared/store/sqlite.py)


@dataclass
class CountingRows:
    """The state store's row primitive, counting requests (as Table Storage would make them) and rows written."""

    inner: Rows
    requests: Counter[str] = field(default_factory=Counter)
    written: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _count(self, verb: str, requests: int = 1, written: int = 0) -> None:
        with self.lock:
            self.requests[verb] += requests
            self.written += written

    def get(self, table: str, pk: str, rk: str) -> Any:
        self._count("get")
        return self.inner.get(table, pk, rk)

    def get_many(self, table: str, pk: str, rks: Iterable[str]) -> Any:
        keys = list(dict.fromkeys(rks))
        self._count("get_many", math.ceil(len(keys) / SQLITE_READ_KEYS))
        return self.inner.get_many(table, pk, keys)

    def insert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        self._count("insert", written=1)
        return self.inner.insert(table, pk, rk, doc)

    def replace(self, table: str, pk: str, rk: str, doc: Mapping[str, Any], etag: str) -> str:
        self._count("replace", written=1)
        return self.inner.replace(table, pk, rk, doc, etag)

    def upsert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        self._count("upsert", written=1)
        return self.inner.upsert(table, pk, rk, doc)

    def query(self, table: str, pk: str | None = None) -> Any:
        self._count("query")
        return self.inner.query(table, pk)

    def query_range(self, table: str, pk: str, ge: str = "", lt: str | None = None, *, limit: int | None = None) -> Any:
        self._count("query_range")
        return self.inner.query_range(table, pk, ge, lt, limit=limit)

    def delete(self, table: str, pk: str, rk: str) -> None:
        self._count("delete", written=1)
        self.inner.delete(table, pk, rk)

    def write_many(self, table: str, pk: str, writes: Sequence[Write]) -> dict[str, str | None]:
        self._count("write_many", math.ceil(len(writes) / BATCH_LIMIT), written=len(writes))
        return self.inner.write_many(table, pk, writes)


def seed_linked(stack: LocalStack, count: int, column: str, value: Any, entity: str = "contact") -> list[str]:
    """``count`` linked records of ``entity`` (a person entity): Dynamics rows with ``column`` set by
    ``value(i)``, their Marketo persons and the links, put in place directly (no webhook, no pipeline)."""
    assert stack.tenants is not None
    dv, mk = stack.tenants.dataverse, stack.tenants.marketo
    link_field = stack.services.mapping.get(entity).marketo_link_field
    dv.tables[entity].columns.setdefault(column, Column(column, "String", max_length=80))
    ids = [
        dv.seed(
            entity, {"firstname": f"F{i}", "lastname": f"L{i}", "emailaddress1": f"b{i}@example.com", column: value(i)}
        )
        for i in range(count)
    ]
    with mk._lock:  # the simulator's own lock: seeding, not an API call (no webhook, no call counted)
        created = mk.leads.sync(
            "createDuplicate",
            "email",
            [{"email": f"b{i}@example.com", "firstName": f"F{i}", link_field: rid} for i, rid in enumerate(ids)],
            source="List Import",
            reason="seed",
        )
        mk.leads.notes.clear()
    now = datetime.now(UTC)
    links = (Link(entity, rid, str(result["id"]), synced_at=now) for rid, result in zip(ids, created, strict=True))
    stack.services.store.links.insert_many(entity, links)
    return ids


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sqlite_rows(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The SQLite store's figures (:mod:`bench._quicksync_sqlite`): each size in a fresh pair of processes, the
    live edits during each backfill, and alone (no backfill) after the first."""
    from bench._quicksync_sqlite import run  # noqa: PLC0415 - only when this store is measured

    results = [run(n, args.live_rate, args.alone_seconds if k == 0 else 0.0) for k, n in enumerate(args.persons)]
    rows: list[tuple[str, str, str]] = []
    for result in results:
        rows += sqlite_figures(result)
    if len(results) > 1:
        small, large = results[0], results[-1]
        ratio = large["peak_mb"] / small["peak_mb"]
        rows.append(
            (
                f"peak memory {large['n']:,} vs {small['n']:,}",
                f"{ratio:.2f}x ({large['peak_mb']:,.0f} MB vs {small['peak_mb']:,.0f} MB)",
                f"target <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'}",
            )
        )
    alone = results[0]["alone"]
    rows.append(("live p95 alone (no backfill)", _latency(alone), "the live path's own"))
    return rows


def sqlite_figures(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    n = r["n"]
    marketo = {k.removeprefix("marketo "): v for k, v in r["backfill"].items() if k.startswith("marketo ")}
    dataverse = sum(v for k, v in r["backfill"].items() if k.startswith("dataverse "))
    calls = sum(marketo.values())
    store: Mapping[str, int] = r["store"]
    requests = sum(store.values())
    writes = sum(v for k, v in store.items() if k not in ("get", "get_many", "query", "query_range"))
    sync_calls = math.ceil(n / 300)
    return [
        (f"== {n:,} persons (SQLite)", f"seeded in {r['seeded']:.1f} s, {r['runs']} timer runs", ""),
        ("refreshed / failed", f"{r['done']:,} / {r['failed']}", f"must be {n:,} / 0"),
        ("Dataverse requests", f"{dataverse:,}", f"floor {math.ceil(n / 5000)} (ceil(n/5000))"),
        ("Marketo calls (the backfill's)", f"{calls:,}", "target <= 20 for 1M"),
        *((f"  {endpoint}", f"{count:,}", "") for endpoint, count in sorted(marketo.items())),
        ("state-store requests", f"{requests:,} = {requests / n:.4f} per record", "target <= 0.02 per record"),
        ("  write requests", f"{writes:,} = {writes / n:.4f} per record", "target <= 0.02 per record"),
        ("  link reads", "on Table Storage: bench.quicksync_table (Azurite)", "one range read per shard per page"),
        ("wall time", f"{r['elapsed']:.1f} s", "minutes, bound by bulk import"),
        (
            "time Marketo's limits impose",
            f"{_window_time(calls):.0f} s for {calls} calls (300-record syncs: {_window_time(sync_calls):,.0f} s)",
            "100 calls / 20 s, 10 at once",
        ),
        ("product peak RSS", f"{r['peak_mb']:,.0f} MB (started at {r['idle_mb']:,.0f} MB)", "simulators excluded"),
        ("live p95 during the backfill", _latency(r["during"]), "target < 10 s (stretch < 5 s)"),
        ("  Marketo most calls at once", f"{r['marketo_max_in_flight']}", "never above 10"),
        ("  Marketo calls refused", f"{r['rejections'] or 'none'}", "606/615: none"),
    ]


def _window_time(calls: int) -> float:
    """The least time Marketo's 100 calls per sliding 20 s allow ``calls`` calls to take."""
    return max(0, math.ceil(calls / 100) - 1) * 20.0


def _latency(figures: Mapping[str, Any]) -> str:
    if not figures.get("sent"):
        return "not measured"
    return (
        f"p95 {figures['p95']:.2f} s, p50 {figures['p50']:.2f} s "
        f"({figures['arrived']:,} of {figures['sent']:,} changes, {figures['rate']:.1f}/s)"
    )


# The stores measured: each a function of the parsed arguments returning its printed rows.
STORES: dict[str, Callable[[argparse.Namespace], list[tuple[str, str, str]]]] = {"sqlite": sqlite_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--persons",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100_000, 1_000_000],
        help="comma-separated sizes (default 100000,1000000)",
    )
    parser.add_argument("--live-rate", type=float, default=30.0, help="live changes per second (default 30)")
    parser.add_argument(
        "--alone-seconds", type=float, default=20.0, help="live changes with no backfill, for the comparison"
    )
    parser.add_argument("--store", choices=[*STORES, "all"], default="all")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str]] = []
    for name, measure in STORES.items():
        if args.store in (name, "all"):
            rows += measure(args)
    print(f"machine: {os.cpu_count()} cores; simulators in their own process on the wall clock, Marketo's real limits")
    width = max(len(r[0]) for r in rows) + 2
    for name, value, floor in rows:
        print(f"{name:<{width}}{value:<64}{floor}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
