"""Watching a Quick Sync or resync job until it ends: a progress bar on a terminal, plain lines otherwise.

The job's own figures come first (``records_processed`` or else ``records_done``, ``records_total``,
``percent``, ``rate_per_s``, ``eta_s``); where the app does not give a rate, it is measured between two polls on
the injected clock, and the ETA follows from it when the total is known. ``sleep`` and ``clock`` are seams, so a test watches a job in no time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from shared.admin.client import AdminClient
from shared.admin.render import duration

ACTIVE_STATES = frozenset({"queued", "running", "pending", "starting"})
BAR_WIDTH = 30


def is_active(job: dict[str, Any]) -> bool:
    return str(job.get("state", "")) in ACTIVE_STATES


def job_name(job: dict[str, Any]) -> str:
    what = f"{job.get('entity', '?')}.{job['column']}" if job.get("column") else str(job.get("entity", "?"))
    kind = str(job.get("kind") or ("quick_sync" if job.get("column") else "job")).replace("_", " ")
    return f"{kind} {what} (job {job.get('id', '?')})"


@dataclass
class Figures:
    """What one poll shows: done, total, percent, rate and ETA (None where unknown)."""

    state: str
    done: int
    total: int | None
    percent: float | None
    rate: float | None
    eta: float | None

    def counts(self) -> str:
        return f"{self.done}/{self.total if self.total is not None else '?'}"

    def words(self) -> str:
        parts = [self.state, self.counts()]
        if self.percent is not None:
            parts.append(f"{self.percent:.0f}%")
        if self.rate:  # a rate of 0 says nothing a queued job does not
            parts.append(f"{self.rate:.1f}/s")
        if self.eta is not None and self.state in ACTIVE_STATES:
            parts.append(f"ETA {duration(self.eta)}")
        return "  ".join(parts)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class Measure:
    """Turns successive polls of one job into :class:`Figures`, measuring the rate when the app gives none."""

    clock: Callable[[], float]
    _first: tuple[float, int] | None = field(default=None, init=False)

    def figures(self, job: dict[str, Any]) -> Figures:
        processed = _number(job.get("records_processed"))  # what percent counts, where the app says it
        done = int(processed if processed is not None else (_number(job.get("records_done")) or 0))
        total_value = _number(job.get("records_total"))
        total = int(total_value) if total_value is not None else None
        percent = _number(job.get("percent"))
        if percent is None and total:
            percent = min(100.0, 100.0 * done / total)
        now = self.clock()
        if self._first is None:
            self._first = (now, done)
        rate = _number(job.get("rate_per_s"))
        if rate is None and now > self._first[0] and done > self._first[1]:
            rate = (done - self._first[1]) / (now - self._first[0])
        eta = _number(job.get("eta_s"))
        if eta is None and rate and total is not None:
            eta = max(0.0, (total - done) / rate)
        return Figures(str(job.get("state", "?")), done, total, percent, rate, eta)


def bar(figures: Figures, width: int = BAR_WIDTH) -> str:
    if figures.percent is None:
        return "[" + "?" * width + "]" if figures.state in ACTIVE_STATES else "[" + "#" * width + "]"
    filled = round(width * min(100.0, max(0.0, figures.percent)) / 100)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


@dataclass
class Watcher:
    client: AdminClient
    out: TextIO
    tty: bool
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    interval: float = 2.0
    timeout: float | None = None

    def job(self, job_id: str) -> dict[str, Any]:
        """Poll ``GET /api/jobs/{id}`` until the job is no longer queued or running; the last answer."""
        measure, started, last_line = Measure(self.clock), self.clock(), ""
        while True:
            job: dict[str, Any] = self.client.get(f"jobs/{job_id}")
            figures = measure.figures(job)
            name = job_name(job)
            if self.tty:
                line = f"\r{name}  {bar(figures)}  {figures.words()}"
                print(line.ljust(len(last_line)), end="", file=self.out, flush=True)
                last_line = line
            elif figures.words() != last_line:
                print(f"{name}: {figures.words()}", file=self.out, flush=True)
                last_line = figures.words()
            if not is_active(job):
                if self.tty:
                    print(file=self.out)
                if job.get("notice"):
                    print(f"  {job['notice']}", file=self.out)
                return job
            if self.timeout is not None and self.clock() - started >= self.timeout:
                if self.tty:
                    print(file=self.out)
                raise TimeoutError(f"{name} is still {figures.state} after {duration(self.timeout)}")
            self.sleep(self.interval)

    def active(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every queued or running job (of ``kind``), one after the other; what each ended as."""
        listed: dict[str, Any] = self.client.get("jobs")
        chosen = [j for j in listed.get("jobs", []) if is_active(j) and (kind is None or j.get("kind", kind) == kind)]
        return [self.job(str(j["id"])) for j in chosen]
