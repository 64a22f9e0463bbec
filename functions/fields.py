"""Field management (add, remove, list the mapping) and the Quick Sync timer with its job list."""

from __future__ import annotations

import logging
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from functions.jobs import move_links, run_jobs, start_now
from shared.pipeline import fields
from shared.pipeline.catalogue import ColumnCache, entity_catalogue
from shared.pipeline.quicksync.start import rerun_quick_sync
from shared.pipeline.quicksync.status import jobs_overview
from shared.services import services
from shared.telemetry import traced_timer

bp = func.Blueprint()
log = logging.getLogger(__name__)
_columns = ColumnCache()  # per process: one metadata read per entity and minute


@bp.route(route="mapping", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_show(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return json_answer(HTTPStatus.OK, fields.show_mapping(svc.store, svc.live_mapping))


@bp.route(route="mapping/{entity}/catalogue", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_catalogue(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    found = entity_catalogue(
        req.route_params["entity"],
        mapping=svc.mapping,
        dataverse=svc.dataverse,
        sync_user_id=lambda: svc.sync_user_id,
        cache=_columns,
        now=svc.clock(),
    )
    return json_answer(HTTPStatus.OK, found)


@bp.route(route="mapping/{entity}/fields", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_add_field(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    added = fields.add_field(
        req.route_params["entity"],
        req.get_body(),
        store=svc.store,
        dataverse=svc.dataverse,
        marketo=svc.marketo,
        mapping=svc.live_mapping,
        sync_user_id=lambda: svc.sync_user_id,
    )
    start_now(svc, added.job)  # the Quick Sync starts at once, not at the timer's next tick
    return json_answer(HTTPStatus.ACCEPTED, added.view())


@bp.route(route="mapping/{entity}/fields/{column}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_remove_field(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    removed = fields.remove_field(
        req.route_params["entity"], req.route_params["column"], store=svc.store, mapping=svc.live_mapping
    )
    return json_answer(HTTPStatus.OK, removed.view())


@bp.route(route="quicksync", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def quick_sync_jobs(req: func.HttpRequest) -> func.HttpResponse:
    return json_answer(HTTPStatus.OK, jobs_overview(services().store))


@bp.route(route="quicksync", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def quick_sync_again(req: func.HttpRequest) -> func.HttpResponse:
    """``{"entity", "column"}``: the field's Quick Sync now. 202 with the new job; 200 with the one queued or running."""
    svc = services()
    job, created = rerun_quick_sync(svc.store, svc.live_mapping.current(), req.get_body(), now=svc.clock())
    if created:
        start_now(svc, job)
    status = HTTPStatus.ACCEPTED if created else HTTPStatus.OK
    return json_answer(status, {"job": job.public(svc.clock()), "created": created})


@bp.timer_trigger(arg_name="timer", schedule="%QUICK_SYNC_SCHEDULE%", run_on_startup=False)
@traced_timer
def quick_sync(timer: func.TimerRequest) -> None:
    """The safety net: every queued or running job, whatever nudge was lost; also resumes runs cut short. First,
    links still in the store's previous layout are moved (a share of the run's time, until none is left)."""
    svc = services()
    move_links(svc)
    run_jobs(svc, "timer")
