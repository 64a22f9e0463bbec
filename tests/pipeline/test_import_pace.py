"""Status polls of a Quick Sync's bulk imports: paced by what the first import took per row, not by doubling alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from shared.marketo.client import MarketoClient
from shared.marketo.models import ImportState, ImportStatus
from shared.pipeline.quicksync.bulk import POLL_MAX_SECONDS, Importer, ImportPace
from shared.pipeline.quicksync.jobs import JobState, QuickSyncJob
from shared.store.model import Checkpoint


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


def test_the_pace_learned_in_one_group_paces_the_next_groups_polls() -> None:
    marketo = SlowImports(seconds_per_row=0.0006)
    job = QuickSyncJob("j", "contact", "new_tier", "tier", JobState.RUNNING, "2026-12-01T00:00:00Z")
    importer = Importer(cast(MarketoClient, marketo), job, lambda _j: None, lambda: False)
    assert importer._poll_all([_file(200_000)]) is not None  # the first group: doubling, then learned
    first = marketo.polls
    assert job.import_seconds_per_row is not None
    job.import_batches = []  # the group's baselines saved: the next group starts (the job kept in its checkpoint)
    again = QuickSyncJob.from_checkpoint(_checkpoint(job))
    assert again.import_seconds_per_row == job.import_seconds_per_row
    for _ in range(3):
        importer = Importer(cast(MarketoClient, marketo), again, lambda _j: None, lambda: False)
        assert importer._poll_all([_file(200_000)]) is not None
        again.import_batches = []
    assert marketo.polls - first <= 3 * 2, (first, marketo.polls)  # one poll (two at most) per later group


def _checkpoint(job: QuickSyncJob) -> Checkpoint:
    return Checkpoint(job.checkpoint_name, json.dumps(job.to_doc()), datetime.now(UTC), "1")


@dataclass
class ProgressingImports(SlowImports):
    """As :class:`SlowImports`, and an open import reports the rows it has done so far (Marketo's
    ``numOfLeadsProcessed`` while ``Importing``)."""

    def import_status(self, batch: int) -> ImportStatus:
        status = super().import_status(batch)
        if status.status is ImportState.IMPORTING:
            done = int((self.now - (self.due[batch] - self.rows[batch] * self.seconds_per_row)) / self.seconds_per_row)
            return ImportStatus(batch, ImportState.IMPORTING, leads_processed=max(done, 0))
        return status

    rows: dict[int, int] = field(default_factory=dict)

    def submit_lead_import(self, content: bytes, **kwargs: Any) -> int:
        batch = super().submit_lead_import(content, **kwargs)
        self.rows[batch] = content.count(b"\n") - 1
        return batch


def test_an_import_reporting_its_progress_is_polled_about_when_it_will_be_done() -> None:
    marketo = ProgressingImports(seconds_per_row=0.0006)  # 150 s for 250,000 rows
    statuses = _run(marketo, [_file(250_000)])
    assert statuses is not None
    assert marketo.polls <= 3, marketo.polls  # the first reading after 2 s, then about at its end
    assert marketo.now <= 150 * 1.05 + 5
