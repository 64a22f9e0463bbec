"""Marketo flow steps: the webhook each "Call Webhook" step posts to, the queue function that runs them, and the
sweep that re-sends unfinished ones (shared/pipeline/flowsteps).

The webhook is anonymous at the host and checks the Marketo webhook's shared secret itself (constant time). It
answers 202 once the run is recorded in the state store (its nudge on ``FLOW_STEPS_QUEUE`` only says "now"), and
200 for a delivery of a run already recorded.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from shared.pipeline.flowsteps import runs
from shared.pipeline.flowsteps.steps import Ports
from shared.pipeline.sync_errors import unreadable_message
from shared.pipeline.webhooks import WebhookCall
from shared.services import services
from shared.telemetry import traced_http, traced_timer

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.route(route="marketo/flow/{step}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@traced_http
@answers_errors
def marketo_flow_step(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    call = WebhookCall(dict(req.headers), dict(req.params), req.get_body())
    accepted = runs.accept(
        call,
        req.route_params.get("step", ""),
        settings=svc.settings,
        store=svc.store,
        sender=svc.queue,
        now=svc.clock(),
    )
    return json_answer(HTTPStatus.OK if accepted.duplicate else HTTPStatus.ACCEPTED, accepted.view())


@bp.service_bus_queue_trigger(arg_name="message", queue_name="%FLOW_STEPS_QUEUE%", connection="ServiceBusConnection")
def run_flow_step(message: func.ServiceBusMessage) -> None:
    """Run the flow step a nudge names (its record in the state store holds the request)."""
    svc = services()
    key = runs.nudged_run(message.get_body())
    if key is None:  # not one of ours: recorded as a sync error (bad-message), never retried
        problem = 'not a flow-step nudge ({"run": "<key>"})'
        svc.store.add_error(unreadable_message(message.message_id, problem, message.get_body(), at=svc.clock()))
        log.warning("flow-step message %s names no run: recorded as a sync error", message.message_id)
        return
    ports = Ports(
        svc.store,
        svc.mapping,
        svc.dataverse,
        svc.marketo,
        svc.clock,
        claim_timeout=svc.settings.person_claim_timeout_seconds,
    )
    runs.run_once(key, ports)


@bp.timer_trigger(arg_name="timer", schedule="%PENDING_SWEEP_SCHEDULE%", run_on_startup=False)
@traced_timer
def flow_steps_sweep(timer: func.TimerRequest) -> None:
    """Re-send the flow-step runs that are due (a lost message, a crash before the run, a service that was down)."""
    svc = services()
    s = svc.settings
    report = runs.sweep(
        svc.store,
        svc.queue,
        s.flow_steps_queue,
        now=svc.clock(),
        grace=timedelta(seconds=s.pending_grace_seconds),
        max_attempts=s.pending_max_attempts,
    )
    if report.open:
        log.info("flow-step sweep: %d open, %d sent, %d given up", report.open, report.sent, report.gave_up)
