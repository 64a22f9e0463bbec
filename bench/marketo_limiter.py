"""The Marketo limiter at full load: many threads calling as fast as they can, against the simulator.

Marketo allows 100 calls per sliding 20 s window per instance. The benchmark runs on the real clock with time
scaled down: the window is ``20 s x --scale`` (default 1/40, so 0.5 s) for both the limiter and the simulator,
which keeps a run to seconds while every call still goes through the real code paths (threads, locks, the
auth flow, MockTransport or a loopback socket). Scaling changes nothing the limiter depends on except the ratio
of call latency to window length, and that ratio only makes the result more pessimistic (calls count until a
window after they *finish*).

For each configuration it prints the ceiling the limiter was configured to, the most calls the simulator
accepted in any window, that as a share of the ceiling (target >= 95 %, never above 100 %) and how many calls
the simulator refused with 606 (target 0).

    python -m bench.marketo_limiter [--scale 0.025] [--windows 8] [--threads 32]
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass

import httpx

from local.loopback import serve
from local.simulators.marketo import LimitConfig, MarketoSimulator
from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from shared.http.backoff import Backoff
from shared.marketo.client import MarketoClient
from shared.marketo.limiter import RateLimiter

TARGET_SHARE = 0.95


@dataclass(frozen=True)
class Row:
    transport: str
    headroom: float
    ceiling: int
    max_in_window: int
    mean_per_window: float
    refused_606: int
    refused_615: int
    calls: int

    @property
    def share(self) -> float:
        return self.max_in_window / self.ceiling

    @property
    def passed(self) -> bool:
        return self.share >= TARGET_SHARE and self.max_in_window <= self.ceiling and self.refused_606 == 0


def run(transport: str, headroom: float, *, window: float, windows: int, threads: int) -> Row:
    sim = MarketoSimulator(
        clock=time.monotonic, limits=LimitConfig(calls_per_window=100, window=window, daily_quota=10**9)
    )
    limiter = RateLimiter(calls_per_window=100, window=window, headroom=headroom, max_concurrency=10)
    backoff = Backoff(base=window / 40, cap=window, budget=window * 10, max_attempts=10)

    def drive(http: httpx.Client, base_url: str) -> int:
        client = MarketoClient(
            http,
            base_url=base_url,
            identity_url=base_url + "/identity",
            client_id=SIM_CLIENT_ID,
            client_secret=SIM_CLIENT_SECRET,
            limiter=limiter,
            backoff=backoff,
        )
        client.describe_leads()  # token first, so the run measures the limiter and not the identity call
        stop = time.monotonic() + windows * window
        done = [0] * threads

        def worker(slot: int) -> None:
            while time.monotonic() < stop:
                client.describe_leads()
                done[slot] += 1

        pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return sum(done)

    if transport == "mock":
        with httpx.Client(transport=httpx.MockTransport(sim)) as http:
            calls = drive(http, "https://bench.mktorest.com")
    else:
        with serve(sim) as url, httpx.Client(limits=httpx.Limits(max_connections=threads)) as http:
            calls = drive(http, url)

    arrivals = sim.limits.arrivals
    span = (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else window
    return Row(
        transport=transport,
        headroom=headroom,
        ceiling=limiter.ceiling,
        max_in_window=sim.limits.max_in_any_window(),
        # n calls spread over a span fill span/window + 1 windows (the first and last are both full).
        mean_per_window=len(arrivals) / (span / window + 1.0),
        refused_606=sim.rejections["606"],
        refused_615=sim.rejections["615"],
        calls=calls,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1 / 40, help="window = 20 s x scale (default 1/40)")
    parser.add_argument("--windows", type=int, default=8, help="windows per configuration (default 8)")
    parser.add_argument("--threads", type=int, default=32, help="calling threads (default 32)")
    args = parser.parse_args(argv)
    window = 20.0 * args.scale
    print(f"window 20 s scaled to {window:.3f} s, {args.windows} windows, {args.threads} threads per row")
    header = (
        f"{'transport':<9} {'headroom':>8} {'ceiling/20s':>11} {'max in 20s':>10} {'% ceiling':>9} "
        f"{'mean/20s':>8} {'606':>4} {'615':>4} {'calls':>6}  result"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for transport, headroom in (("mock", 0.1), ("mock", 0.0), ("loopback", 0.1), ("loopback", 0.0)):
        row = run(transport, headroom, window=window, windows=args.windows, threads=args.threads)
        ok = ok and row.passed
        print(
            f"{row.transport:<9} {row.headroom:>8.2f} {row.ceiling:>11} {row.max_in_window:>10} "
            f"{row.share:>8.1%} {row.mean_per_window:>8.1f} {row.refused_606:>4} {row.refused_615:>4} "
            f"{row.calls:>6}  {'ok' if row.passed else 'MISSED'}"
        )
    print(f"targets: max in any window >= {TARGET_SHARE:.0%} of the ceiling and never above it; 606 = 0")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
