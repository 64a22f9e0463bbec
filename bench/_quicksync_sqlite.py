"""``bench.quicksync`` on the SQLite state store: the simulators in their own process, the product in another.

Three processes, so the product's peak memory is the product's own: this one (the orchestrator) starts
``python -m local.simulators --ephemeral`` on the wall clock with Marketo's real limits (100 calls / 20 s, 10
concurrent), seeds it through ``/_simulator/seed`` (the contacts with the new column, their persons) and writes the
links straight into a SQLite file in ``/dev/shm`` (the store is another service in production; its file is not the
product's memory). Then it spawns the product (:func:`product`: the local host on a port, the real clients over
loopback) and, while the Quick Sync runs, makes live edits of contacts at ``--live-rate`` per second through
``/_simulator/edit`` (a person's edit: the plug-in step posts to the product's webhook). The product notes when each
edit's token first reaches Marketo; the latency is from the edit to that arrival. Marketo's Call Webhook step is
off: the bulk import would call it for every record.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from bench._quicksync_live import LiveEdits, percentile
from bench.quicksync import CountingRows
from local.loopback import free_port
from shared.store.model import Link
from shared.store.sqlite import sqlite_store

ROOT = Path(__file__).resolve().parent.parent
FIELD = {"dynamics": "new_tier", "marketo": "tier", "create_marketo_field": True}
ID = "00000000-0000-4000-8000-{i:012x}"
TIERS = [f"Tier {n}" for n in range(7)]
LINK_FIELD = "dynamicsContactId"  # the contact's link field in config/mapping.json
TOKEN = re.compile(rb"LV\d{8}")


@contextmanager
def simulators(directory: Path, product_url: str) -> Iterator[dict[str, str]]:
    """``python -m local.simulators --ephemeral`` on free ports; yields the settings it wrote."""
    command = [sys.executable, "-m", "local.simulators", "--state", str(directory), "--ephemeral"]
    command += ["--dataverse-port", "0", "--marketo-port", "0", "--product-url", product_url]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    settings_file = directory / "settings.json"
    try:
        deadline = time.monotonic() + 120
        while not settings_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the simulators did not start")
            time.sleep(0.1)
        time.sleep(0.2)  # written in one go; let it land
        yield json.loads(settings_file.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def seed(sims: dict[str, str], n: int, state: str) -> None:
    """``n`` contacts (with the new column), their persons, and the links between them."""
    with httpx.Client(timeout=900.0) as http:
        contacts = {"firstname": "F{i}", "lastname": "L{i}", "emailaddress1": "b{i}@example.com", "new_tier": TIERS}
        column = {"name": "new_tier", "type": "String", "max_length": 80}
        body = {"entity": "contact", "count": n, "id": ID, "values": contacts, "columns": [column]}
        http.post(f"{sims['DATAVERSE_URL']}/_simulator/seed", json=body).raise_for_status()
        persons = {"email": "b{i}@example.com", "firstName": "F{i}", LINK_FIELD: ID}
        answer = http.post(f"{sims['MARKETO_BASE_URL']}/_simulator/seed", json={"count": n, "values": persons})
        answer.raise_for_status()
        first = int(answer.json()["first_id"])
        http.post(f"{sims['MARKETO_BASE_URL']}/_simulator/webhooks", json={"enabled": False}).raise_for_status()
    store = sqlite_store(state)
    now = datetime.now(UTC)
    store.links.insert_many(
        "contact", (Link("contact", ID.format(i=i), str(first + i), synced_at=now) for i in range(n))
    )


BACKFILL = ContextVar("backfill", default=False)
"""True in the main thread (which fires the Quick Sync timer) and in what it hands to pools: the backfill's side."""


