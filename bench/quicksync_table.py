"""Quick Sync of linked persons on the Azure Table Storage state store (Azurite), beside the same on SQLite.

    python -m bench.quicksync_table [--persons 100000] [--skip-sqlite] [--max-minutes 20]

Starts Azurite's table service itself (in-memory, a temporary directory, a free loopback port; stopped at the
end), points the product's state store at it, seeds ``--persons`` linked contacts (the Dynamics rows, their
Marketo persons, and the links written through ``Links.insert_many``: batch transactions of 100 per partition),
adds a field and fires the ``quick_sync`` timer until its job is done. Then the same on SQLite (in memory).
Printed: Dataverse requests, Marketo calls, state-store requests as they went over HTTP to Azurite (counted on the
Table client's pipeline, one per request sent, by kind), wall time of the seeding and of the Quick Sync, the CPU
seconds of this process and of Azurite in each phase (on a loaded machine wall time is noisy; CPU is not), and the
ratio to SQLite.

Each Dataverse page's links are one run of row keys per shard (``shared.store.link_keys``), read as ranges. What
is left is Azurite's own cost: it keeps each table in one LokiJS collection, and an update there is a remove and
an insert whose index upkeep walks the whole collection, so its CPU per baseline write grows with the table (the
real service seeks an index). The figures print the product's CPU and Azurite's apart for that reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
from azure.data.tables import TableServiceClient

import function_app
from bench.quicksync import FIELD, seed_linked
from local.azurite import ROOT, azurite, installed
from local.stack import IN_PROCESS_HOST, LocalStack
from shared.store.base import StateStore
from shared.store.sqlite import sqlite_store
from shared.store.tables import TableRows, table_store

MAX_TIMER_RUNS = 40


@dataclass
class RequestCount:
    """Every HTTP request the Table client sent (retries included), by kind: ``GET syncLinks``, ``$batch``, ..."""

    kinds: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, response: Any) -> None:
        request = response.http_request
        path = unquote(urlparse(request.url).path).rsplit("/", 1)[-1]
        table = path.split("(", 1)[0] or "?"
        with self.lock:
            self.kinds[f"{request.method} {table}"] += 1

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.kinds)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Phase:
    wall: float = 0.0
    cpu: float = 0.0  # this process
    store_cpu: float = 0.0  # Azurite's
    requests: Counter[str] = field(default_factory=Counter)


@dataclass
class Run:
    store: str
    persons: int
    seeding: Phase = field(default_factory=Phase)
    quick_sync: Phase = field(default_factory=Phase)
    dataverse: int = 0
    marketo: Counter[str] = field(default_factory=Counter)
    refreshed: int = 0
    timer_runs: int = 0
    done: bool = False


def run(
    n: int, store: StateStore, count: RequestCount | None, store_cpu: Callable[[], float], max_minutes: float
) -> Run:
    """Seed ``n`` linked contacts into ``store``, add a field and run its Quick Sync to done (or ``max_minutes``:
    each timer run is given what is left of them, and no run starts after)."""
    dataverse_requests = Counter[str]()

    def probe(request: httpx.Request) -> None:
        if "/api/data/" in request.url.path:
            dataverse_requests[request.method] += 1

    stack = LocalStack(
        function_app.app,
        in_process=True,
        run_timers=False,
        run_job_nudges=False,
        observe=probe,
        overrides={"QUICK_SYNC_BUDGET_SECONDS": str(round(max_minutes * 60))},
    ).start()
    result = Run("table" if count is not None else "sqlite", n)
    try:
        stack.services.store = store
        stack.restart(keep_queue=True)  # services (and the Marketo budget's ledger) over this store
        assert stack.tenants is not None
        mk = stack.tenants.marketo
        mk.configure_webhook(None, None)
        with _phase(result.seeding, count, store_cpu):
            seed_linked(stack, n, str(FIELD["dynamics"]), lambda i: f"Tier {i % 7}")
        request = httpx.Request("POST", f"{IN_PROCESS_HOST}/api/mapping/contact/fields", json=FIELD)
        answer = stack.host.handle_http(request)
        assert answer.status_code == 202, answer.content
        calls_before = mk.call_counts()
        dataverse_requests.clear()
        deadline = time.monotonic() + max_minutes * 60
        with _phase(result.quick_sync, count, store_cpu):
            while result.timer_runs < MAX_TIMER_RUNS and not result.done and time.monotonic() < deadline:
                result.timer_runs += 1
                stack.host.fire("quick_sync")
                docs = [c.value for c in stack.services.store.list_checkpoints() if c.name.startswith("quicksync:")]
                result.done = bool(docs) and all('"state": "done"' in d for d in docs)
        calls = Counter(mk.call_counts())
        calls.subtract(calls_before)
        result.marketo = Counter({k: v for k, v in calls.items() if v and "identity" not in k})
        result.dataverse = sum(dataverse_requests.values())
        result.refreshed = sum(1 for lead in mk.leads.leads.values() if lead.get("tier") is not None)
    finally:
        stack.stop()
    return result


@contextmanager
def _phase(phase: Phase, count: RequestCount | None, store_cpu: Callable[[], float]) -> Iterator[None]:
    before = count.snapshot() if count else Counter[str]()
    wall, cpu, node = time.perf_counter(), _cpu(), store_cpu()
    try:
        yield
    finally:
        phase.wall, phase.cpu, phase.store_cpu = time.perf_counter() - wall, _cpu() - cpu, store_cpu() - node
        if count is not None:
            phase.requests = count.snapshot()
            phase.requests.subtract(before)


def _per(value: float, n: int) -> str:
    return f"{value:,.0f} = {value / n:.4f} per record"


def report(table: Run, sqlite: Run | None) -> list[tuple[str, str, str]]:
    n = table.persons
    rows: list[tuple[str, str, str]] = [("persons", f"{n:,} linked contacts", "")]
    rows.append(("refreshed in Marketo", f"{table.refreshed:,}", f"must be {n:,}"))
    rows.append(("job done", f"{table.done} after {table.timer_runs} timer runs", "" if table.done else "stopped"))
    rows.append(("Dataverse requests", f"{table.dataverse:,}", f"floor {math.ceil(n / 5000)} (ceil(n/5000))"))
    rows.append(("Marketo calls", f"{sum(table.marketo.values()):,}", ", ".join(sorted(table.marketo))))
    for name, phase in (("seeding", table.seeding), ("quick sync", table.quick_sync)):
        total = sum(phase.requests.values())
        rows.append((f"store requests, {name}", _per(total, n), "HTTP requests to Azurite"))
        for kind, count in sorted(phase.requests.items()):
            if count:
                rows.append((f"  {kind}", f"{count:,}", ""))
    for name, phase, other in (
        ("seeding", table.seeding, sqlite.seeding if sqlite else None),
        ("quick sync", table.quick_sync, sqlite.quick_sync if sqlite else None),
    ):
        ratio = f"{phase.wall / other.wall:.1f}x SQLite ({other.wall:.1f} s)" if other and other.wall else ""
        rows.append((f"wall, {name}", f"{phase.wall:.1f} s", ratio))
        rows.append((f"  CPU, {name}", f"bench {phase.cpu:.1f} s, Azurite {phase.store_cpu:.1f} s", ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--skip-sqlite", action="store_true", help="only the Table Storage run")
    parser.add_argument("--max-minutes", type=float, default=20.0, help="the Quick Sync's time on each store")
    args = parser.parse_args(argv)
    n = args.persons
    if not installed():
        raise SystemExit("Azurite is not installed: run `npm install` (`make test` does) first")
    with azurite() as service:
        count = RequestCount()
        development = TableServiceClient.from_connection_string("UseDevelopmentStorage=true")
        client = TableServiceClient(
            endpoint=service.endpoint, credential=development.credential, raw_response_hook=count.hook
        )
        table = run(n, table_store(TableRows(client)), count, service.cpu_seconds, args.max_minutes)
    sqlite = None if args.skip_sqlite else run(n, sqlite_store(), None, lambda: 0.0, args.max_minutes)
    version = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text()).get("version", "?")
    print(f"machine: {os.cpu_count()} cores; simulators in-process; Azurite {version} in memory; SQLite in memory")
    rows = report(table, sqlite)
    width = max(len(r[0]) for r in rows) + 2
    for name, value, floor in rows:
        print(f"{name:<{width}}{value:<48}{floor}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
