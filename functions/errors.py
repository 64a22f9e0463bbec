"""The Sync Errors endpoints: list and export (filtered), one error, and an admin's retry, ignore and resolve."""

from __future__ import annotations

from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer, text_answer
from shared.core.record_links import RecordLinks
from shared.pipeline import error_view
from shared.services import Services, services

bp = func.Blueprint()


def _links(svc: Services) -> RecordLinks:
    return RecordLinks(svc.settings.dataverse_url, svc.settings.marketo_ui_url)


@bp.route(route="errors", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def list_errors(req: func.HttpRequest) -> func.HttpResponse:
    query = error_view.error_query(req.params)
    svc = services()
    return json_answer(HTTPStatus.OK, error_view.list_errors(svc.store, query, _links(svc)))


@bp.route(route="errors.csv", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def export_errors(req: func.HttpRequest) -> func.HttpResponse:
    query = error_view.error_query(req.params, default_limit=error_view.MAX_LISTED)
    svc = services()
    text = error_view.export_errors(svc.store, query, _links(svc))
    disposition = {"Content-Disposition": 'attachment; filename="sync-errors.csv"'}
    return text_answer(HTTPStatus.OK, text, "text/csv", disposition)


@bp.route(route="errors/retry", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def retry_errors(req: func.HttpRequest) -> func.HttpResponse:
    query = error_view.error_query(req.params, default_limit=10_000)
    svc = services()
    queued = error_view.retry_errors(svc.store, svc.mapping, svc.changes, query, at=svc.clock())
    body = {"status": "queued", "records": queued.records, "errors": queued.errors}
    return json_answer(HTTPStatus.ACCEPTED, body)


@bp.route(route="errors/{error_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def get_error(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return json_answer(HTTPStatus.OK, error_view.get_error(svc.store, req.route_params["error_id"], _links(svc)))


@bp.route(route="errors/{error_id}/retry", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def retry_error(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    row = error_view.retry_error(
        svc.store, svc.mapping, svc.changes, req.route_params["error_id"], _links(svc), at=svc.clock()
    )
    return json_answer(HTTPStatus.ACCEPTED, row)


@bp.route(route="errors/{error_id}/ignore", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def ignore_error(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    row = error_view.ignore_error(svc.store, req.route_params["error_id"], _links(svc), at=svc.clock())
    return json_answer(HTTPStatus.OK, row)


@bp.route(route="errors/{error_id}/resolve", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def resolve_error(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    row = error_view.resolve_error(svc.store, req.route_params["error_id"], _links(svc), at=svc.clock())
    return json_answer(HTTPStatus.OK, row)
