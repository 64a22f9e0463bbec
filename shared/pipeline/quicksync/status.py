"""What admins see of Quick Sync: every job with its progress, newest first (the resume link stays internal)."""

from __future__ import annotations

from typing import Any

from shared.pipeline.quicksync.jobs import JobState, list_jobs
from shared.store.base import StateStore


def quick_sync_status(store: StateStore) -> list[dict[str, Any]]:
    """For the Sync Status view."""
    return [j.public() for j in reversed(list_jobs(store))]


def jobs_overview(store: StateStore) -> dict[str, Any]:
    """For the jobs endpoint: how many jobs, how many still queued or running, and each of them."""
    jobs = quick_sync_status(store)
    active = sum(1 for j in jobs if JobState(j["state"]).active)
    return {"count": len(jobs), "active": active, "jobs": jobs}
