"""Quick Sync jobs and their rows in the state store.

One job per added field lives in the state store as a checkpoint named ``quicksync:<job id>``: its state, the
optional ``modifiedon`` range, progress counters, the Dataverse ``@odata.nextLink`` to resume from and the
Marketo bulk import jobs of the pages under way (polled on resume, never submitted twice). Every
save is conditional on the checkpoint's ETag (:class:`Conflict` when another instance saved it first), so two
instances never both advance one job.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.core.mapping import FieldMapping
from shared.store.base import StateStore
from shared.store.model import Checkpoint

JOB_PREFIX = "quicksync:"
MAX_PAGE_SIZE = 5000  # Dataverse's largest page


class JobKind(StrEnum):
    QUICK_SYNC = "quick_sync"  # one added field, Dynamics -> Marketo
    RESYNC = "resync"  # an admin's force resync of records (:mod:`shared.pipeline.quicksync.resync`)
    INITIAL_SYNC = "initial_sync"  # an entity added at runtime: every record (:mod:`shared.pipeline.quicksync.initial`)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"  # the field left the mapping before its Quick Sync finished

    @property
    def active(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING)


def iso(moment: datetime) -> str:
    """The instants jobs keep: UTC, to the second, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class QuickSyncJob:
    """One field's Quick Sync; serialised as the checkpoint's JSON value (``etag`` is the checkpoint's)."""

    id: str
    entity: str
    column: str
    marketo_field: str
    state: JobState
    created_at: str
    modified_from: str | None = None  # inclusive instants, ``YYYY-MM-DDTHH:MM:SSZ``
    modified_to: str | None = None
    page_size: int | None = None  # None: the run's page size
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    next_link: str | None = None
    paged_all: bool = False
    runs: int = 0
    pages: int = 0
    records_read: int = 0
    records_done: int = 0
    records_unlinked: int = 0
    records_filtered: int = 0  # kept out by the sync filter (new_synctomkto = No)
    records_failed: int = 0
    records_left_to_live_sync: int = 0
    restarts: int = 0
    # The bulk import under way (persons): ``import_pages`` pages from ``next_link`` make its files; the batch ids
    # of the files submitted so far, in file order; a digest of those files. Cleared when the pages' baselines are
    # saved, together with the move of ``next_link``.
    import_pages: int = 0
    import_batches: list[int] = field(default_factory=list)
    import_digest: str | None = None
    import_seconds_per_row: float | None = None  # what this job's last finished import took per row: the next
    # groups' status polls are paced by it
    last_error: str | None = None
    notice: str | None = None
    kind: JobKind = JobKind.QUICK_SYNC
    mode: str | None = None  # resync: "both_ways" | "refresh_marketo"
    scope: str | None = None  # resync: "record" (ids) | "entity" | "modified" (a modifiedon range)
    ids: list[str] = field(default_factory=list)  # resync of records by id
    records_total: int | None = None  # counted when the job starts (None: unknown, or more than Dataverse counts)
    in_flight: list[str] = field(default_factory=list)  # resync both ways: the ids of the last page queued
    not_before: str | None = None  # the runner leaves the job queued until then (an initial sync: every instance
    # has seen its entity in the mapping by then)
    etag: str | None = field(default=None, compare=False)

    @property
    def checkpoint_name(self) -> str:
        return JOB_PREFIX + self.id

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("etag")
        doc["state"] = self.state.value
        doc["kind"] = self.kind.value
        return doc

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> QuickSyncJob:
        doc = json.loads(checkpoint.value)
        known = {f.name for f in fields(cls)} - {"etag"}
        values = {k: v for k, v in doc.items() if k in known}
        values["state"] = JobState(values["state"])
        values["kind"] = JobKind(values.get("kind") or JobKind.QUICK_SYNC)
        return cls(**values, etag=checkpoint.etag)

    def public(self, now: datetime | None = None) -> dict[str, Any]:
        """What the admin endpoints and the status view show (the resume link and the id list are internal), with
        the progress reckoned from the counters: ``percent`` of ``records_total`` processed (read), the rate over
        the time the job has run, and the seconds left at that rate (null while unknown)."""
        doc = self.to_doc()
        for internal in ("next_link", "import_digest", "import_seconds_per_row", "ids", "in_flight"):
            doc.pop(internal)
        doc["resumable"] = self.next_link is not None
        doc["records_processed"] = self.records_read
        if self.kind is not JobKind.QUICK_SYNC:
            doc["column"] = doc["marketo_field"] = None
            doc["records_requested"] = len(self.ids) or None
        total = self.records_total
        if total is None and self.paged_all:
            total = self.records_read
        doc["records_total"] = total
        doc["percent"] = round(min(100.0, 100.0 * self.records_read / total), 1) if total else None
        if self.state is JobState.DONE:
            doc["percent"] = 100.0
        elapsed = self._elapsed(now)
        rate = self.records_read / elapsed if elapsed and self.records_read else 0.0
        doc["rate_per_s"] = round(rate, 2)
        left = max(0, total - self.records_read) if total is not None else None
        doc["eta_s"] = (round(left / rate, 1) if rate else None) if self.state.active and left is not None else None
        if not self.state.active:
            doc["eta_s"] = 0.0 if self.state is JobState.DONE else None
        for name in ("created_at", "started_at", "finished_at", "updated_at", "not_before"):
            doc[name] = readable(doc[name])
        return doc

    def _elapsed(self, now: datetime | None) -> float | None:
        """Seconds the job has run: from its start to its end (or its last save, or ``now`` while it runs)."""
        start = parse_iso(self.started_at)
        end = parse_iso(self.finished_at) or (now if now is not None else parse_iso(self.updated_at))
        if start is None or end is None:
            return None
        return max(1.0, (end - start).total_seconds())  # a job done within its first second ran at most that fast


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def readable(text: str | None) -> str | None:
    """A job's instant as the API shows times: ISO-8601 with the UTC offset, no fraction."""
    moment = parse_iso(text)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat() if moment else None


