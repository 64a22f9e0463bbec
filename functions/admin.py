"""Admin endpoints: status, pause and resume, and "sync person to Dynamics" (sync errors: functions/errors.py)."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import azure.functions as func

from functions.console import console_location
from functions.http import answers_errors, json_answer
from functions.status_view import status_data
from shared.pipeline import pause as pausing
from shared.pipeline import person_to_dynamics as person
from shared.services import services

bp = func.Blueprint()


@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def status(req: func.HttpRequest) -> func.HttpResponse:
    if req.params.get("format") == "html" or "text/html" in (req.headers.get("accept") or ""):
        return func.HttpResponse(status_code=HTTPStatus.FOUND, headers={"Location": console_location(req, "status")})
    svc = services()
    data = status_data(svc, req.params.get("entity") or None)
    return json_answer(HTTPStatus.OK, data)


@bp.route(route="sync/pause", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def pause(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return json_answer(HTTPStatus.OK, pausing.pause(svc.store, svc.mapping, req.params.get("entity") or None).view())


@bp.route(route="sync/resume", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def resume(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    entity = req.params.get("entity") or None
    resumed = pausing.resume(svc.store, svc.mapping, svc.pending, svc.changes, entity, now=svc.clock())
    return json_answer(HTTPStatus.OK, resumed.view())


PERSON_ANSWERS: Mapping[person.Outcome, HTTPStatus] = {
    person.Outcome.CREATED: HTTPStatus.CREATED,
    person.Outcome.ALREADY_LINKED: HTTPStatus.OK,
    person.Outcome.LINKED_EXISTING: HTTPStatus.OK,
}


def _person_answer(synced: person.PersonSynced) -> func.HttpResponse:
    if synced.outcome is person.Outcome.IN_PROGRESS:
        wait = synced.retry_after or person.RETRY_AFTER
        message = "another call is linking or creating this person's Dynamics record: ask again shortly"
        return json_answer(
            HTTPStatus.CONFLICT,
            {"error": {"code": synced.outcome.value, "message": message}},
            {"Retry-After": str(wait)},
        )
    body: dict[str, str] = {"status": synced.outcome.value, "entity": synced.entity or "", "id": synced.id or ""}
    if synced.matched_by is not None:
        body["matched_by"] = synced.matched_by
    return json_answer(PERSON_ANSWERS[synced.outcome], body)


@bp.route(route="marketo/persons/{marketo_id}/sync-to-dynamics", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def sync_person_to_dynamics(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    synced = person.sync_person_to_dynamics(
        svc.store,
        svc.mapping,
        svc.dataverse,
        svc.marketo,
        req.route_params.get("marketo_id", ""),
        claim_timeout=svc.settings.person_claim_timeout_seconds,
        clock=svc.clock,
    )
    return _person_answer(synced)
