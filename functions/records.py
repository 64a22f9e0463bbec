"""A record's page for the admin: find it (Dynamics id, Marketo id, e-mail), read its link, history and sync
errors; and the timer that prunes history older than the retention (docs/record-history.md)."""

from __future__ import annotations

import logging
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from shared.core.record_links import RecordLinks
from shared.errors import InvalidRequest
from shared.pipeline import feeds, records
from shared.pipeline.history import Retention, prune_history
from shared.services import Services, services

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _retention(svc: Services) -> Retention:
    return Retention(svc.settings.history_retention_days, svc.settings.history_max_entries)


def _urls(svc: Services) -> RecordLinks:
    return RecordLinks(svc.settings.dataverse_url, svc.settings.marketo_ui_url)


def _limit(text: str | None, cap: int) -> int | None:
    if not text:
        return None
    whole = text.isascii() and text.isdigit() and len(text) <= len(str(cap))
    if not whole or not 1 <= int(text) <= cap:
        raise InvalidRequest(f"limit must be a whole number from 1 to {cap}", code="bad-query", field="limit")
    return int(text)


@bp.route(route="records", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def find_records(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    found = records.find_records(
        svc.store,
        svc.mapping,
        svc.marketo,
        req.params.get("q") or "",
        urls=_urls(svc),
        now=svc.clock(),
        retention=_retention(svc),
    )
    return json_answer(HTTPStatus.OK, found)


@bp.route(route="records/{entity}/{dynamics_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def record(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    retention = _retention(svc)
    view = records.record_view(
        svc.store,
        svc.mapping,
        req.route_params.get("entity", ""),
        req.route_params.get("dynamics_id", ""),
        urls=_urls(svc),
        now=svc.clock(),
        retention=retention,
        limit=_limit(req.params.get("limit"), retention.entries),
    )
    return json_answer(HTTPStatus.OK, view)


@bp.timer_trigger(arg_name="timer", schedule="%HISTORY_PRUNE_SCHEDULE%", run_on_startup=False)
def history_prune(timer: func.TimerRequest) -> None:
    """Delete the record history days older than HISTORY_RETENTION_DAYS (a long backlog goes on next run)."""
    svc = services()
    pruned = prune_history(svc.store, now=svc.clock(), retention=_retention(svc))
    feeds.record_run(svc.store, "history_prune", svc.clock())
    log.info(
        "history prune: %d day(s) deleted (%d rows), %d day(s) left for the next run",
        len(pruned.days),
        pruned.rows,
        len(pruned.left),
    )
