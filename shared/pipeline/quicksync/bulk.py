"""Marketo bulk lead import for a Quick Sync of persons: CSV files of ``id`` and the field, ``lookupField=id``.

Contract: the batch id of each file is saved in the job's checkpoint as soon as Marketo returns it, so a run that
stops (a crash, an outage, the time budget) resumes by polling those batches and never submits their files again
(only a crash in the instant between Marketo's answer and that save re-submits one file: the same values, so
harmless). At most :data:`MAX_OPEN_JOBS` of this job's imports are open at once (Marketo processes two at a time
per instance and queues ten); status is polled with backoff. A batch Marketo could not run at all (status
``Failed``) stops the job: the import state is cleared so the next run builds the files again.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import StopSync
from shared.marketo.bulk import ImportFileBuilder
from shared.marketo.client import MarketoClient
from shared.marketo.models import ImportState, ImportStatus
from shared.pipeline.quicksync.jobs import QuickSyncJob
from shared.store.link_keys import dynamics_id_of, guid_key, ordered_key
from shared.store.model import Link

MAX_OPEN_JOBS = 2
POLL_FIRST_SECONDS = 2.0
POLL_MAX_SECONDS = 30.0
PROGRESS_MARGIN = 1.05  # an import's rate from its progress so far, a little pessimistic: polled once, not twice
SHARED_VALUES = 4096  # distinct values a group shares between its records (a tier, a country); past it, kept as read


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Rows Marketo did not import (``failed``) or imported with a warning (``warned``), by Marketo id."""

    failed: dict[str, str]
    warned: dict[str, str]


GUID_BYTES = 16
RUN = 8192  # places sorted at a time as a group fills (see CompactIds)


def _guid_bytes(rid: str) -> bytes | None:
    """A GUID in Dataverse's spelling (``8-4-4-4-12`` lower-case hex) as its 16 bytes in the order of its link's
    row key (:func:`shared.store.link_keys.ordered_key`); None for anything else."""
    key = guid_key(rid)
    return bytes.fromhex(key) if key is not None else None


class CompactIds:
    """Dynamics ids kept as 16 bytes each when they are GUIDs in Dataverse's own spelling (lower case, hyphens:
    the text comes back exactly), any other spelling kept as it came. Their key order (the store's row keys,
    :func:`~shared.store.link_keys.ordered_key`, which the bytes are kept in) is kept as sorted runs of
    :data:`RUN` places, sorted as each run fills and merged when asked: a 1M group's order costs 8 bytes a record,
    never a list of them all."""

    def __init__(self) -> None:
        self._guids = bytearray()
        self._other: dict[int, str] = {}  # place -> an id not in that spelling (its 16 bytes left zero)
        self._count = 0
        self._sorted = array("q")  # the places of each closed run, in key order within the run
        self._runs: list[int] = [0]  # where each run starts in ``_sorted`` (and so in the places)

    def __len__(self) -> int:
        return self._count

    def append(self, rid: str) -> None:
        packed = _guid_bytes(rid)
        if packed is None:
            packed = bytes(GUID_BYTES)
            self._other[self._count] = rid
        self._guids += packed
        self._count += 1
        if self._count - self._runs[-1] >= RUN:
            self._close_run()

    def __getitem__(self, at: int) -> str:
        other = self._other.get(at)
        if other is not None:
            return other
        return dynamics_id_of(self._guids[at * GUID_BYTES : (at + 1) * GUID_BYTES].hex())

    def _key(self, at: int) -> bytes | str:
        if self._other:
            return ordered_key(self[at])
        return bytes(self._guids[at * GUID_BYTES : (at + 1) * GUID_BYTES])

    def _close_run(self) -> None:
        start = self._runs[-1]
        self._sorted.extend(sorted(range(start, self._count), key=self._key))
        self._runs.append(self._count)

    def key_order(self) -> Iterator[int]:
        """Every place, in the order of the ids' row keys."""
        if self._count > self._runs[-1]:
            self._close_run()
        # Runs closed before an id of another spelling came hold GUIDs only: their bytes order is their keys' text
        # order, so one merge on the keys holds for every run.
        bounds = list(zip(self._runs, self._runs[1:], strict=False))
        yield from heapq.merge(*(self._run(a, b) for a, b in bounds), key=self._key)

    def _run(self, start: int, end: int) -> Iterator[int]:
        for i in range(start, end):
            yield self._sorted[i]


