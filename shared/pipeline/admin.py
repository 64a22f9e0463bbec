"""What admins see and do: the Sync Status view, pause and resume, and the explicit "sync person to Dynamics"
action (the Sync Errors view: :mod:`shared.pipeline.error_view`).

Each returns the data it found or did (the triggers render it), or refuses with a :class:`Refused` error:
:class:`NotFound` for an entity, sync error or person that does not exist, :class:`InvalidRequest` for an id
that cannot be one, :class:`NotPossible` for a person whose values cannot be written to Dynamics.
"""

from __future__ import annotations

import logging

from shared.core.mapping import SyncMapping
from shared.errors import NotFound
from shared.pipeline.person_to_dynamics import PersonSynced as PersonSynced  # noqa: PLC0414 - re-exported
from shared.pipeline.person_to_dynamics import sync_person_to_dynamics as sync_person_to_dynamics  # noqa: PLC0414
from shared.pipeline.status import durability_status as durability_status  # noqa: PLC0414 - re-exported
from shared.pipeline.status import status as status  # noqa: PLC0414 - re-exported
from shared.store.base import StateStore
from shared.store.model import PauseState

log = logging.getLogger(__name__)


def set_pause(store: StateStore, mapping: SyncMapping, entity: str | None, *, paused: bool) -> PauseState:
    """``entity`` None: the whole sync."""
    if entity is not None and entity not in mapping.by_entity:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    return store.set_pause(entity, paused)
