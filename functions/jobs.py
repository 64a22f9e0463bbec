"""Jobs: the runner that works Quick Sync and resync jobs (nudged through ``QUICK_SYNC_QUEUE``, and by the Quick
Sync timer as the safety net), the jobs endpoints and the force resync."""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from shared.errors import SyncError
from shared.pipeline.quicksync.jobs import QuickSyncJob
from shared.pipeline.quicksync.nudge import nudge, nudged_job
from shared.pipeline.quicksync.resync import PACE, start_resync
from shared.pipeline.quicksync.start import job_view, jobs_view
from shared.pipeline.quicksync.timer import RunReport, run_limits, run_quick_sync
from shared.services import Services, services
from shared.store.link_layout import LayoutReport, move_legacy_links

bp = func.Blueprint()
log = logging.getLogger(__name__)


def run_jobs(svc: Services, why: str) -> RunReport:
    """Work every queued and running job; a run cut short (its time budget, a resync's pacing) nudges the next."""
    report = run_quick_sync(
        svc.store,
        svc.dataverse_jobs,  # Dataverse's backfill lane
        svc.backfill,  # the backfill lane: live changes keep their share of Marketo's budget
        svc.live_mapping,
        limits=run_limits(svc.settings),
        now=svc.clock,
        changes=svc.changes,
    )
    if report.jobs or report.adopted:
        log.info(
            "jobs (%s): %d pages, %d records, jobs %s, finished %s%s",
            why,
            report.pages,
            report.records,
            report.jobs,
            report.finished,
            " (cut short; the next run resumes)" if report.out_of_time or report.paced else "",
        )
    if report.paced or report.out_of_time:
        nudge(svc.queue, svc.settings.quick_sync_queue, "continue", now=svc.clock(), delay=PACE)
    return report


LINK_MOVE_SHARE = 0.25
"""The share of a Quick Sync timer run's time budget that moving legacy links may take (shared.store.link_layout)."""


def move_links(svc: Services) -> LayoutReport | None:
    """Move links still in the layout before this one, within a share of the run's budget; a store that fails
    here fails the jobs' run too, which reports it (None here: nothing moved this time)."""
    budget = run_limits(svc.settings).budget_seconds * LINK_MOVE_SHARE
    started = time.monotonic()
    entities = ["lead", "contact", *(e.entity for e in svc.live_mapping.current().entities)]
    try:
        return move_legacy_links(svc.store, entities, out_of_time=lambda: time.monotonic() - started >= budget)
    except SyncError as exc:
        log.warning("links: moving them to the current layout stopped (%s); the next run goes on", exc)
        return None


def start_now(svc: Services, job: QuickSyncJob) -> None:
    """Have the runner work ``job`` now (the job's row is the record of the work; the nudge only says "now")."""
    nudge(svc.queue, svc.settings.quick_sync_queue, job.id, now=svc.clock())


@bp.service_bus_queue_trigger(arg_name="message", queue_name="%QUICK_SYNC_QUEUE%", connection="ServiceBusConnection")
def run_nudged_jobs(message: func.ServiceBusMessage) -> None:
    """A nudge (a field added, a Quick Sync or resync asked for, a run cut short): work the jobs now."""
    run_jobs(services(), f"nudged for {nudged_job(message.get_body()) or 'an unnamed job'}")


@bp.route(route="jobs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return json_answer(HTTPStatus.OK, jobs_view(svc.store, svc.clock()))


@bp.route(route="jobs/{job_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def get_job(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return json_answer(HTTPStatus.OK, job_view(svc.store, req.route_params.get("job_id", ""), svc.clock()))


@bp.route(route="resync", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def resync(req: func.HttpRequest) -> func.HttpResponse:
    """202 with the new job; 200 with the running one when the same resync is queued or running already."""
    svc = services()
    job, created = start_resync(svc.store, svc.mapping, req.get_body(), now=svc.clock())
    if created:
        start_now(svc, job)
    status = HTTPStatus.ACCEPTED if created else HTTPStatus.OK
    return json_answer(status, {"job": job.public(svc.clock()), "created": created})
