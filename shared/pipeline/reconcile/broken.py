"""Columns and fields that disappear: an admin deletes a mapped Dynamics column or Marketo field.

Dataverse then refuses any read that selects the column (:class:`~shared.errors.MissingColumn`), Marketo any
read that asks for the field (:class:`~shared.errors.MissingField`). Rather than fail every batch, the field is
marked broken in the stored mapping, reported once as a sync error, and the read is repeated without it, so the
other fields keep syncing. A vanished sync filter column turns the entity's filter off. When another batch (or
instance) marked it first, this one only catches up with the stored mapping.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.core.entities import Side
from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldState
from shared.dataverse.records import Record
from shared.errors import MissingColumn, SkipRecord
from shared.pipeline.dataverse_side import dataverse_select
from shared.pipeline.reconcile.batch import Batch
from shared.pipeline.reconcile.sync_errors import column_missing
from shared.store.mapping import CHANGED, UNCHANGED, entity_document

log = logging.getLogger(__name__)


def read_dynamics(batch: Batch, mapping: EntityMapping, ids: list[str]) -> tuple[EntityMapping, dict[str, Record]]:
    """Read the records; returns them with the mapping they were read with (fewer fields if one vanished)."""
    for _ in range(len(mapping.fields) + 2):
        try:
            return mapping, batch.dataverse.read_by_ids(mapping.entity, ids, dataverse_select(mapping))
        except MissingColumn as exc:
            if exc.table != mapping.entity or not mark_broken(batch, mapping, exc.column, side=Side.DYNAMICS):
                raise
            mapping = batch.mapping.get(mapping.entity)
    raise SkipRecord(f"{mapping.entity}: columns keep disappearing while reading", code="column-missing")


def marketo_field_gone(batch: Batch, mappings: Sequence[EntityMapping], name: str) -> set[str]:
    """Every mapping that maps the vanished Marketo field marks it broken; returns the entities that did."""
    marked = set()
    for mapping in mappings:
        field = mapping.by_marketo.get(name.casefold())
        if field is not None and mark_broken(batch, mapping, field.dynamics, side=Side.MARKETO):
            marked.add(mapping.entity)
    return marked


def mark_broken(batch: Batch, mapping: EntityMapping, column: str, *, side: Side) -> bool:
    """Mark a mapped column broken in the stored mapping (or turn off a vanished sync filter column).

    False when the column is not one the mapping reads (the caller's error stands); True when the stored mapping
    no longer reads it, whether this batch marked it (and reported it) or someone else did first.
    """
    field = mapping.by_column.get(column)
    if field is None and column != SYNC_FILTER_COLUMN:
        return False
    marked = False

    def change(document: dict[str, Any]) -> bool:
        nonlocal marked
        marked = False  # re-run on the freshest document after a conflict
        entity = entity_document(document, mapping.entity)
        if entity is None:
            return UNCHANGED
        if field is None:
            if not entity.get("sync_filter"):
                return UNCHANGED
            entity["sync_filter"] = False
        else:
            named = [f for f in entity.get("fields", []) if f.get("dynamics") == column]
            if all(f.get("state") == FieldState.BROKEN.value for f in named):
                return UNCHANGED  # already broken, or no longer mapped
            for f in named:
                f["state"] = FieldState.BROKEN.value
        marked = True
        return CHANGED

    batch.mapping = batch.mappings.update(change)
    if batch.on_mapping_change is not None:
        batch.on_mapping_change()
    if not marked:  # another batch (or instance) found and reported it first: this one has caught up
        return mapping.entity in batch.mapping.by_entity
    error = column_missing(mapping.entity, column, field, side, at=batch.clock())
    log.error("%s: %s", mapping.entity, error.message)
    batch.fail(error)
    return True
