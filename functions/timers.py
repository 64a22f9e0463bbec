"""The timers: Marketo's lead-changes feed and the Dataverse change-tracking catch-up."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.pipeline import feeds
from shared.services import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="%MARKETO_FEED_SCHEDULE%", run_on_startup=False)
def marketo_feed(timer: func.TimerRequest) -> None:
    svc = services()
    report = feeds.read_marketo_feed(svc.store, svc.marketo, svc.mapping, svc.changes)
    log.info(
        "Marketo feed: %d queued, %d echoes skipped, %d unlinked, %d persons deleted in Marketo let go",
        report.queued,
        report.echoes,
        report.unlinked,
        report.deleted_in_marketo,
    )


@bp.timer_trigger(arg_name="timer", schedule="%DATAVERSE_CATCHUP_SCHEDULE%", run_on_startup=False)
def dataverse_catchup(timer: func.TimerRequest) -> None:
    svc = services()
    report = feeds.catch_up_dataverse(svc.store, svc.dataverse, svc.mapping, svc.changes)
    log.info("Dataverse catch-up: %d queued (%s), %d in sync", report.queued, report.details, report.echoes)
