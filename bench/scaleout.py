"""Scale-out: K worker processes share one state store (a SQLite file) and one Marketo, all calling flat out.

The simulated tenants run as their own process (``python -m local.simulators``, as ``make sims`` does), on the
real clock with Marketo's real limits: 100 calls per sliding 20 s and 10 concurrent calls. Each worker builds the
product's Marketo client as the composition root does (``build_marketo`` and ``marketo_lanes``: the live and the
backfill lane of the budget every instance shares through the store) and runs threads of both lanes that send
300-record ``leads.json`` syncs as fast as the budget lets them.

Printed for K = 1, 4, 8 beside the floors: the most calls any 20 s held (never above the ceiling, >= 95 % of it),
the most calls at once (never above 10), the calls Marketo refused (606/615: 0), the records per hour against the
physical ceiling (300 records x 100 calls per 20 s = 5.4 M/h), how the calls split between the lanes (backfill <=
70 % of the window), and the state-store requests per call the budget costs.

    python -m bench.scaleout [--seconds 22] [--workers 1,4,8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 20.0
CEILING = 100
CONCURRENCY = 10
RECORDS_PER_CALL = 300
PHYSICAL_PER_HOUR = RECORDS_PER_CALL * CEILING * 3600 / WINDOW
TARGET_SHARE = 0.95
LIVE_THREADS = 6
BACKFILL_THREADS = 4


@contextmanager
def simulators(directory: Path) -> Iterator[dict[str, str]]:
    """``python -m local.simulators`` on free ports; yields the settings it wrote."""
    command = [sys.executable, "-m", "local.simulators", "--state", str(directory)]
    command += ["--dataverse-port", "0", "--marketo-port", "0", "--product-url", "http://127.0.0.1:9"]
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


class _Recording:
    """The lane's limiter, noting when each call held its place (what the server may have stamped)."""

    def __init__(self, inner: Any, spans: list[tuple[float, float, str]], lane: str) -> None:
        self.inner = inner
        self.spans = spans
        self.lane = lane
        self.lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self.inner.slot():
            start = time.time()
            try:
                yield
            finally:
                end = time.time()
                with self.lock:
                    self.spans.append((start, end, self.lane))


