"""The reconcile function: a batch of change notifications from Service Bus, reconciled per entity."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.pipeline import dequeue
from shared.services import services
from shared.telemetry import log_decisions, traced_messages

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.service_bus_queue_trigger(
    arg_name="messages",
    queue_name="%SYNC_CHANGES_QUEUE%",
    connection="ServiceBusConnection",
    cardinality=func.Cardinality.MANY,
)
@traced_messages
def reconcile(messages: list[func.ServiceBusMessage]) -> None:
    """Returns normally (the messages complete) when the batch was reconciled, and also when Marketo or Dataverse
    is unavailable: the records' pending marks then wait for the circuit's probe, so an outage never burns the
    delivery count. Raises only when the state store itself fails (nothing else can hold the work: Service Bus
    redelivers, and dead-letters after the max delivery count; the marks written before stay for the sweep) or on
    a bug. In a busy stream, records beyond each call group's last full Marketo call wait for the next batch
    (shared/pipeline/reconcile/carry.py)."""
    svc = services()
    batch = dequeue.read_batch(
        [(m.message_id, m.get_body()) for m in messages],
        mapping=svc.mapping,
        sync_user_id=svc.known_sync_user_id,
        store=svc.store,
    )
    try:
        report = svc.reconciler().run(batch.notifications, carry=svc.carry_rule(len(messages), batch.notifications))
    except Exception as exc:  # not an outage (those return): kept on the marks for the sweep's give-up error
        svc.pending.failed(batch.notifications, f"{type(exc).__name__}: {exc}"[:500])
        raise
    log_decisions(report.decisions, batch.notifications)
    if report.waiting_on is not None:
        log.warning(
            "%s unavailable: %d notification(s) completed, their records wait for the probe",
            report.waiting_on,
            len(batch.notifications),
        )
        return
    log.info(
        "reconciled %d notification(s): %d decision(s), %d error(s), %d requeued, %d ignored, %d held for the next",
        len(messages),
        len(report.decisions),
        len(report.errors) + len(batch.rejected),
        len(report.requeued),
        len(report.ignored) + len(batch.ignored),
        len(report.carried),
    )
