"""The nudge: a message on ``QUICK_SYNC_QUEUE`` that has the job runner start now instead of at its timer's next tick.

The job's row in the state store is the record of the work; the message only says "look now". Losing one costs
nothing but time (the Quick Sync timer works every queued job within a minute), a duplicate finds the job claimed
or done, so a nudge that cannot be sent is logged and forgotten.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta

from shared.errors import SyncError
from shared.queueing import OutgoingMessage, QueueSender

log = logging.getLogger(__name__)


def nudge_message(job_id: str, now: datetime, delay: timedelta | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        body=json.dumps({"job": job_id}).encode(),
        message_id=f"nudge:{job_id}:{now.isoformat()}:{uuid.uuid4().hex[:8]}",  # never dropped as a duplicate
        subject="quick-sync",
        application_properties={"job": job_id},
        scheduled_at=now + delay if delay else None,
    )


def nudge(sender: QueueSender, queue: str, job_id: str, *, now: datetime, delay: timedelta | None = None) -> bool:
    """Ask the job runner to run (after ``delay``); False when the queue refused (the timer runs it anyway)."""
    try:
        sender.send(queue, [nudge_message(job_id, now, delay)])
    except SyncError as exc:
        log.warning("could not nudge the job runner for %s (its timer runs it within a minute): %s", job_id, exc)
        return False
    return True


def nudged_job(body: bytes) -> str | None:
    """The job a nudge names (for the log), or None for a body that is not one."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    job = doc.get("job") if isinstance(doc, dict) else None
    return job if isinstance(job, str) else None
