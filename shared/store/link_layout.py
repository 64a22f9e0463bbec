"""Moving links out of the legacy layout (one partition per entity, the id as key) into the sharded, ordered one
(:mod:`shared.store.link_keys`), a page at a time, by the Quick Sync timer.

Contract: a page of legacy rows is read from the start of the entity's legacy partition (moved rows are deleted,
so what is left is always the rest: no checkpoint to lose), and moved by :meth:`Links.move`: each new row
inserted, then the legacy row deleted on the ETag it was read with. Every step is safe to repeat and to race
with the live sync, which moves a legacy link itself when it saves one: whichever insert comes second fails and
leaves the new row as it is, and a legacy row that outlives its new row (a crash between the two writes) is never
read again and is deleted the next time it is met. A run is bounded by time; a killed run loses nothing (the rows
it moved are moved, the rest wait). Reads keep finding links in either layout until an entity has no legacy row
left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shared.store.base import LINKS, StateStore
from shared.store.links import Move

log = logging.getLogger(__name__)

PAGE = 500
"""Legacy rows read and moved at a time (one range request, then batch transactions of 100 per partition)."""


@dataclass
class LayoutReport:
    moved: int = 0  # legacy rows whose new row this run inserted
    outlived: int = 0  # legacy rows another instance (or an earlier run cut short) had moved already: deleted
    left: list[str] = field(default_factory=list)  # entities with legacy rows still to move (the time ran out)


def move_legacy_links(
    store: StateStore, entities: Iterable[str], *, out_of_time: Callable[[], bool], page: int = PAGE
) -> LayoutReport:
    """Move every legacy link of ``entities`` (or as many as the time allows) to its address."""
    report = LayoutReport()
    for entity in dict.fromkeys(entities):
        if not store.links.legacy_left(entity):
            continue
        while True:
            if out_of_time():
                report.left.append(entity)
                break
            rows = list(store.rows.query_range(LINKS, entity, limit=page))
            if not rows:
                store.links.legacy_left(entity, fresh=True)
                log.info("links of %s: all in the current layout", entity)
                break
            moved, outlived = store.links.move(entity, [Move(row.rk, row.doc, row.etag) for row in rows])
            report.moved += len(moved)
            report.outlived += len(outlived)
    if report.moved or report.outlived:
        log.info(
            "links moved to the current layout: %d (%d had been moved already)%s",
            report.moved,
            report.outlived,
            f"; still to move: {', '.join(report.left)}" if report.left else "",
        )
    return report
