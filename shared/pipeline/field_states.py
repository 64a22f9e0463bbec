"""A mapped field's state in the stored mapping document, moved by whichever part of the sync learns it changed.

Quick Sync moves a new field ``awaiting_quick_sync`` -> ``quick_sync_running`` -> ``active``; the reconcile and
Quick Sync mark a field ``broken`` when its Dynamics column or Marketo field has vanished, and turn the entity's
sync filter off when the filter column has. Every move is a change through :class:`LiveMapping`: applied to the
freshest document on its ETag (re-applied when another instance saved first) and this process's cached mapping is
refreshed at once. A move that finds the field already there, or gone from the mapping, changes nothing, so only
the one that marked a field broken reports it (:func:`shared.pipeline.sync_errors.column_missing`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.entities import Side
from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldState, SyncMapping
from shared.pipeline.ports import LiveMapping
from shared.pipeline.sync_errors import column_missing
from shared.store.mapping import CHANGED, UNCHANGED, entity_document
from shared.store.model import SyncErrorRecord

log = logging.getLogger(__name__)


def _move(document: dict[str, Any], entity: str, column: str, state: FieldState, allowed: set[str]) -> bool:
    """Move the field mapped from ``column`` to ``state`` if its state is one of ``allowed``; the change."""
    for f in (entity_document(document, entity) or {}).get("fields", []):
        current = f.get("state", FieldState.ACTIVE.value)
        if f.get("dynamics") == column and current in allowed and current != state.value:
            f["state"] = state.value
            return CHANGED
    return UNCHANGED


def set_field_state(
    mapping: LiveMapping, entity: str, column: str, state: FieldState, *, only_from: Iterable[FieldState]
) -> SyncMapping:
    """Move a field to ``state`` if it is still mapped and in one of ``only_from``; the mapping now stored."""
    allowed = {s.value for s in only_from}
    return mapping.update(lambda document: _move(document, entity, column, state, allowed))


@dataclass(frozen=True, slots=True)
class MarkedBroken:
    """The mapping now stored, and the error to record when this call marked the field (None: nothing to mark,
    another batch, run or instance marked it first and reported it then, or the field left the mapping)."""

    mapping: SyncMapping
    error: SyncErrorRecord | None


def mark_broken(
    mapping: LiveMapping, entity: EntityMapping, column: str, *, side: Side, at: datetime
) -> MarkedBroken | None:
    """Mark a mapped column broken (or turn off a vanished sync filter column) in the stored mapping.

    None when the column is not one ``entity`` reads: the caller's error stands. ``side`` says which system lost
    it (a Dynamics column, or the Marketo field it maps to), for the error's wording.
    """
    field = entity.by_column.get(column)
    if field is None and column != SYNC_FILTER_COLUMN:
        return None
    marked = False
    every_other = {s.value for s in FieldState} - {FieldState.BROKEN.value}

    def change(document: dict[str, Any]) -> bool:
        nonlocal marked
        if field is not None:
            marked = _move(document, entity.entity, column, FieldState.BROKEN, every_other)
        else:
            filtered = entity_document(document, entity.entity) or {}
            marked = bool(filtered.get("sync_filter"))
            if marked:
                filtered["sync_filter"] = False
        return marked  # re-run on the freshest document after a conflict: only the last run counts

    stored = mapping.update(change)
    if not marked:
        return MarkedBroken(stored, None)
    error = column_missing(entity.entity, column, field, side, at=at)
    log.error("%s: %s", entity.entity, error.message)
    return MarkedBroken(stored, error)
