"""Field management (add, remove, list the mapping) and the Quick Sync timer with its job list."""

from __future__ import annotations

import logging
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from shared.pipeline import fields
from shared.pipeline.quicksync.status import jobs_overview
from shared.pipeline.quicksync.timer import run_limits, run_quick_sync
from shared.services import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.route(route="mapping", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_show(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return json_answer(HTTPStatus.OK, fields.show_mapping(svc.store, svc.live_mapping))


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


@bp.timer_trigger(arg_name="timer", schedule="%QUICK_SYNC_SCHEDULE%", run_on_startup=False)
def quick_sync(timer: func.TimerRequest) -> None:
    svc = services()
    report = run_quick_sync(svc.store, svc.dataverse, svc.marketo, svc.live_mapping, limits=run_limits(svc.settings))
    if report.jobs or report.adopted:
        log.info(
            "Quick Sync: %d pages, %d records, jobs %s, finished %s%s",
            report.pages,
            report.records,
            report.jobs,
            report.finished,
            " (time budget spent; the next run resumes)" if report.out_of_time else "",
        )
