"""The reconcile function: a batch of change notifications from Service Bus, reconciled per entity."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.pipeline import dequeue
from shared.services import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.service_bus_queue_trigger(
    arg_name="messages",
    queue_name="%SYNC_CHANGES_QUEUE%",
    connection="ServiceBusConnection",
    cardinality=func.Cardinality.MANY,
)
def reconcile(messages: list[func.ServiceBusMessage]) -> None:
    """Raises only when the whole batch must be retried (a service is throttled or down): Service Bus then
    redelivers it, and dead-letters it after the queue's max delivery count."""
    svc = services()
    batch = dequeue.read_batch(
        [(m.message_id, m.get_body(), m.delivery_count) for m in messages],
        mapping=svc.mapping,
        sync_user_id=svc.known_sync_user_id,
        store=svc.store,
    )
    report = svc.reconciler().run(batch.notifications)
    log.info(
        "reconciled %d notification(s): %d decision(s), %d error(s), %d requeued, %d ignored",
        len(messages),
        len(report.decisions),
        len(report.errors) + len(batch.rejected),
        len(report.requeued),
        len(report.ignored) + len(batch.ignored),
    )
