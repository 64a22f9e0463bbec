"""Admin endpoints: status, sync errors, pause and resume, and "sync person to Dynamics"."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer, text_answer
from functions.status_page import status_page
from shared.errors import InvalidRequest
from shared.pipeline import admin
from shared.pipeline import person_to_dynamics as person
from shared.services import services
from shared.store.model import ErrorStatus, PauseState

bp = func.Blueprint()

MAX_ERRORS_LISTED = 100_000  # as many as the CSV export holds


def _error_status(params: Mapping[str, str]) -> ErrorStatus | None:
    text = params.get("status")
    if not text:
        return None
    try:
        return ErrorStatus(text)
    except ValueError:
        allowed = ", ".join(s.value for s in ErrorStatus)
        raise InvalidRequest(f"status must be one of {allowed}", code="bad-query", field="status") from None


def _limit(params: Mapping[str, str]) -> int:
    text = params.get("limit", "500")
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ERRORS_LISTED))  # not "²", not 5,000 digits
    if not digits or not 1 <= int(text) <= MAX_ERRORS_LISTED:
        raise InvalidRequest(
            f"limit must be a whole number from 1 to {MAX_ERRORS_LISTED}", code="bad-query", field="limit"
        )
    return int(text)


def _paused(state: PauseState) -> func.HttpResponse:
    return json_answer(HTTPStatus.OK, {"paused_all": state.all, "paused_entities": sorted(state.entities)})


@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def status(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    data = admin.status(svc.store, svc.mapping, svc.observer, svc.settings.changes_queue, now=svc.clock())
    if req.params.get("format") == "html" or "text/html" in (req.headers.get("accept") or ""):
        return text_answer(HTTPStatus.OK, status_page(data), "text/html")
    return json_answer(HTTPStatus.OK, data)


@bp.route(route="errors", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def list_errors(req: func.HttpRequest) -> func.HttpResponse:
    state, limit = _error_status(req.params), _limit(req.params)
    found = admin.list_errors(
        services().store, entity=req.params.get("entity"), state=state, search=req.params.get("q"), limit=limit
    )
    return json_answer(HTTPStatus.OK, found)


@bp.route(route="errors.csv", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def export_errors(req: func.HttpRequest) -> func.HttpResponse:
    text = admin.export_errors(services().store, entity=req.params.get("entity"), search=req.params.get("q"))
    disposition = {"Content-Disposition": 'attachment; filename="sync-errors.csv"'}
    return text_answer(HTTPStatus.OK, text, "text/csv", disposition)


def _retried(queued: admin.RetryQueued) -> func.HttpResponse:
    return json_answer(HTTPStatus.ACCEPTED, {"status": "queued", "records": queued.records, "errors": queued.errors})


@bp.route(route="errors/{error_id}/retry", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def retry_error(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return _retried(admin.retry_error(svc.store, svc.mapping, svc.changes, req.route_params["error_id"]))


@bp.route(route="errors/retry", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def retry_open_errors(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return _retried(admin.retry_open_errors(svc.store, svc.mapping, svc.changes, entity=req.params.get("entity")))


@bp.route(route="sync/pause", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def pause(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return _paused(admin.set_pause(svc.store, svc.mapping, req.params.get("entity") or None, paused=True))


@bp.route(route="sync/resume", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def resume(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return _paused(admin.set_pause(svc.store, svc.mapping, req.params.get("entity") or None, paused=False))


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
