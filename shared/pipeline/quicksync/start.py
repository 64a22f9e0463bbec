"""Starting jobs by hand, and reading them: ``POST /api/quicksync`` (a field's Quick Sync again, now), the job
list and one job, for the jobs endpoints and the status view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.json_text import JsonTextError, load_json
from shared.core.mapping import FieldState, SyncMapping
from shared.errors import InvalidRequest, NotFound, NotPossible
from shared.pipeline.quicksync.jobs import QuickSyncJob, active_job, create_job, find_job, list_jobs
from shared.pipeline.quicksync.resync import problem
from shared.store.base import StateStore


class QuickSyncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str = Field(min_length=1, max_length=128)
    column: str = Field(min_length=1, max_length=128)


def rerun_quick_sync(
    store: StateStore, mapping: SyncMapping, body: bytes, *, now: datetime
) -> tuple[QuickSyncJob, bool]:
    """A mapped field's Quick Sync queued again (Dynamics -> Marketo for every linked record); the job, and
    whether it is new (False: one is queued or running already, and that one is answered)."""
    try:
        data = load_json(body or b"{}")
        parsed = QuickSyncBody.model_validate(data)
    except JsonTextError as exc:
        raise InvalidRequest(str(exc), code="bad-request", field="body") from None
    except ValidationError as exc:
        message, where = problem(exc, list(QuickSyncBody.model_fields))
        raise InvalidRequest(message, code="bad-request", field=where) from None
    entity = mapping.by_entity.get(parsed.entity.lower())
    if entity is None:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    f = entity.by_column.get(parsed.column.lower())
    if f is None:
        raise NotFound(f"{entity.entity} maps no such column", code="not-found")
    if f.state is FieldState.BROKEN:
        raise NotPossible(f"{entity.entity}.{f.dynamics} is broken (see the status view)", code="field-broken")
    running = active_job(store, entity.entity, f.dynamics)
    if running is not None:
        return running, False
    return create_job(store, entity.entity, f, now=now), True


def jobs_view(store: StateStore, now: datetime) -> dict[str, Any]:
    """``GET /api/jobs``: every job (Quick Sync and resync), newest first, with how many are still active."""
    jobs = [j.public(now) for j in reversed(list_jobs(store))]
    return {"count": len(jobs), "active": sum(1 for j in jobs if j["state"] in ("queued", "running")), "jobs": jobs}


def job_view(store: StateStore, job_id: str, now: datetime) -> dict[str, Any]:
    """``GET /api/jobs/{id}`` (NotFound for an id no job has)."""
    safe = 0 < len(job_id) <= 128 and all(c.isalnum() or c in "-_" for c in job_id)
    job = find_job(store, job_id) if safe else None
    if job is None:
        raise NotFound("no such job", code="not-found")
    return job.public(now)
