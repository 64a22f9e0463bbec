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
    last_error: str | None = None
    notice: str | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def checkpoint_name(self) -> str:
        return JOB_PREFIX + self.id

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("etag")
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> QuickSyncJob:
        doc = json.loads(checkpoint.value)
        known = {f.name for f in fields(cls)} - {"etag"}
        values = {k: v for k, v in doc.items() if k in known}
        values["state"] = JobState(values["state"])
        return cls(**values, etag=checkpoint.etag)

    def public(self) -> dict[str, Any]:
        """What the admin endpoints and the status view show (the resume link is internal)."""
        doc = self.to_doc()
        doc.pop("next_link")
        doc.pop("import_digest")
        doc["resumable"] = self.next_link is not None
        return doc


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
    job_id = f"{now.astimezone(UTC):%Y%m%dT%H%M%S}-{entity}-{f.dynamics}-{uuid.uuid4().hex[:6]}"
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