def list_jobs(store: StateStore) -> list[QuickSyncJob]:
    """Every job, oldest first."""
    jobs = [QuickSyncJob.from_checkpoint(c) for c in store.list_checkpoints() if c.name.startswith(JOB_PREFIX)]
    return sorted(jobs, key=lambda j: (j.created_at, j.id))


def active_job(store: StateStore, entity: str, column: str) -> QuickSyncJob | None:
    return next((j for j in list_jobs(store) if j.entity == entity and j.column == column and j.state.active), None)


def save_job(store: StateStore, job: QuickSyncJob, now: datetime) -> QuickSyncJob:
    """Conditional on the job's ETag; raises :class:`Conflict` when another instance saved it first."""
    job.updated_at = iso(now)
    saved = store.save_checkpoint(Checkpoint(job.checkpoint_name, json.dumps(job.to_doc()), now, job.etag))
    job.etag = saved.etag
    return job


def create_job(
    store: StateStore,
    entity: str,
    f: FieldMapping,
    *,
    now: datetime,
    modified_from: str | None = None,
    modified_to: str | None = None,
    page_size: int | None = None,
) -> QuickSyncJob:
    job_id = new_job_id(now, entity, f.dynamics)
    job = QuickSyncJob(
        id=job_id,
        entity=entity,
        column=f.dynamics,
        marketo_field=f.marketo,
        state=JobState.QUEUED,
        created_at=iso(now),
        modified_from=modified_from,
        modified_to=modified_to,
        page_size=page_size,
    )
    return save_job(store, job, now)


def new_job_id(now: datetime, entity: str, what: str) -> str:
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S}-{entity}-{what}-{uuid.uuid4().hex[:6]}"


def find_job(store: StateStore, job_id: str) -> QuickSyncJob | None:
    checkpoint = store.get_checkpoint(JOB_PREFIX + job_id)
    return QuickSyncJob.from_checkpoint(checkpoint) if checkpoint is not None else None
