"""Admin endpoints: status, sync errors, pause and resume, and "sync person to Dynamics"."""

from __future__ import annotations

import azure.functions as func

from functions.http import failure, respond
from shared.pipeline import admin
from shared.pipeline.webhooks import Reply
from shared.services import services

bp = func.Blueprint()


@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status(req: func.HttpRequest) -> func.HttpResponse:
    try:
        data = admin.status(services())
        wants_html = req.params.get("format") == "html" or "text/html" in (req.headers.get("accept") or "")
        if wants_html:
            return respond(Reply(200, admin.status_html(data), content_type="text/html"))
        return respond(Reply(200, data))
    except Exception as exc:
        return failure(exc)


@bp.route(route="errors", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_errors(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(admin.list_errors(services(), dict(req.params)))
    except Exception as exc:
        return failure(exc)


@bp.route(route="errors.csv", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def export_errors(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(admin.export_errors(services(), dict(req.params)))
    except Exception as exc:
        return failure(exc)


@bp.route(route="errors/{error_id}/retry", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def retry_error(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(admin.retry_error(services(), req.route_params["error_id"]))
    except Exception as exc:
        return failure(exc)


@bp.route(route="errors/retry", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def retry_open_errors(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(admin.retry_open_errors(services(), dict(req.params)))
    except Exception as exc:
        return failure(exc)


@bp.route(route="sync/pause", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def pause(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(admin.set_pause(services(), dict(req.params), paused=True))
    except Exception as exc:
        return failure(exc)


@bp.route(route="sync/resume", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def resume(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(admin.set_pause(services(), dict(req.params), paused=False))
    except Exception as exc:
        return failure(exc)


@bp.route(route="marketo/persons/{marketo_id}/sync-to-dynamics", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def sync_person_to_dynamics(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(admin.sync_person_to_dynamics(services(), req.route_params["marketo_id"]))
    except Exception as exc:
        return failure(exc)