class CompactEtags:
    """ETags exactly as read, in one buffer (a link's ETag is unchanged only if it is byte for byte the same)."""

    def __init__(self) -> None:
        self._text = bytearray()
        self._ends = array("q")

    def append(self, etag: str | None) -> None:
        self._text += b"\x00" if etag is None else etag.encode("utf-8")
        self._ends.append(len(self._text) if etag is not None else -len(self._text))

    def __getitem__(self, at: int) -> str | None:
        end = self._ends[at]
        if end < 0:
            return None
        start = abs(self._ends[at - 1]) if at else 0
        return self._text[start:end].decode("utf-8")


@dataclass
class ImportGroup:
    """The records of one bulk group as they are read: their rows encoded into the import files at once, and per
    record only what saving its baseline needs once Marketo imported it -- the Dynamics id (16 bytes), the link's
    ETag when read (a link saved since is the live sync's: left to the settle rounds), the new baseline value
    (equal values shared) and the Marketo id (how the failures file names it). Never the records or their links:
    a group's memory is a few dozen bytes per record."""

    files: ImportFileBuilder
    dynamics_ids: CompactIds = field(default_factory=CompactIds)
    etags: CompactEtags = field(default_factory=CompactEtags)
    values: list[Any] = field(default_factory=list)
    marketo_ids: array[int] = field(default_factory=lambda: array("q"))
    _shared: dict[tuple[type, Any], Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.dynamics_ids)

    def add(self, link: Link, canonical: Any, wire: Any) -> None:
        marketo_id = int(str(link.marketo_id))
        self.files.add([marketo_id, wire])
        self.dynamics_ids.append(link.dynamics_id)
        self.etags.append(link.etag)
        self.values.append(self._share(canonical))
        self.marketo_ids.append(marketo_id)

    def _share(self, value: Any) -> Any:
        try:
            key = (type(value), value)
            if key in self._shared or len(self._shared) < SHARED_VALUES:
                return self._shared.setdefault(key, value)
        except TypeError:  # unhashable: kept as it is
            pass
        return value


def digest(files: Sequence[bytes]) -> str:
    """What the files hold, in 32 hex digits: a resumed run knows whether it rebuilt the same files."""
    h = hashlib.sha256()
    for content in files:
        h.update(len(content).to_bytes(8, "big"))
        h.update(content)
    return h.hexdigest()[:32]