class MainThreadRows(CountingRows):
    """Counts the store requests of the main thread only (and of the pools working for it): the backfill's, not
    the live sync's."""

    def _count(self, verb: str, requests: int = 1, written: int = 0) -> None:
        if BACKFILL.get():
            super()._count(verb, requests, written)

    def get_many(self, table: str, pk: str, rks: Iterable[str]) -> Any:
        if BACKFILL.get():
            return super().get_many(table, pk, rks)
        return self.inner.get_many(table, pk, rks)


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def product(sims: dict[str, str], state: str, port: int, conn: Connection) -> None:
    """The product's process: the local host over the SQLite file, the Quick Sync fired until done (in this, the
    main thread: what it calls is the backfill's), the first arrival of each live token in Marketo noted."""
    import function_app  # noqa: PLC0415 - the product, in its own process
    from local.stack import LocalStack  # noqa: PLC0415

    BACKFILL.set(True)  # this thread's context; the host's threads start with their own
    backfill: Counter[str] = Counter()
    arrivals: dict[str, float] = {}
    lock = threading.Lock()

    def probe(request: httpx.Request) -> None:
        now = time.time()
        marketo = request.url.port == httpx.URL(sims["MARKETO_BASE_URL"]).port
        if BACKFILL.get() and "identity" not in request.url.path:
            path = re.sub(r"/\d+(?=[./])", "/{id}", request.url.path)
            backfill[f"{'marketo' if marketo else 'dataverse'} {request.method} {path}"] += 1
        elif marketo and request.method == "POST":
            with lock:
                for token in TOKEN.findall(request.content):
                    arrivals.setdefault(token.decode(), now)

    overrides = {"QUICK_SYNC_BUDGET_SECONDS": "3600"}
    stack = LocalStack(
        function_app.app,
        port=port,
        sims=sims,
        state_path=state,
        run_timers=False,
        run_job_nudges=False,
        observe=probe,
        overrides=overrides,
    ).start()
    try:
        conn.send(("ready", peak_rss_mb()))
        conn.recv()  # go
        request = httpx.Request("POST", f"{stack.host.url}/api/mapping/contact/fields", json=FIELD)
        answer = stack.host.handle_http(request)
        assert answer.status_code == 202, answer.content
        counting = MainThreadRows(stack.services.store.rows)
        stack.services.store.rows = counting
        backfill.clear()
        started, runs = time.perf_counter(), 0
        job: dict[str, Any] = {}
        while runs < 20:
            runs += 1
            stack.host.fire("quick_sync")
            docs = [
                json.loads(c.value) for c in stack.services.store.list_checkpoints() if c.name.startswith("quicksync:")
            ]
            job = docs[0] if docs else {}
            if docs and all(d["state"] == "done" for d in docs):
                break
        elapsed = time.perf_counter() - started
        stack.services.store.rows = counting.inner
        figures = {
            "elapsed": elapsed, "runs": runs, "peak_mb": peak_rss_mb(), "backfill": dict(backfill),
            "store": dict(counting.requests), "written": counting.written,
            "done": job.get("records_done"), "failed": job.get("records_failed"),
        }  # fmt: skip
        conn.send(("done", figures))
        conn.recv()  # stop
        with lock:
            conn.send(("arrivals", dict(arrivals)))
    finally:
        stack.stop()


def run(n: int, live_rate: float, alone_seconds: float) -> dict[str, Any]:
    """One Quick Sync of ``n`` persons, live edits at ``live_rate`` per second while it runs (and, with
    ``alone_seconds``, for that long after it, with no backfill); the figures of both processes."""
    port = free_port()
    with (
        tempfile.TemporaryDirectory() as directory,
        tempfile.TemporaryDirectory(dir=_shm()) as shm,
        simulators(Path(directory), f"http://127.0.0.1:{port}") as sims,
    ):
        began = time.perf_counter()
        state = str(Path(shm) / "state.db")
        seed(sims, n, state)
        seeded = time.perf_counter() - began
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        child = context.Process(target=product, args=(sims, state, port, theirs), daemon=True)
        child.start()
        try:
            _, idle_mb = ours.recv()
            edits = LiveEdits(sims["DATAVERSE_URL"], [ID.format(i=i) for i in range(0, n, max(1, n // 5000))])
            with edits.running(live_rate):
                ours.send("go")
                _, figures = ours.recv()
            during = edits.sent()
            alone: dict[str, float] = {}
            if alone_seconds:
                time.sleep(5.0)  # the last edits of the backfill phase arrive
                with edits.running(live_rate):
                    time.sleep(alone_seconds)
                alone = edits.sent(after=during)
            time.sleep(10.0)
            ours.send("stop")
            _, arrivals = ours.recv()
        finally:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
        with httpx.Client(timeout=30.0) as http:
            marketo = http.get(f"{sims['MARKETO_BASE_URL']}/_simulator/calls").json()
    return {
        **figures, "n": n, "seeded": seeded, "idle_mb": idle_mb,
        "during": _latencies(during, arrivals, figures["elapsed"]),
        "alone": _latencies(alone, arrivals, alone_seconds),
        "marketo_max_in_flight": marketo.get("max_in_flight"), "rejections": marketo.get("rejections"),
    }  # fmt: skip


def _latencies(sent: dict[str, float], arrivals: dict[str, float], seconds: float) -> dict[str, Any]:
    latencies = [arrivals[t] - at for t, at in sent.items() if t in arrivals]
    return {
        "sent": len(sent),
        "rate": len(sent) / seconds if seconds else 0.0,
        "arrived": len(latencies),
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
    }


def _shm() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None  # noqa: S108
