"""One process's side of the shared Marketo budget: a :class:`~shared.marketo.limiter.Limiter` per lane.

Calls wait here, in the process, for a grant from the :class:`~shared.marketo.budget.Ledger`; one waiting thread
at a time (the taker) asks the ledger, for as many calls as threads are waiting (at most ``max_chunk``), so a busy
process pays one store round trip per chunk of calls, not per call. A grant is closed (its unused calls given back,
its finish time told) by the call that finishes it when no taker is about to, or by the taker's next request.

If the ledger cannot be reached (the state store is down) the call goes through ``fallback``, the in-process
:class:`~shared.marketo.limiter.RateLimiter` sized to a fixed share of the budget, as before the budget was shared.
A backfill that meets the daily reserve gets :class:`~shared.errors.QuotaExhausted` (code ``daily-reserve``): its
job stops and tries again on a later run, while live calls go on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.errors import QuotaExhausted
from shared.marketo.budget import Close, Lane, Ledger, Request, Usage, next_day_start
from shared.marketo.limiter import Limiter
from shared.marketo.usage import DailyUsage

log = logging.getLogger(__name__)
DAILY_RESERVE = "daily-reserve"


@dataclass(slots=True)
class _Held:
    id: str
    n: int
    use_by: float
    started: int = 0
    finishes: list[float] = field(default_factory=list)

    def done(self, now: float) -> bool:
        return len(self.finishes) == self.started and (self.started == self.n or now >= self.use_by)


def holder_name(lane: Lane) -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{lane.value}-{uuid.uuid4().hex[:6]}"


class LaneLimiter:
    """``slot()`` holds one call's place in ``lane`` of the shared budget."""

    def __init__(
        self,
        ledger: Ledger,
        lane: Lane,
        *,
        fallback: Limiter,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_chunk: int = 5,
        holder: str | None = None,
        usage_reader: Callable[[], DailyUsage] | None = None,
        usage_max_age: float = 300.0,
    ) -> None:
        self.ledger = ledger
        self.lane = lane
        self.fallback = fallback
        self.holder = holder or holder_name(lane)
        self.max_chunk = max(1, max_chunk)
        self.usage_reader = usage_reader
        self.usage_max_age = usage_max_age
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._held: list[_Held] = []
        self._waiting = 0
        self._taking = False
        self._usage_checked: float | None = None
        self.draws = 0  # ledger requests (for the benchmark and tests)
        self.grants = 0  # of which granted calls
        self.fallbacks = 0

    def __repr__(self) -> str:
        return f"LaneLimiter(lane={self.lane.value}, holder={self.holder!r})"

    def usage(self) -> Usage:
        return self.ledger.usage(self._clock())

    @contextmanager
    def slot(self) -> Iterator[None]:
        held = self._acquire()
        if held is None:
            with self.fallback.slot():
                yield
            return
        try:
            yield
        finally:
            self._release(held)

    # --- waiting for a grant ---------------------------------------------------------------------------------

    def _acquire(self) -> _Held | None:
        with self._cond:
            self._waiting += 1
            while True:
                now = self._clock()
                for held in self._held:
                    if held.started < held.n and now < held.use_by:
                        held.started += 1
                        self._waiting -= 1
                        return held
                if not self._taking:
                    self._taking = True
                    break
                self._cond.wait()
        try:
            return self._take()
        finally:
            with self._cond:
                self._taking = False
                self._waiting -= 1
                self._cond.notify_all()

    def _take(self) -> _Held | None:
        while True:
            now = self._clock()
            self._check_usage(now)
            with self._cond:
                closes = self._closable(now)
                want = min(self.max_chunk, max(1, self._waiting))
            grant_id = uuid.uuid4().hex[:12]
            try:
                self.draws += 1
                answer = self.ledger.draw(Request(self.holder, self.lane, want, grant_id, closes), now)
            except Exception as exc:  # the store is down: this call goes by the fixed local share
                self.fallbacks += 1
                name, lane = type(exc).__name__, self.lane.value
                log.warning("Marketo budget unreachable (%s): a %s call uses the local share", name, lane)
                return None
            if answer.granted:
                self.grants += 1
                held = _Held(grant_id, answer.granted, now + self.ledger.limits.use_seconds, started=1)
                with self._cond:
                    self._held.append(held)
                    self._cond.notify_all()
                return held
            if answer.reason == DAILY_RESERVE:
                resets = datetime.fromtimestamp(next_day_start(now), UTC)
                raise QuotaExhausted(
                    "only the daily reserve of Marketo's API quota is left: kept for live changes",
                    code=DAILY_RESERVE,
                    resets_at=resets,
                )
            self._sleep(answer.retry_after)

    def _closable(self, now: float) -> tuple[Close, ...]:
        """Grants whose calls all finished, taken off the list (the caller tells the ledger). Lock held."""
        done = [h for h in self._held if h.done(now)]
        self._held = [h for h in self._held if not h.done(now)]
        return tuple(Close(h.id, tuple(h.finishes)) for h in done)

    def _release(self, held: _Held) -> None:
        with self._cond:
            now = self._clock()
            held.finishes.append(now)
            closes = () if self._taking else self._closable(now)
            self._cond.notify_all()
        if closes:
            try:
                self.draws += 1
                self.ledger.draw(Request(self.holder, self.lane, 0, closes=closes), now)
            except Exception as exc:  # the grants expire by themselves (conservatively late)
                log.warning("Marketo budget: grants not closed (%s)", type(exc).__name__)

    # --- the daily quota -------------------------------------------------------------------------------------

    def _check_usage(self, now: float) -> None:
        """A backfill lane keeps the day's count in step with Marketo's Usage endpoint (every integration's
        calls), at most once per ``usage_max_age`` across every instance."""
        if self.usage_reader is None or self.lane is not Lane.BACKFILL:
            return
        checked = self._usage_checked
        if checked is not None and 0 <= now - checked < self.usage_max_age:
            return
        self._usage_checked = now
        try:
            if self.ledger.usage_stale(now, self.usage_max_age):
                reading = self.usage_reader()
                self.ledger.report_usage(reading.total, reading.date, now)
        except Exception as exc:  # the count through the budget still holds; the next check tries again
            log.warning("Marketo daily usage not reconciled (%s)", type(exc).__name__)
