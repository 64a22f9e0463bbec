"""Saving what a reconcile agreed: the link between a Dynamics record and its Marketo record, and the baseline.

The baseline is the values both sides last agreed on; the next decision compares each side with it. A field
whose write failed keeps its old baseline value, so the next reconcile sees the change again and retries it.
Links are saved on their ETag: when another instance saved first, the record is decided again (requeued), never
overwritten with a baseline decided from stale reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from shared.core.policy import Decision
from shared.core.values import Canonical
from shared.errors import Conflict
from shared.pipeline.reconcile.batch import Batch, Target
from shared.store.model import Link


def save_link(
    batch: Batch,
    target: Target,
    link: Link | None,
    marketo_id: str | None,
    baseline: dict[str, Canonical],
    *,
    follows: Link | None = None,
) -> None:
    """Save the record's link; ``follows`` is the qualified lead's link, whose person now follows the contact."""
    now = batch.clock()
    if link is None:
        new = Link(target.entity, target.dynamics_id, marketo_id, baseline, synced_at=now)
    else:
        new = replace(
            link, marketo_id=marketo_id, baseline=baseline, deleted_in_dynamics=False, synced_at=now, intent={}
        )
    if link is not None and new == replace(link, synced_at=now):
        return  # nothing changed: spare the store a write
    try:
        batch.store.save_link(new)
    except Conflict:
        batch.requeue(target, "another instance saved this record's baseline first")
        return
    if follows is not None:
        try:
            batch.store.save_link(replace(follows, followed_by=f"{target.entity}:{target.dynamics_id}"))
        except Conflict:
            batch.requeue(target, "the lead's link changed while the person moved to the contact")


def keep_failed(decision: Decision, link: Link | None, failed: Iterable[str]) -> dict[str, Canonical]:
    """The new baseline, except fields whose write failed keep what they had (so the change is retried)."""
    baseline = dict(decision.new_baseline)
    old: Mapping[str, Canonical] = link.baseline if link is not None else {}
    for column in failed:
        if column in old:
            baseline[column] = old[column]
        else:
            baseline.pop(column, None)
    return baseline