def report_rows(text: str) -> dict[str, str]:
    """A failures or warnings file (the import's columns, then the reason) as reason by the row's ``id``."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or "id" not in header:
        return {}
    at = header.index("id")
    found: dict[str, str] = {}
    for row in reader:
        if len(row) > at and row[at].strip():
            found[row[at].strip()] = row[-1] if len(row) == len(header) else "no reason given"
    return found


def file_ids(content: bytes) -> list[str]:
    """The ``id`` of every row of an import file."""
    reader = csv.reader(io.StringIO(content.decode("utf-8")))
    header = next(reader, None)
    if not header or "id" not in header:
        return []
    at = header.index("id")
    return [row[at] for row in reader if len(row) > at]


@dataclass
class ImportPace:
    """When an open import is worth polling: once an import finished, the next are expected to take as long per
    row (Marketo's speed varies by tenant and hour, so it is learned, not configured, and kept in the job from one
    group of pages to the next). A batch still open at its expected time falls back to the doubling backoff; so
    does every batch while nothing is learned yet. A batch's time counts from its submission: Marketo processes
    two imports at once, and this product keeps no more open. This keeps a 1M-record Quick Sync's status polls near
    one per file instead of one per doubling."""

    clock: Callable[[], float]
    seconds_per_row: float | None = None
    rows: dict[int, int] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    polled_late: set[int] = field(default_factory=set)
    reported: dict[int, float] = field(default_factory=dict)  # when a batch's own progress says it will be done

    def submitted(self, batch: int, rows: int) -> None:
        self.rows[batch], self.started[batch] = max(rows, 1), self.clock()

    def progress(self, batch: int, processed: int) -> None:
        """An open batch reported ``processed`` rows done: it is expected done when the rest take as long per row
        (with a margin of :data:`PROGRESS_MARGIN`), whatever was learned before."""
        if processed <= 0 or batch not in self.started:
            return
        now = self.clock()
        per_row = max(now - self.started[batch], 0.0) / processed
        left = max(self.rows[batch] - processed, 0)
        self.reported[batch] = now + left * per_row * PROGRESS_MARGIN + POLL_FIRST_SECONDS / 2
        self.polled_late.discard(batch)

    def finished(self, batch: int) -> None:
        """``batch`` was seen finished: its time per row is the pace from here on (the latest is the best guess)."""
        if batch in self.started:
            self.seconds_per_row = max(self.clock() - self.started[batch], 0.0) / self.rows[batch]

    def wait(self, open_batches: Sequence[int]) -> float | None:
        """Seconds until the oldest open batch (the one the poll reads first) is expected done, at least
        :data:`POLL_FIRST_SECONDS`: from its own progress when it reported some, else from the pace learned. None:
        nothing to go by, or it is past its expected time (the caller backs off)."""
        if not open_batches:
            return None
        batch, now = open_batches[0], self.clock()
        at = self.reported.pop(batch, None)  # its own progress: one reading, one poll
        if at is None:
            if self.seconds_per_row is None or batch not in self.started or batch in self.polled_late:
                return None
            at = self.started[batch] + self.rows[batch] * self.seconds_per_row
            if at <= now:
                self.polled_late.add(batch)  # polled once at its time: from here on, the backoff
        return min(max(at - now, POLL_FIRST_SECONDS), POLL_MAX_SECONDS * 10)


@dataclass
class Importer:
    """The imports of one group of pages of one job."""

    marketo: MarketoClient
    job: QuickSyncJob
    checkpoint: Callable[[QuickSyncJob], object]
    out_of_time: Callable[[], bool]
    max_open: int = MAX_OPEN_JOBS

    def run(self, files: Sequence[bytes]) -> ImportResult | None:
        """Submit the files not submitted yet, poll until every batch finished, read back the reports. None: the
        time budget ran out with imports still open (their ids are in the checkpoint)."""
        statuses = self._poll_all(files)
        if statuses is None:
            return None
        failed: dict[str, str] = {}
        warned: dict[str, str] = {}
        for content, status in zip(files, statuses, strict=True):
            if status.status is not ImportState.COMPLETE:
                self.clear()
                raise StopSync(
                    f"Marketo bulk import {status.batch_id} failed: {status.message or status.status}",
                    code="bulk-import-failed",
                )
            if status.rows_failed:
                named = report_rows(self.marketo.import_failures(status.batch_id))
                if len(named) < status.rows_failed:  # rows the file does not name: none of the batch is trusted
                    why = f"Marketo reported {status.rows_failed} failed rows in import {status.batch_id}"
                    named = {**dict.fromkeys(file_ids(content), f"{why}, not all named"), **named}
                failed.update(named)
            if status.rows_with_warning:
                warned.update(report_rows(self.marketo.import_warnings(status.batch_id)))
        return ImportResult(failed, warned)

    def finish_open(self) -> bool:
        """Poll the batches already submitted until they finished, submitting nothing (their files are stale).
        False: out of time first."""
        return self._poll_all(()) is not None

    def clear(self) -> None:
        self.job.import_pages, self.job.import_batches, self.job.import_digest = 0, [], None
        self.checkpoint(self.job)

    def _poll_all(self, files: Sequence[bytes]) -> list[ImportStatus] | None:
        batches = list(self.job.import_batches)
        done: dict[int, ImportStatus] = {}
        pace = ImportPace(self.marketo.clock, self.job.import_seconds_per_row)
        pause = POLL_FIRST_SECONDS
        while True:
            open_jobs = [b for b in batches if b not in done]
            submitted: set[int] = set()
            while len(batches) < len(files) and len(open_jobs) < self.max_open:
                batch = self.marketo.submit_lead_import(
                    files[len(batches)], lookup_field="id", file_name=f"quicksync-{len(batches)}.csv"
                )
                batches.append(batch)
                open_jobs.append(batch)
                submitted.add(batch)
                pace.submitted(batch, files[len(batches) - 1].count(b"\n") - 1)
                self.job.import_batches = list(batches)
                self.checkpoint(self.job)  # from here on, a resumed run polls this batch
            finished = False
            for batch in open_jobs:
                if batch in submitted:
                    continue  # queued a moment ago: its first status is worth a call only after a wait
                status = self.marketo.import_status(batch)
                if not status.finished:
                    pace.progress(batch, status.leads_processed + status.rows_failed)
                    break  # Marketo works a tenant's imports in the order they came: the later ones wait behind it
                done[batch], finished = status, True
                pace.finished(batch)
                self.job.import_seconds_per_row = pace.seconds_per_row  # saved with the job's next checkpoint
            if len(done) == len(batches) and len(batches) >= len(files):
                return [done[b] for b in batches]
            if finished and len(batches) < len(files):
                continue  # a slot freed: submit the next file at once
            if self.out_of_time():
                return None
            expected = pace.wait([b for b in open_jobs if b not in done])
            if expected is not None:  # as long as the imports before took for their rows
                self.marketo.wait(expected)
                pause = POLL_FIRST_SECONDS
            else:
                self.marketo.wait(pause)
                pause = min(pause * 2, POLL_MAX_SECONDS)
