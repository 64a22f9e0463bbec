"""What Marketo holds of the one-way records the verification sweep found edited there.

A one-way record is usually decided without reading Marketo (nothing reports its edits, and Dynamics always
wins). A record the sweep (:mod:`shared.pipeline.verify`) found differing from its baseline comes with the
``verify_sweep`` source: its Marketo object is read again here (one call per 300 of them), so the decision
compares the values both sides hold now. The restore then sends the Dynamics values though nothing changed in
Dynamics, and sends nothing when Marketo was put right meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from shared.core.mapping import EntityMapping
from shared.core.values import Canonical, ConversionError, read_marketo_record
from shared.errors import Conflict, MissingField, SkipRecord
from shared.pipeline import marketo_side
from shared.pipeline.notification import Source
from shared.pipeline.reconcile.batch import Batch, Target
from shared.pipeline.reconcile.broken import marketo_field_gone
from shared.store.model import Link

Held = dict[str, Canonical | ConversionError]


def marketo_held(
    batch: Batch, mapping: EntityMapping, targets: list[Target], links: Mapping[str, Link]
) -> tuple[EntityMapping, dict[str, Held]]:
    """For the linked targets the sweep sent: their Marketo values by Dynamics id, canonical (``{}``: the object
    is gone from Marketo). Returned with the mapping they were read with (fewer fields if one vanished)."""
    wanted = [
        t.dynamics_id
        for t in targets
        if t.dynamics_id in links and any(n.source is Source.VERIFY_SWEEP for n in t.notes)
    ]
    if not wanted:
        return mapping, {}
    for _ in range(len(mapping.fields) + 2):
        try:
            found = marketo_side.read_objects(batch.marketo, mapping, wanted, marketo_side.object_fields(mapping))
            break
        except MissingField as exc:
            if mapping.entity not in marketo_field_gone(batch, [mapping], exc.field):
                raise
            mapping = batch.mapping.get(mapping.entity)
    else:
        raise SkipRecord(f"{mapping.entity}: Marketo fields keep disappearing while reading", code="1006")
    return mapping, {
        rid: read_marketo_record(mapping.live_fields, found[rid]) if rid in found else {} for rid in wanted
    }


def keep_deleted(batch: Batch, target: Target, link: Link) -> None:
    """A one-way record deleted in Dynamics keeps its Marketo object; its link is flagged so the verification sweep
    no longer reads that object back (an edit of it in Marketo has nothing left to be restored from)."""
    if link.deleted_in_dynamics or not target.deleted:
        return
    try:
        batch.store.save_link(replace(link, deleted_in_dynamics=True, synced_at=batch.clock()))
    except Conflict:
        batch.requeue(target, "the link changed while the delete was being recorded")
