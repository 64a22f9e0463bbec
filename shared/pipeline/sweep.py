"""The pending sweep (a timer, every minute): re-enqueues the marks that are due, so a lost, dead-lettered or
never-sent message is found again, and probes a service whose circuit is open.

* every circuit closed: up to ``page`` due marks, oldest due first, are sent again;
* a circuit open and its probe time passed: only ``probe`` due marks are sent (the probe); the batch that
  reconciles them closes the circuit, and the next runs drain the rest page by page;
* a circuit open and its probe not due: nothing is sent (the batches would only defer them again).

New marks are due a grace period after they are written, well above the queue's normal latency, so the sweep
does not duplicate healthy traffic; a mark the sweep sent is due again a grace period later.

A record that fails every time for a reason that is not an outage (a bug, a value the code cannot take) is not
re-sent for ever: once the sweep has re-sent its mark ``max_attempts`` times with every circuit closed (a probe,
the re-send that drains an outage's work and a paused entity's re-sends do not count) and it is due again, the
sweep records a ``pending-gave-up`` sync error and parks the mark. A parked mark is never due; the record's next
change, or an admin retry of that error, marks it again and the count starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.core.pending import PERSON, MarkKey, PendingMark
from shared.pipeline.circuit import Circuits
from shared.pipeline.notification import Source
from shared.pipeline.pending import PendingWork, notification_of
from shared.pipeline.ports import ChangesQueue
from shared.pipeline.sync_errors import pending_gave_up
from shared.store.model import TO_DYNAMICS, TO_MARKETO, PauseState

DEFAULT_MAX_ATTEMPTS = 20
_FROM_MARKETO = frozenset({Source.MARKETO_WEBHOOK, Source.MARKETO_FEED})


@dataclass(frozen=True, slots=True)
class SweepReport:
    pending: int
    due: int
    sent: int
    probing: tuple[str, ...] = ()  # services a probe was sent for
    waiting: tuple[str, ...] = ()  # services whose probe is not due yet (nothing sent)
    gave_up: int = 0  # marks parked by this run, each with a pending-gave-up sync error
    parked: int = 0  # marks parked, this run's included


def sweep(
    pending: PendingWork,
    circuits: Circuits,
    queue: ChangesQueue,
    *,
    now: datetime,
    page: int,
    probe: int,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
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
    chosen = due[:limit]
    gave_up: list[PendingMark] = []
    pause = pending.store.get_pause() if chosen else PauseState()
    outage = bool(probing or waiting)
    if not outage:  # only with every circuit closed can a mark be exhausted
        done = {m.key for m in chosen if m.exhausted(max_attempts) and not _paused(pause, m.key)}
        gave_up = [m for m in chosen if m.key in done]
        chosen = [m for m in chosen if m.key not in done]
    parked = _give_up(pending, gave_up, now)
    sent = pending.resend(chosen, queue, stamp=now.isoformat(), outage=outage, paused=lambda key: _paused(pause, key))
    already = sum(1 for m in marks if m.parked)
    return SweepReport(len(marks), len(due), sent, probing, waiting, len(parked), already + len(parked))


def _paused(pause: PauseState, key: MarkKey) -> bool:
    """Whether the mark's entity is paused (a Marketo person's mark: leads or contacts paused)."""
    if key.partition == PERSON:
        return pause.is_paused("lead") or pause.is_paused("contact")
    return pause.is_paused(key.partition)


def _give_up(pending: PendingWork, marks: list[PendingMark], now: datetime) -> list[PendingMark]:
    """A sync error per mark first (so a parked mark is never without one), then park them."""
    for mark in marks:
        source = notification_of(mark).source
        direction = TO_DYNAMICS if mark.key.partition == PERSON or source in _FROM_MARKETO else TO_MARKETO
        error = pending_gave_up(
            mark.key.partition, mark.key.record_id, direction, mark.resends, mark.last_error, at=now
        )
        pending.store.add_error(error)
    return pending.park(marks)
