"""Bulk lead import jobs: a FIFO queue, two importing at a time, ten in the system at most (1016 beyond).

Jobs advance with the simulator's clock: Queued until a slot frees, Importing for ``import_seconds``, then
Complete (or Failed for a file Marketo cannot read). In ``background`` mode (the simulators in their own process)
a worker goes through the importing rows a chunk at a time between API calls (:meth:`ImportQueue.work`), and a
job completes once its rows are all done, so a large import takes the time its rows take and never holds every
API call up while it runs. Rows go through the same upsert as Sync Leads, so they
record the same activities; failed and warned rows are kept for the failures/warnings CSV files.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from local.simulators.marketo.envelope import ApiError
from local.simulators.marketo.fields import as_text
from local.simulators.marketo.leads import LeadStore

MAX_RUNNING = 2
MAX_IN_SYSTEM = 10
DELIMITERS = {"csv": ",", "tsv": "\t", "ssv": ";"}


@dataclass
class ImportJob:
    batch_id: int
    rows: list[dict[str, str]]
    columns: list[str]
    delimiter: str
    lookup_field: str
    submitted_at: float
    status: str = "Queued"
    started_at: float = 0.0
    processed: int = 0
    cursor: int = 0  # rows gone through the upsert so far (imports are worked a chunk at a time, see work())
    failures: list[tuple[dict[str, str], str]] = field(default_factory=list)
    warnings: list[tuple[dict[str, str], str]] = field(default_factory=list)
    message: str = ""

    def view(self) -> dict[str, Any]:
        row: dict[str, Any] = {"batchId": self.batch_id, "status": self.status}
        if self.status in ("Importing", "Complete", "Failed"):
            row.update(
                numOfLeadsProcessed=self.processed,
                numOfRowsFailed=len(self.failures),
                numOfRowsWithWarning=len(self.warnings),
                message=self.message,
            )
        return row

    def report(self, which: str) -> str:
        rows = self.failures if which == "failures" else self.warnings
        extra = "Import Failure Reason" if which == "failures" else "Import Warning Reason"
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator="\n")
        writer.writerow([*self.columns, extra])
        for row, reason in rows:
            writer.writerow([*(row.get(column, "") for column in self.columns), reason])
        return buffer.getvalue()


@dataclass
class ImportQueue:
    leads: LeadStore
    import_seconds: float = 1.0
    background: bool = False  # worked by :meth:`work` between requests: a job completes once all its rows are done
    jobs: dict[int, ImportJob] = field(default_factory=dict)
    _next_batch: int = 3404
    peak_in_system: int = 0
    peak_importing: int = 0

    def submit(self, content: bytes, file_format: str, lookup_field: str, now: float) -> ImportJob:
        self.advance(now)
        if sum(job.status in ("Queued", "Importing") for job in self.jobs.values()) >= MAX_IN_SYSTEM:
            raise ApiError("1016", "Too many imports")
        delimiter = DELIMITERS.get(file_format)
        if delimiter is None:
            raise ApiError("1003", f"Invalid format '{file_format}'")
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ApiError("1003", "Import file is not UTF-8") from exc
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        columns = list(reader.fieldnames or [])
        rows = [dict(row) for row in reader]
        job = ImportJob(self._next_batch, rows, columns, delimiter, lookup_field, now)
        self._next_batch += 1
        self.jobs[job.batch_id] = job
        self.advance(now)
        in_system = sum(j.status in ("Queued", "Importing") for j in self.jobs.values())
        self.peak_in_system = max(self.peak_in_system, in_system)
        return job

    def get(self, batch_id: int, now: float) -> ImportJob:
        self.advance(now)
        job = self.jobs.get(batch_id)
        if job is None:
            raise ApiError("1003", f"Import batch {batch_id} not found")
        return job

    def advance(self, now: float) -> None:
        for job in self.jobs.values():
            worked = not self.background or job.cursor >= len(job.rows) or not self._readable(job)
            if job.status == "Importing" and now >= job.started_at + self.import_seconds and worked:
                self._run(job)
        running = sum(job.status == "Importing" for job in self.jobs.values())
        for job in sorted(self.jobs.values(), key=lambda j: j.batch_id):
            if running >= MAX_RUNNING:
                break
            if job.status == "Queued":
                job.status, job.started_at = "Importing", now
                running += 1
        self.peak_importing = max(self.peak_importing, running)

    def work(self, rows: int) -> int:
        """Go through up to ``rows`` rows of the importing jobs now, without finishing any (that stays with
        :meth:`advance`, on the clock): a simulator in its own process calls this between requests so a large
        import is not done in one go while every API call waits for it, as Marketo imports in the background."""
        done = 0
        for job in sorted(self.jobs.values(), key=lambda j: j.batch_id):
            if done >= rows:
                break
            if job.status == "Importing" and self._readable(job):
                stop = min(len(job.rows), job.cursor + rows - done)
                done += stop - job.cursor
                self._apply(job, stop)
        return done

    def _readable(self, job: ImportJob) -> bool:
        return job.lookup_field in self.leads.fields and all(column in self.leads.fields for column in job.columns)

    def _run(self, job: ImportJob) -> None:
        if not self._readable(job):
            unknown = [column for column in job.columns if column not in self.leads.fields]
            job.status = "Failed"
            job.message = f"Field '{(unknown or [job.lookup_field])[0]}' not found"
            return
        self._apply(job, len(job.rows))
        job.status = "Complete"
        job.rows = []  # imported: only the failed and warned rows are kept, for their files
        failed = len(job.failures)
        job.message = (
            f"Import completed with errors, {job.processed} records imported ({job.processed} members), {failed} failed"
            if failed
            else f"Import succeeded, {job.processed} records imported ({job.processed} members)"
        )

    def _apply(self, job: ImportJob, stop: int) -> None:
        """The job's rows from its cursor up to ``stop`` through the upsert."""
        lookup = self.leads.fields[job.lookup_field]
        action = "updateOnly" if job.lookup_field == "id" else "createOrUpdate"
        for row in job.rows[job.cursor : stop]:
            values: dict[str, Any] = {key: value for key, value in row.items() if key is not None and value != ""}
            warning = self._truncate(values)
            result = self.leads.upsert(
                values, action, lookup, source="List Import", reason=f"Bulk import {job.batch_id}"
            )
            if result.get("status") == "skipped":
                job.failures.append((row, str(result["reasons"][0]["message"])))
                continue
            job.processed += 1
            if warning:
                job.warnings.append((row, warning))
        job.cursor = max(job.cursor, stop)

    def _truncate(self, values: dict[str, Any]) -> str | None:
        warning = None
        for name, value in list(values.items()):
            definition = self.leads.fields[name]
            text = as_text(value) or ""
            if definition.length is not None and len(text) > definition.length:
                values[name] = text[: definition.length]
                warning = f"Value for field '{name}' truncated to {definition.length} characters"
        return warning
