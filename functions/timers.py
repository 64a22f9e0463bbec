"""The timers: Marketo's lead-changes feed, the Dataverse change-tracking catch-up, and the pending sweep."""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from shared.pipeline import feeds
from shared.pipeline.circuit import DATAVERSE, MARKETO
from shared.pipeline.sweep import sweep
from shared.services import services
from shared.telemetry import traced_timer

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="%MARKETO_FEED_SCHEDULE%", run_on_startup=False)
@traced_timer
def marketo_feed(timer: func.TimerRequest) -> None:
    """Returns normally while Marketo is unavailable (skipped, or stopped and the circuit told): see
    ``feeds.while_available``."""
    svc = services()
    report = feeds.while_available(
        svc.circuits,
        MARKETO,
        "Marketo feed",
        lambda: feeds.read_marketo_feed(
            svc.store,
            svc.marketo,
            svc.mapping,
            svc.changes,
            now=svc.clock,
            first_lookback=timedelta(hours=svc.settings.marketo_feed_first_lookback_hours),
        ),
    )
    if isinstance(report, feeds.Unavailable):
        return
    log.info(
        "Marketo feed: %d queued, %d echoes skipped, %d unlinked, %d persons deleted in Marketo let go",
        report.queued,
        report.echoes,
        report.unlinked,
        report.deleted_in_marketo,
    )


@bp.timer_trigger(arg_name="timer", schedule="%DATAVERSE_CATCHUP_SCHEDULE%", run_on_startup=False)
@traced_timer
def dataverse_catchup(timer: func.TimerRequest) -> None:
    """Returns normally while Dataverse is unavailable, as the Marketo feed does."""
    svc = services()
    report = feeds.while_available(
        svc.circuits,
        DATAVERSE,
        "Dataverse catch-up",
        lambda: feeds.catch_up_dataverse(svc.store, svc.dataverse, svc.mapping, svc.changes, now=svc.clock),
    )
    if isinstance(report, feeds.Unavailable):
        return
    log.info("Dataverse catch-up: %d queued (%s), %d in sync", report.queued, report.details, report.echoes)


@bp.timer_trigger(arg_name="timer", schedule="%PENDING_SWEEP_SCHEDULE%", run_on_startup=False)
@traced_timer
def pending_sweep(timer: func.TimerRequest) -> None:
    """Re-enqueue the pending marks that are due (lost or dead-lettered messages), or probe an unavailable
    service; the sweep's rules are in shared/pipeline/sweep.py."""
    svc = services()
    s = svc.settings
    report = sweep(
        svc.pending,
        svc.circuits,
        svc.changes,
        now=svc.clock(),
        page=s.pending_sweep_page_size,
        probe=s.circuit_probe_size,
        max_attempts=s.pending_max_attempts,
    )
    feeds.record_run(svc.store, "pending_sweep", svc.clock())
    log.info(
        "pending sweep: %d pending, %d due, %d sent; probing %s; waiting for %s; %d given up now, %d parked",
        report.pending,
        report.due,
        report.sent,
        ", ".join(report.probing) or "nothing",
        ", ".join(report.waiting) or "nothing",
        report.gave_up,
        report.parked,
    )
    if report.gave_up:
        log.warning("pending sweep gave up on %d record(s): see the pending-gave-up sync errors", report.gave_up)
