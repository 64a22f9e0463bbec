"""Field management (add, remove, list the mapping) and the Quick Sync timer with its job list."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.http import failure, respond
from shared.pipeline import fields, quicksync
from shared.services import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.route(route="mapping", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def mapping_show(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(fields.show_mapping(services()))
    except Exception as exc:
        return failure(exc)


@bp.route(route="mapping/{entity}/fields", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def mapping_add_field(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(fields.add_field(services(), req.route_params["entity"], req.get_body()))
    except Exception as exc:
        return failure(exc)


@bp.route(route="mapping/{entity}/fields/{column}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def mapping_remove_field(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(fields.remove_field(services(), req.route_params["entity"], req.route_params["column"]))
    except Exception as exc:
        return failure(exc)


@bp.route(route="quicksync", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def quick_sync_jobs(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(quicksync.list_jobs_reply(services()))
    except Exception as exc:
        return failure(exc)


@bp.timer_trigger(arg_name="timer", schedule="%QUICK_SYNC_SCHEDULE%", run_on_startup=False)
def quick_sync(timer: func.TimerRequest) -> None:
    report = quicksync.run_quick_sync(services())
    if report.jobs or report.adopted:
        log.info(
            "Quick Sync: %d pages, %d records, jobs %s, finished %s%s",
            report.pages,
            report.records,
            report.jobs,
            report.finished,
            " (time budget spent; the next run resumes)" if report.out_of_time else "",
        )
