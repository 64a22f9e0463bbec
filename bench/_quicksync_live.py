"""Live changes at a steady rate while ``bench.quicksync`` runs: a person edits contacts in Dynamics.

Each edit sets ``jobtitle`` (mapped both ways, to Marketo ``title``) to a unique token ``LV########`` through the
Dataverse simulator's ``/_simulator/edit`` (a person's edit in the app: the plug-in step posts to the product's
webhook, the path every live change takes). The edits are sent on a fixed schedule from a small pool, so a slow
answer does not slow the rate; the send time of each token is kept for the latency.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx

SENDERS = 32  # edits under way at once: a slow answer (the product busy) does not slow the rate


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class LiveEdits:
    def __init__(self, dataverse_url: str, record_ids: Sequence[str]) -> None:
        self.url = f"{dataverse_url}/_simulator/edit"
        self.records = list(record_ids)
        self.count = 0
        self.failures = 0
        self.missed = 0  # ticks skipped because every sender was still busy (the rate was not held)
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30.0, limits=httpx.Limits(max_connections=SENDERS))

    def _edit(self, token: str, record_id: str) -> None:
        at = time.time()
        try:
            answer = self._http.post(
                self.url, json={"entity": "contact", "id": record_id, "values": {"jobtitle": token}}
            )
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        with self._lock:
            if ok:
                self._sent[token] = at
            else:
                self.failures += 1

    @contextmanager
    def running(self, rate: float) -> Iterator[None]:
        """Edits at ``rate`` per second until the block ends."""
        stop = threading.Event()
        if rate <= 0:
            yield
            return

        def schedule() -> None:
            pool = ThreadPoolExecutor(SENDERS)
            busy = threading.Semaphore(2 * SENDERS)  # edits queued or under way: beyond it a tick is missed
            start = time.monotonic()
            made = 0
            while not stop.is_set():
                due = start + made / rate
                if stop.wait(max(0.0, due - time.monotonic())):
                    break
                made += 1
                if not busy.acquire(blocking=False):
                    self.missed += 1
                    continue
                self.count += 1
                record = self.records[self.count % len(self.records)]
                future = pool.submit(self._edit, f"LV{self.count:08d}", record)
                future.add_done_callback(lambda _: busy.release())
            pool.shutdown(wait=True, cancel_futures=True)

        thread = threading.Thread(target=schedule, name="live-edits", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def sent(self, after: dict[str, float] | None = None) -> dict[str, float]:
        """Send times by token of the edits the simulator took (those not in ``after``)."""
        with self._lock:
            return {t: at for t, at in self._sent.items() if after is None or t not in after}
