"""A shared budget's ledger in the state store: one document row per external limit, changed on its ETag.

Every instance and timer draws from the same row (``synccontrol / budget / <name>``: ``marketo``, ``dataverse``):
a request reads it, applies :func:`shared.budget.rules.decide` and writes it back on the ETag it read; an
instance that lost the race reads again. A busy process writes about once per lease of calls
(``shared/budget/lanes.py``), so contention stays low; a request that changes nothing (no room, nothing to
close) is one read and no write.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.budget.rules import (
    Answer,
    LedgerState,
    Limits,
    Request,
    Usage,
    decide,
    reported,
    usage,
    usage_is_stale,
)
from shared.errors import Conflict
from shared.store.base import CONTROL, Rows, StateStore

PARTITION = "budget"
_ROUNDS = 200


class StoreLedger:
    def __init__(self, store: StateStore | Rows, limits: Limits, *, name: str = "marketo") -> None:
        self.rows: Rows = store.rows if isinstance(store, StateStore) else store
        self.limits = limits
        self.name = name
        self.requests = 0  # store requests made (reads and writes), for the benchmark
        self.conflicts = 0  # writes that lost an ETag race (and were decided again)

    def __repr__(self) -> str:
        return f"StoreLedger({self.name!r}, ceiling={self.limits.ceiling}, concurrency={self.limits.max_concurrency})"

    def _read(self) -> tuple[LedgerState, str | None]:
        self.requests += 1
        row = self.rows.get(CONTROL, PARTITION, self.name)
        return (LedgerState.from_doc(row.doc), row.etag) if row else (LedgerState(), None)

    def _change(self, rule: Callable[[LedgerState], tuple[LedgerState, Answer]], *, write_if_unchanged: bool) -> Answer:
        for _ in range(_ROUNDS):
            state, etag = self._read()
            new, answer = rule(state)
            if new == state or (not write_if_unchanged and not answer.granted and _same_claims(new, state)):
                return answer
            try:
                self.requests += 1
                if etag is None:
                    self.rows.insert(CONTROL, PARTITION, self.name, new.as_doc())
                else:
                    self.rows.replace(CONTROL, PARTITION, self.name, new.as_doc(), etag)
            except Conflict:
                self.conflicts += 1
                continue
            return answer
        raise Conflict(f"the {self.name} budget kept changing under us")

    def draw(self, request: Request, now: float) -> Answer:
        return self._change(lambda state: decide(state, request, now, self.limits), write_if_unchanged=False)

    def report_usage(self, total: int, date: str | None, now: float) -> None:
        self._change(lambda state: (reported(state, total, date, now, self.limits), Answer(0)), write_if_unchanged=True)

    def usage_stale(self, now: float, max_age: float) -> bool:
        return usage_is_stale(self._read()[0], now, max_age, self.limits)

    def usage(self, now: float) -> Usage:
        return usage(self._read()[0], now, self.limits)


def _same_claims(new: LedgerState, old: LedgerState) -> bool:
    """Nothing a holder asked for changed (no grant, close or pause): what :func:`decide` only tidied away (calls
    that left the window) need not be written; the next writer settles it."""
    return new.grants == old.grants and new.paused_until <= old.paused_until
