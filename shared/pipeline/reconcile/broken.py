"""Columns and fields that disappear: an admin deletes a mapped Dynamics column or Marketo field.

Dataverse then refuses any read that selects the column (:class:`~shared.errors.MissingColumn`), Marketo any
read that asks for the field (:class:`~shared.errors.MissingField`) and, for one-way objects, which are written
without a read, every record whose upsert carries it (a 1006 skip that names the field). Rather than fail every
batch, or every record, the field is marked broken in the stored mapping, reported once as a sync error, and the
read (or those records' upsert) is repeated without it, so the other fields keep syncing. A vanished sync filter
column turns the entity's filter off. When another batch (or instance) marked it first, this one only catches up
with the stored mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from shared.core.entities import Side
from shared.core.mapping import EntityMapping
from shared.dataverse.records import Record
from shared.errors import MissingColumn, SkipRecord
from shared.marketo.models import RecordOutcome
from shared.pipeline import field_states, marketo_side
from shared.pipeline.dataverse_side import dataverse_select
from shared.pipeline.reconcile.batch import Batch


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


def upsert_objects(
    batch: Batch, mapping: EntityMapping, bodies: list[dict[str, Any]]
) -> tuple[list[RecordOutcome], set[str]]:
    """Upsert one-way records; returns each one's outcome, and the columns left out because Marketo's object no
    longer has their field.

    Marketo skips each record that carries such a field (1006, naming it) and upserts the rest. A mapped field
    named so is marked broken, and the records it failed are sent again without it; as each skip names only the
    first field it met, this repeats for as many fields as vanished.
    """
    outcomes = marketo_side.upsert_objects(batch.marketo, mapping, bodies)
    dropped: set[str] = set()  # the vanished Marketo fields, casefolded
    for _ in range(len(mapping.fields) + 1):
        named = {o.missing_field.casefold() for o in outcomes if not o.ok and o.missing_field is not None}
        gone = {name for name in named if mapping.entity in marketo_field_gone(batch, [mapping], name)}
        if not gone:
            break
        dropped |= gone
        again = [i for i, o in enumerate(outcomes) if (o.missing_field or "").casefold() in gone]
        resent = [{k: v for k, v in bodies[i].items() if k.casefold() not in dropped} for i in again]
        for i, outcome in zip(again, marketo_side.upsert_objects(batch.marketo, mapping, resent), strict=True):
            outcomes[i] = replace(outcome, index=i)
    return outcomes, {mapping.by_marketo[name].dynamics for name in dropped}


def marketo_field_gone(batch: Batch, mappings: Sequence[EntityMapping], name: str) -> set[str]:
    """Every mapping that maps the vanished Marketo field marks it broken; returns the entities that did."""
    marked = set()
    for mapping in mappings:
        field = mapping.by_marketo.get(name.casefold())
        if field is not None and mark_broken(batch, mapping, field.dynamics, side=Side.MARKETO):
            marked.add(mapping.entity)
    return marked


def mark_broken(batch: Batch, mapping: EntityMapping, column: str, *, side: Side) -> bool:
    """Mark a mapped column broken (:func:`shared.pipeline.field_states.mark_broken`) and report it in the batch.

    False when the column is not one the mapping reads (the caller's error stands); True when the stored mapping
    no longer reads it, whether this batch marked it (and reported it) or someone else did first.
    """
    marked = field_states.mark_broken(batch.live, mapping, column, side=side, at=batch.clock())
    if marked is None:
        return False
    batch.mapping = marked.mapping
    if marked.error is None:  # another batch (or instance) found and reported it first: this one has caught up
        return mapping.entity in batch.mapping.by_entity
    batch.fail(marked.error)
    return True
