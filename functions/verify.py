"""The verification sweep's timer: finds Marketo-side edits of one-way records and has them restored from
Dynamics (the sweep's rules are in shared/pipeline/verify.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.pipeline import feeds, verify
from shared.pipeline.circuit import MARKETO
from shared.services import services
from shared.telemetry import traced_timer

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="%VERIFY_SWEEP_SCHEDULE%", run_on_startup=False)
@traced_timer
def verify_sweep(timer: func.TimerRequest) -> None:
    """At most VERIFY_SWEEP_MAX_CALLS Marketo queries a run; returns normally while Marketo is unavailable
    (skipped, or stopped and the circuit told): see ``feeds.while_available``."""
    svc = services()
    report = feeds.while_available(
        svc.circuits,
        MARKETO,
        "verification sweep",
        lambda: verify.verify_one_way(
            svc.store,
            svc.backfill,  # a backfill: it takes only what live changes leave of Marketo's budget
            svc.mapping,
            svc.changes,
            max_calls=svc.settings.verify_sweep_max_calls,
            now=svc.clock,
        ),
    )
    if isinstance(report, feeds.Unavailable):
        return
    log.info(
        "verification sweep: %d Marketo calls, %d records compared, %d queued to be restored (%d gone from "
        "Marketo), %d cycles completed; now at %s",
        report.calls,
        report.checked,
        report.queued,
        report.missing,
        report.cycles,
        report.walk.entity or "nothing to verify",
    )
