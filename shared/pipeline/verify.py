"""The verification sweep (a timer, every 5 minutes): finds Marketo-side edits of one-way records, which no
Marketo feed reports, and has them restored from Dynamics.

Companies, opportunities, sales persons and custom objects sync Dynamics -> Marketo only, and Dynamics always
wins; but Marketo's activity feeds report changes of persons only, so an edit made to one of these objects in
Marketo would stand until the record's next change in Dynamics. Each run walks the links of the one-way entities
from a checkpoint in the store (:class:`shared.core.verification.Walk`), a page of up to 300 at a time: one Marketo
query per page (``companies.json``, ``opportunities.json``, ``salespersons.json`` or
``customobjects/{name}.json``, ``filterType`` the dedupe field holding the Dynamics id, ``fields`` the mapped
ones), compared with each link's baseline (what Dynamics last sent). A record that differs, or whose object is
gone from Marketo, gets a ``verify_sweep`` notification; its reconcile reads the object again and sends the
Dynamics values (:mod:`shared.pipeline.reconcile.restore`).

It is a backfill, and Marketo's calls are the scarce resource: a run makes at most ``max_calls`` queries
(``VERIFY_SWEEP_MAX_CALLS``, 3 by default), and stops early once it has come full circle. A full cycle of ``P``
pages takes ``ceil(P / B)`` runs (:func:`shared.core.verification.cycle_minutes`), so an edit is found within that
many schedule periods and restored by the reconcile moments later (docs/durability.md states the bound).

Per page: mark, enqueue, then checkpoint, as the feeds do: the changes queue marks each record pending before it
sends, so a lost message is re-sent by the pending sweep, and a crash before the checkpoint re-reads the page.
A run that meets a Marketo outage stops where the last whole page left it (``feeds.while_available``); a page
whose query names a field Marketo no longer has leaves the rest of that entity to the next cycle (the reconcile
marks the field broken when it next writes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shared.core.mapping import EntityMapping, SyncMapping
from shared.core.values import read_marketo_record
from shared.core.verification import PAGE_SIZE, Walk, drifted
from shared.errors import Conflict, MissingField
from shared.marketo.client import MarketoClient
from shared.pipeline import marketo_side
from shared.pipeline.feeds import record_run
from shared.pipeline.notification import Notification, Source
from shared.pipeline.ports import ChangesQueue
from shared.store.base import StateStore
from shared.store.model import Checkpoint, Link

log = logging.getLogger(__name__)

CHECKPOINT = "verify:one-way"
TIMER = "verify_sweep"


@dataclass
class VerifyReport:
    calls: int = 0  # Marketo queries made
    checked: int = 0  # linked records compared
    queued: int = 0  # records Marketo holds otherwise than sent, queued to be restored
    missing: int = 0  # of those, records whose object is gone from Marketo
    cycles: int = 0  # full cycles this run completed
    skipped: list[str] = field(default_factory=list)  # entities left for the next cycle (a field gone)
    walk: Walk = field(default_factory=Walk)


def one_way_entities(mapping: SyncMapping) -> list[str]:
    return [e.entity for e in mapping.entities if not e.rule.two_way and e.live_fields]


def verify_one_way(
    store: StateStore,
    marketo: MarketoClient,
    mapping: SyncMapping,
    queue: ChangesQueue,
    *,
    max_calls: int,
    now: Callable[[], datetime],
    page_size: int = PAGE_SIZE,
) -> VerifyReport:
    """One run of the sweep: at most ``max_calls`` Marketo queries (0: none, the sweep is off), from the stored
    checkpoint on, until the budget is spent or the walk has come full circle (back where it started, or past it)."""
    report = VerifyReport()
    entities = one_way_entities(mapping) if max_calls > 0 else []
    checkpoint = store.get_checkpoint(CHECKPOINT)
    walk = Walk.parse(checkpoint.value if checkpoint else None).resumed(entities, now())
    start, stamp = walk, now().isoformat()
    while entities and not (report.cycles and walk.position(entities) >= start.position(entities)):
        entity = mapping.get(str(walk.entity))
        links = store.links_page(entity.entity, after=walk.after, limit=page_size)
        live = [k for k in links if k.baseline and not k.deleted_in_dynamics]
        if live and report.calls >= max_calls:
            break  # the budget is spent: the next run starts at this page (pages without links cost nothing)
        try:
            _verify_page(marketo, entity, live, queue, report, stamp=stamp)
            after = walk.advanced(entities, [store.link_cursor(k) for k in links], page_size, now())
        except MissingField as exc:
            log.warning(
                "verification sweep: %s's Marketo object has no field '%s'; the rest of it waits for the next cycle",
                entity.entity,
                exc.field,
            )
            report.skipped.append(entity.entity)
            after = walk.next_entity(entities, now())
        report.cycles += after.cycles - walk.cycles
        walk = after
        try:
            checkpoint = store.save_checkpoint(
                Checkpoint(CHECKPOINT, walk.dump(), now(), checkpoint.etag if checkpoint else None)
            )
        except Conflict:
            log.warning("verification sweep: another run advanced the checkpoint; stopping this one")
            break
    report.walk = walk
    record_run(store, TIMER, now())
    return report


def _verify_page(
    marketo: MarketoClient,
    entity: EntityMapping,
    links: list[Link],
    queue: ChangesQueue,
    report: VerifyReport,
    *,
    stamp: str,
) -> None:
    """One Marketo query for the page's links (none when no link needs it); queue those that differ, each
    under a message id of its own per run (a restore that failed is sent again by the next cycle)."""
    if not links:
        return
    report.calls += 1
    found = marketo_side.read_objects(
        marketo, entity, [k.dynamics_id for k in links], marketo_side.object_fields(entity)
    )
    notes = []
    for link in links:
        record = found.get(link.dynamics_id)
        held = read_marketo_record(entity.live_fields, record) if record is not None else None
        report.checked += 1
        if not drifted(entity, link.baseline, held):
            continue
        report.missing += int(record is None)
        notes.append(
            Notification(
                source=Source.VERIFY_SWEEP,
                entity=entity.entity,
                dynamics_id=link.dynamics_id,
                dedupe_key=f"verify@{stamp}",
            )
        )
    report.queued += len(queue.send(notes))
