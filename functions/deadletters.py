"""Admin endpoints for the changes queue's dead letters: list, replay (one, all, or one entity's) and discard."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from shared.errors import InvalidRequest, NotPossible
from shared.pipeline import deadletters
from shared.queueing import DeadLetterQueue
from shared.services import Services, services

bp = func.Blueprint()


def _dead_letters(svc: Services) -> DeadLetterQueue:
    """The observer is the dead-letter port too (Service Bus in Azure, the local broker here)."""
    observer: object = svc.observer
    if not isinstance(observer, DeadLetterQueue):
        raise NotPossible("this host has no access to the queue's dead letters", code="no-dead-letter-access")
    return observer


def _whole(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name) or str(default)
    whole = text.isascii() and text.isdigit() and len(text) <= len(str(high))  # int() of 5000 digits raises
    if not whole or not low <= int(text) <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}", code="bad-query", field=name)
    return int(text)


@bp.route(route="deadletters", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def list_dead_letters(req: func.HttpRequest) -> func.HttpResponse:
    limit = _whole(req.params, "limit", 100, 1, deadletters.MAX_LISTED)
    after = _whole(req.params, "after", 0, 0, 2**63 - 1)
    svc = services()
    found = deadletters.list_dead_letters(_dead_letters(svc), svc.settings.changes_queue, after=after, limit=limit)
    return json_answer(HTTPStatus.OK, found)


@bp.route(route="deadletters/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def replay_dead_letters(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    entity = req.params.get("entity") or None
    done = deadletters.replay_all(_dead_letters(svc), svc.settings.changes_queue, entity=entity)
    return json_answer(HTTPStatus.ACCEPTED, done.as_dict())


@bp.route(route="deadletters/{dead_letter_id}/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def replay_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    done = deadletters.replay(_dead_letters(svc), svc.settings.changes_queue, req.route_params["dead_letter_id"])
    return json_answer(HTTPStatus.ACCEPTED, done.as_dict())


@bp.route(route="deadletters/{dead_letter_id}/discard", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def discard_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    queue, dead_letter_id = svc.settings.changes_queue, req.route_params["dead_letter_id"]
    done = deadletters.discard(_dead_letters(svc), svc.store, queue, dead_letter_id)
    return json_answer(HTTPStatus.OK, done.as_dict())
