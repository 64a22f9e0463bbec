"""Pause and resume: the whole sync, or one entity.

While an entity is paused its notifications come round the queue every ``PAUSE_RECHECK_SECONDS`` and its records
keep their pending marks (the reconcile defers them). Resuming sends the held records' marks again at once, so a
change held by the pause reconciles within a batch's time instead of waiting for the next recheck (the delayed
copies still on the queue find nothing left to do). A plain resume (no entity) resumes the whole sync and keeps the
entities paused by name: each is resumed by name, and the answer says which are still paused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.mapping import SyncMapping
from shared.core.pending import PERSON, PendingMark
from shared.errors import NotFound, SyncError
from shared.pipeline.pending import PendingWork
from shared.pipeline.ports import ChangesQueue
from shared.store.base import StateStore
from shared.store.model import PauseState

log = logging.getLogger(__name__)

PERSON_ENTITIES = ("lead", "contact")  # a Marketo change not yet tied to a record becomes one of these
RESUME_PAGE = 5000  # held records sent at once on resume; the sweep and the rechecks bring any beyond


@dataclass(frozen=True, slots=True)
class PauseChanged:
    state: PauseState
    held_sent: int = 0
    note: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "paused_all": self.state.all,
            "paused_entities": sorted(self.state.entities),
            "held_changes_sent": self.held_sent,
            "note": self.note,
        }


def _check(mapping: SyncMapping, entity: str | None) -> None:
    if entity is not None and entity not in mapping.by_entity:
        raise NotFound("the entity is not in the sync mapping", code="not-found")


def pause(store: StateStore, mapping: SyncMapping, entity: str | None) -> PauseChanged:
    """``entity`` None: the whole sync."""
    _check(mapping, entity)
    return PauseChanged(store.set_pause(entity, True))


def released(mark: PendingMark, entity: str | None, state: PauseState) -> bool:
    """Is ``mark`` a record this resume lets go (of the resumed entity, or of any entity no longer paused)?"""
    if mark.parked:
        return False
    partition = mark.key.partition
    if partition == PERSON:
        wanted = entity is None or entity in PERSON_ENTITIES
        return wanted and not all(state.is_paused(e) for e in PERSON_ENTITIES)
    return (entity is None or partition == entity) and not state.is_paused(partition)


def resume(
    store: StateStore,
    mapping: SyncMapping,
    pending: PendingWork,
    queue: ChangesQueue,
    entity: str | None,
    *,
    now: datetime,
) -> PauseChanged:
    """Resume, then send the held records' marks now (a re-send that counts as none towards the give-up cap)."""
    _check(mapping, entity)
    state = store.set_pause(entity, False)
    still = sorted(state.entities)
    note = None
    if entity is None and still:
        note = (
            f"the whole sync is resumed; paused by name, still paused: {', '.join(still)} (resume each with ?entity=)"
        )
    held = [m for m in pending.all() if released(m, entity, state)]
    held.sort(key=lambda m: m.first_seen)
    try:
        sent = pending.resend(held[:RESUME_PAGE], queue, stamp=f"resume@{now.isoformat()}", outage=True)
    except SyncError as exc:  # the queue refused: the rechecks and the sweep still bring them
        log.warning("resumed, but the held changes could not be sent now: %s", exc)
        return PauseChanged(state, 0, note)
    if sent:
        log.info("resumed %s: %d held record(s) sent", entity or "the sync", sent)
    return PauseChanged(state, sent, note)
