"""Quick Sync of linked persons through Marketo bulk import, against both simulators.

    python -m bench.quicksync [--persons 100000]

Seeds ``--persons`` contacts in the simulated Dynamics, their persons in the simulated Marketo and the links in the
state store (SQLite) directly, not through the pipeline, so setup takes seconds. Then a column is added to the
Dataverse table with a value per contact, the field added through ``POST /api/mapping/contact/fields``, and the
``quick_sync`` timer fired until its job is done. Printed beside the floor or target each is compared to:
Dataverse requests, Marketo calls by endpoint, state-store requests (SQLite: 500 keys per read, 100 rows per
batch transaction; and the reads as Azure Table Storage would make them, 14 keys per filter) and rows written,
wall time, peak memory.
Marketo's Call Webhook step is switched off: this measures the backfill, not the live sync's handling of it.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

import function_app
from local.simulators.dataverse.schema import Column
from local.stack import IN_PROCESS_HOST, LocalStack
from shared.store.base import BATCH_LIMIT, LINKS, Rows, Write
from shared.store.model import Link

FIELD = {"dynamics": "new_tier", "marketo": "tier", "create_marketo_field": True}
TABLE_READ_KEYS = 14  # row keys per Table Storage read filter (15 comparisons, one for the partition)
SQLITE_READ_KEYS = 500  # row keys per SQLite read (shared/store/sqlite.py)


@dataclass
class CountingRows:
    """The state store's row primitive, counting requests (as Table Storage would make them) and rows written."""

    inner: Rows
    requests: Counter[str] = field(default_factory=Counter)
    table_reads: int = 0  # get_many requests as Table Storage would make them
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
        with self.lock:
            self.table_reads += math.ceil(len(keys) / TABLE_READ_KEYS)
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
    store = stack.services.store
    now = datetime.now(UTC)
    for start in range(0, count, BATCH_LIMIT):
        writes = [
            Write("insert", rid, store._link_doc(Link(entity, rid, str(result["id"])), now))
            for rid, result in zip(ids[start : start + BATCH_LIMIT], created[start : start + BATCH_LIMIT], strict=True)
        ]
        store.rows.write_many(LINKS, entity, writes)
    return ids


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    args = parser.parse_args(argv)
    n = args.persons

    dataverse_requests = Counter[str]()

    def probe(request: httpx.Request) -> None:
        if "/api/data/" in request.url.path:
            dataverse_requests[request.method] += 1

    stack = LocalStack(
        function_app.app,
        in_process=True,
        run_timers=False,
        run_job_nudges=False,  # the runs below are the ones measured
        observe=probe,
        overrides={"QUICK_SYNC_BUDGET_SECONDS": "3600"},
    ).start()
    rows: list[tuple[str, str, str]] = []
    try:
        assert stack.tenants is not None
        mk = stack.tenants.marketo
        mk.configure_webhook(None, None)
        began = time.perf_counter()
        seed_linked(stack, n, str(FIELD["dynamics"]), lambda i: f"Tier {i % 7}")
        seeded = time.perf_counter() - began
        rss_before = rss_mb()
        request = httpx.Request("POST", f"{IN_PROCESS_HOST}/api/mapping/contact/fields", json=FIELD)
        answer = stack.host.handle_http(request)
        assert answer.status_code == 202, answer.content
        counting = CountingRows(stack.services.store.rows)
        stack.services.store.rows = counting
        calls_before = mk.call_counts()
        dataverse_requests.clear()
        started = time.perf_counter()
        runs = 0
        while True:
            runs += 1
            stack.host.fire("quick_sync")
            job = stack.services.store.list_checkpoints()
            docs = [c.value for c in job if c.name.startswith("quicksync:")]
            if (docs and all('"state": "done"' in d for d in docs)) or runs >= 20:
                break
        elapsed = time.perf_counter() - started
        calls = Counter(mk.call_counts())
        calls.subtract(calls_before)
        marketo = {k: v for k, v in calls.items() if v and "identity" not in k}
        refreshed = sum(1 for lead in mk.leads.leads.values() if lead.get("tier") is not None)
        rows.append(("persons", f"{n:,} linked contacts (seeded in {seeded:.1f} s)", ""))
        rows.append(("refreshed in Marketo", f"{refreshed:,}", f"must be {n:,}"))
        rows.append(("timer runs", f"{runs}", ""))
        rows.append(
            (
                "Dataverse requests",
                f"{sum(dataverse_requests.values()):,}",
                f"floor {math.ceil(n / 5000)} (ceil(n/5000))",
            )
        )
        total = sum(marketo.values())
        rows.append(("Marketo calls", f"{total:,}", "target <= 20 for 1M"))
        for endpoint, count in sorted(marketo.items()):
            rows.append((f"  {endpoint}", f"{count:,}", ""))
        requests = sum(counting.requests.values())
        writes = sum(v for k, v in counting.requests.items() if k not in ("get", "get_many", "query"))
        rows.append(
            ("state-store requests", f"{requests:,} = {requests / n:.4f} per record", "target <= 0.02 per record")
        )
        for verb, count in sorted(counting.requests.items()):
            rows.append((f"  {verb}", f"{count:,}", ""))
        rows.append(("  write requests", f"{writes:,} = {writes / n:.4f} per record", "target <= 0.02 per record"))
        rows.append(
            (
                "  link reads on Table Storage",
                f"{counting.table_reads:,} = {counting.table_reads / n:.4f} per record",
                "14 keys per filter",
            )
        )
        rows.append(
            (
                "state-store rows written",
                f"{counting.written:,} = {counting.written / n:.4f} per record",
                "one baseline per record",
            )
        )
        rows.append(("wall time", f"{elapsed:.1f} s", "minutes, bound by bulk import"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(("memory", f"RSS {rss_before:,.0f} MB seeded, {rss_mb():,.0f} MB after; peak {peak:,.0f} MB", ""))
    finally:
        stack.stop()
    print(f"machine: {os.cpu_count()} cores; simulators in-process, SQLite state store in memory")
    width = max(len(r[0]) for r in rows) + 2
    for name, value, floor in rows:
        print(f"{name:<{width}}{value:<56}{floor}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