def worker(sims: dict[str, str], state: str, seconds: float, start_at: float, out: Any) -> None:
    from shared.services import build_marketo, build_store, marketo_lanes  # noqa: PLC0415 - in the child
    from shared.settings import Settings  # noqa: PLC0415

    env = {**sims, "STATE_STORE": "sqlite", "STATE_SQLITE_PATH": state, "MARKETO_HEADROOM": "0"}
    settings = Settings.model_validate(env)
    store = build_store(settings)
    http = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), limits=httpx.Limits(max_connections=32))
    live, backfill = marketo_lanes(settings, store, build_marketo(settings, http))
    spans: list[tuple[float, float, str]] = []
    clients = {
        "live": live.with_limiter(_Recording(live.limiter, spans, "live")),
        "backfill": backfill.with_limiter(_Recording(backfill.limiter, spans, "backfill")),
    }
    clients["live"].describe_leads()  # the token first: the run measures the budget, not the identity call
    spans.clear()
    records = [{"email": f"bench{n}@example.com", "firstName": "Scale", "lastName": f"Out{n}"} for n in range(300)]
    errors: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    stop = start_at + seconds

    def work(lane: str) -> None:
        while time.time() < stop:
            try:
                clients[lane].sync_leads(records)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=work, args=("live",)) for _ in range(LIVE_THREADS)]
    threads += [threading.Thread(target=work, args=("backfill",)) for _ in range(BACKFILL_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger = live.limiter.ledger  # type: ignore[attr-defined]
    fallbacks = live.limiter.fallbacks + backfill.limiter.fallbacks  # type: ignore[attr-defined]
    out.put({"spans": spans, "errors": errors, "store": ledger.requests, "fallbacks": fallbacks})


def densest(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best = start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def most_at_once(spans: list[tuple[float, float, str]]) -> int:
    events = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


@dataclass(frozen=True)
class Row:
    k: int
    calls: int
    densest: int
    at_once: int
    refused: int
    per_hour: float
    backfill_densest: int
    store_per_call: float
    errors: int
    fallbacks: int

    @property
    def passed(self) -> bool:
        full = self.densest >= TARGET_SHARE * CEILING
        return full and self.densest <= CEILING and self.at_once <= CONCURRENCY and self.refused == 0


def run(k: int, sims: dict[str, str], directory: Path, seconds: float) -> Row:
    marketo = sims["MARKETO_BASE_URL"]
    before = httpx.get(f"{marketo}/_simulator/calls").json()["rejections"]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    state = str(directory / "state.sqlite3")  # one store for every run: the budget knows the last run's calls
    start_at = time.time() + 2.5 + 0.3 * k  # every worker imported and holding its token before the start
    procs = [context.Process(target=worker, args=(sims, state, seconds, start_at, out)) for _ in range(k)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    after = httpx.get(f"{marketo}/_simulator/calls").json()["rejections"]
    refused = sum(after.get(code, 0) - before.get(code, 0) for code in ("606", "615"))
    spans = [tuple(s) for r in results for s in r["spans"]]
    starts = [s for s, _, _ in spans]
    calls = len(spans)
    # Records per hour from the calls started while the run lasted (threads waiting then go once a window frees):
    # n calls spread over a span fill span/window + 1 windows.
    inside = [s for s in starts if s < start_at + seconds]
    span = max(inside) - min(inside) if len(inside) > 1 else WINDOW
    per_window = len(inside) / (span / WINDOW + 1.0)
    errors = [e for r in results for e in r["errors"]]
    for error in sorted(set(errors))[:3]:
        print(f"  K={k} error: {error}")
    return Row(
        k=k,
        calls=calls,
        densest=densest(starts, WINDOW),
        at_once=most_at_once(spans),
        refused=refused,
        per_hour=per_window * RECORDS_PER_CALL * 3600 / WINDOW,
        backfill_densest=densest([s for s, _, lane in spans if lane == "backfill"], WINDOW),
        store_per_call=sum(r["store"] for r in results) / max(1, calls),
        errors=len(errors),
        fallbacks=sum(r["fallbacks"] for r in results),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=22.0, help="calling time per K (default 22: two bursts)")
    parser.add_argument("--workers", default="1,4,8", help="the K to run (default 1,4,8)")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.workers.split(",")]
    print(
        f"K processes x ({LIVE_THREADS} live + {BACKFILL_THREADS} backfill threads), 300-record leads.json syncs, "
        f"{args.seconds:g} s each, one SQLite store, `python -m local.simulators` (real 20 s window)"
    )
    header = (
        f"{'K':>2} {'calls':>5} {'max/20s':>7} {'% of 100':>8} {'at once':>7} {'606+615':>7} {'records/h':>10} "
        f"{'% phys.':>7} {'bf max/20s':>10} {'store/call':>10}  result"
    )
    ok = True
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        directory = Path(tmp)
        with simulators(directory / "sims") as sims:
            print(header)
            print("-" * len(header))
            for k in ks:
                row = run(k, sims, directory, args.seconds)
                ok = ok and row.passed
                note = f" ({row.errors} errors, {row.fallbacks} fallbacks)" if row.errors or row.fallbacks else ""
                print(
                    f"{row.k:>2} {row.calls:>5} {row.densest:>7} {row.densest / CEILING:>7.0%} {row.at_once:>7} "
                    f"{row.refused:>7} {row.per_hour:>10,.0f} {row.per_hour / PHYSICAL_PER_HOUR:>6.0%} "
                    f"{row.backfill_densest:>10} {row.store_per_call:>10.2f}  {'ok' if row.passed else 'MISSED'}{note}"
                )
    print(
        f"floors: max/20s <= {CEILING} and >= {TARGET_SHARE:.0%} of it; at once <= {CONCURRENCY}; 606+615 = 0; "
        f"backfill <= 70 of the window; physical ceiling {PHYSICAL_PER_HOUR:,.0f} records/h "
        "(records/h: the calls per window of the run's span, x 300 records, x 180 windows an hour)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
