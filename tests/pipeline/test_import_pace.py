"""Status polls of a Quick Sync's bulk imports: paced by what the first import took per row, not by doubling alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from shared.marketo.client import MarketoClient
from shared.marketo.models import ImportState, ImportStatus
from shared.pipeline.quicksync.bulk import POLL_MAX_SECONDS, Importer, ImportPace
from shared.pipeline.quicksync.jobs import JobState, QuickSyncJob


@dataclass
class SlowImports:
    """Marketo's bulk import as a clock sees it: a file is done ``seconds_per_row`` per row after it is
    submitted (at most two at once, as this product keeps them); ``wait`` moves the clock."""

    seconds_per_row: float
    now: float = 0.0
    due: dict[int, float] = field(default_factory=dict)
    polls: int = 0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def submit_lead_import(self, content: bytes, **_: Any) -> int:
        batch = len(self.due) + 1
        self.due[batch] = self.now + (content.count(b"\n") - 1) * self.seconds_per_row
        return batch

    def import_status(self, batch: int) -> ImportStatus:
        self.polls += 1
        state = ImportState.COMPLETE if self.now >= self.due[batch] else ImportState.IMPORTING
        return ImportStatus(batch, state)


def _file(rows: int) -> bytes:
    return b"id,tier\n" + b"".join(b"%d,Gold\n" % i for i in range(rows))


def _run(marketo: SlowImports, files: list[bytes]) -> list[ImportStatus] | None:
    job = QuickSyncJob("j", "contact", "new_tier", "tier", JobState.RUNNING, "2026-12-01T00:00:00Z")
    fake = cast(MarketoClient, marketo)
    importer = Importer(fake, job, lambda _job: None, lambda: False)
    return importer._poll_all(files)


def test_five_large_imports_take_about_one_poll_each_after_the_first() -> None:
    marketo = SlowImports(seconds_per_row=0.0006)  # 120 s per 200,000-row file, as the simulator on 2 cores
    statuses = _run(marketo, [_file(200_000)] * 5)
    assert statuses is not None
    assert all(s.status is ImportState.COMPLETE for s in statuses)
    # doubling alone (2 s, capped at 30 s) polls a 120 s import 7 times, both open imports each time: 35 for 5
    assert marketo.polls <= 12, marketo.polls
    assert marketo.now <= 3 * 120 + 2 * POLL_MAX_SECONDS  # and never much later than the imports finished


def test_an_import_slower_than_learned_falls_back_to_backoff_and_still_finishes() -> None:
    pace = ImportPace(clock=lambda: 0.0)
    pace.submitted(1, 100)
    pace.finished(1)  # done at once: 0 s per row learned
    pace.submitted(2, 100)
    assert pace.wait([2]) is not None  # polled at its expected time (the floor of 2 s)
    assert pace.wait([2]) is None  # still open past its time: the caller backs off


def test_nothing_learned_means_the_backoff() -> None:
    assert ImportPace(clock=lambda: 0.0).wait([1]) is None
