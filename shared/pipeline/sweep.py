"""The pending sweep (a timer, every minute): re-enqueues the marks that are due, so a lost, dead-lettered or
never-sent message is found again, and probes a service whose circuit is open.

* every circuit closed: up to ``page`` due marks, oldest due first, are sent again;
* a circuit open and its probe time passed: only ``probe`` due marks are sent (the probe); the batch that
  reconciles them closes the circuit, and the next runs drain the rest page by page;
* a circuit open and its probe not due: nothing is sent (the batches would only defer them again).

New marks are due a grace period after they are written, well above the queue's normal latency, so the sweep
does not duplicate healthy traffic; a mark the sweep sent is due again a grace period later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.pipeline.circuit import Circuits
from shared.pipeline.pending import PendingWork
from shared.pipeline.ports import ChangesQueue


@dataclass(frozen=True, slots=True)
class SweepReport:
    pending: int
    due: int
    sent: int
    probing: tuple[str, ...] = ()  # services a probe was sent for
    waiting: tuple[str, ...] = ()  # services whose probe is not due yet (nothing sent)


def sweep(
    pending: PendingWork, circuits: Circuits, queue: ChangesQueue, *, now: datetime, page: int, probe: int
) -> SweepReport:
    marks = pending.all()
    due = sorted((m for m in marks if m.due(now)), key=lambda m: m.next_due_at)
    states = circuits.all().values()
    waiting = tuple(c.service for c in states if c.blocks(now))
    probing = tuple(c.service for c in states if c.probe_due(now))
    if waiting:
        limit = 0
    elif probing:
        limit = probe
    else:
        limit = page
    sent = pending.resend(due[:limit], queue, stamp=now.isoformat())
    return SweepReport(len(marks), len(due), sent, probing, waiting)
