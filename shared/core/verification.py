"""The verification sweep's rules, pure: where its walk over the one-way links stands and goes next, which
records Marketo no longer holds as the sync last sent them, and how long a full cycle takes.

Marketo reports no edit of a company, opportunity, sales person or custom object (its activity feeds cover
persons), so the sweep (:mod:`shared.pipeline.verify`) reads those objects back, a page of links at a time, and
compares them with their baselines (what Dynamics last sent). The walk goes entity by entity, in the store's order
inside each, and wraps around at the end: every linked record is visited once per cycle, and a cycle of ``P``
pages takes ``ceil(P / B)`` runs of ``B`` calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from shared.core.mapping import EntityMapping
from shared.core.values import Canonical, ConversionError

PAGE_SIZE: Final = 300
"""Links verified per Marketo call: a query takes at most 300 filter values."""

_ABSENT: Final = object()


@dataclass(frozen=True, slots=True)
class Walk:
    """Where the walk stands: in ``entity``, after the link at ``after`` (the store's cursor, ``partition/row
    key``, or a Dynamics id in a walk saved before the store had cursors; "": at its first link).

    ``cycles`` counts the full cycles done, ``cycle_started`` is when the current one began (ISO 8601)."""

    entity: str | None = None
    after: str = ""
    cycles: int = 0
    cycle_started: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Walk:
        """A stored checkpoint; anything unreadable starts a fresh walk (it only costs a cycle's head start)."""
        try:
            data: Any = json.loads(text or "")
        except json.JSONDecodeError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        entity, after, cycles, started = (data.get(k) for k in ("entity", "after", "cycles", "cycle_started"))
        return cls(
            entity if isinstance(entity, str) else None,
            after if isinstance(after, str) else "",
            cycles if isinstance(cycles, int) and cycles >= 0 else 0,
            started if isinstance(started, str) else None,
        )

    def dump(self) -> str:
        return json.dumps(
            {"entity": self.entity, "after": self.after, "cycles": self.cycles, "cycle_started": self.cycle_started}
        )

    def resumed(self, entities: Sequence[str], now: datetime) -> Walk:
        """The walk over today's one-way entities: an entity no longer mapped (or none yet) starts at the first."""
        if self.entity in entities:
            return self
        first = entities[0] if entities else None
        return replace(self, entity=first, after="", cycle_started=self.cycle_started or now.isoformat())

    def advanced(self, entities: Sequence[str], page: Sequence[str], page_size: int, now: datetime) -> Walk:
        """After a page of links (their cursors, in order): on in the entity while pages come full, then on
        to the next entity; past the last one, a cycle is done and the next starts at the first."""
        if len(page) >= page_size:
            return replace(self, after=page[-1])
        return self.next_entity(entities, now)

    def position(self, entities: Sequence[str]) -> tuple[int, str]:
        """Where the walk stands within a cycle, comparable: a walk that wrapped round and stands at or past the
        position it started from has come full circle."""
        return (entities.index(self.entity) if self.entity in entities else len(entities), self.after)

    def next_entity(self, entities: Sequence[str], now: datetime) -> Walk:
        index = entities.index(self.entity) + 1 if self.entity in entities else len(entities)
        if index < len(entities):
            return replace(self, entity=entities[index], after="")
        first = entities[0] if entities else None
        return Walk(first, "", self.cycles + 1, now.isoformat())


def drifted(
    mapping: EntityMapping, baseline: Mapping[str, Canonical], marketo: Mapping[str, Canonical | ConversionError] | None
) -> tuple[str, ...]:
    """The columns whose Marketo value is not the one the sync last sent (the link's baseline): Marketo-side edits
    to restore. ``marketo`` None: the object is gone from Marketo, every sent column differs. Columns the baseline
    lacks (not sent yet, or awaiting their Quick Sync) are left to the sync that fills them; a value Marketo holds
    in a form the field cannot take differs."""
    return tuple(
        f.dynamics
        for f in mapping.live_fields
        if f.dynamics in baseline
        and (
            marketo is None
            or type(held := marketo.get(f.dynamics, _ABSENT)) is not type(baseline[f.dynamics])
            or held != baseline[f.dynamics]
        )
    )


def cycle_minutes(links: Mapping[str, int], calls_per_run: int, every_minutes: float) -> float:
    """The longest a Marketo-side edit of a linked one-way record waits to be found: one full cycle, with
    ``links`` linked records per entity, ``calls_per_run`` calls a run (each verifies one page of up to
    :data:`PAGE_SIZE`) and a run every ``every_minutes``: ``ceil(P / B) * S`` with ``P`` the pages of a cycle,
    ``sum(ceil(n / 300))`` (at most ``ceil(N / 300)`` plus one per entity)."""
    pages = sum(math.ceil(n / PAGE_SIZE) for n in links.values())
    return math.ceil(pages / max(1, calls_per_run)) * every_minutes
