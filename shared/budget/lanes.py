"""One process's side of a shared budget (:mod:`shared.budget.rules`): a limiter per lane.

Calls wait here, in the process, for a grant from the :class:`~shared.budget.rules.Ledger`; one waiting thread at
a time (the taker) asks the ledger for as many calls at once as threads are waiting (at most ``max_chunk``) and,
when ``max_lease`` allows, for more calls to start as those end (the ledger grants them only while the window has
room to spare). A busy process therefore pays one store round trip per lease, not per call: a thread whose call
ended hands its place to the next waiting thread without asking the store. A lease is closed (its unused calls
given back, its calls' finish times and response times told) once its calls are done and no thread of the lane
waits for it (after ``linger`` seconds without a call, for a process that calls one at a time), or when its
``use_seconds`` are over. Such a close rides on the next store request the process makes anyway when one is due
(the taker draws, or waits for calls to leave a full window, or another lease still runs): a saturated process
writes the row about once per lease, not twice. A grant's calls start within its ``use_seconds`` (the ledger counts
on it): one that arrives later than that (a store round trip that slow) is given back unused and drawn again.

A 429 told through :meth:`LaneLimiter.throttled` pauses the whole budget (every instance, both lanes) until its
``Retry-After`` passes. If the ledger cannot be reached (the state store is down) the call goes through
``fallback``, an in-process limiter sized to a fixed share of the budget, for ``STORE_RETRY_SECONDS`` before the
store is asked again (an outage costs one failed store request per lane every few seconds, not one per call). A
backfill that meets the daily reserve gets :class:`~shared.errors.QuotaExhausted` (code ``daily-reserve``): its
job stops and tries again on a later run, while live calls go on.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from shared.budget.rules import DAILY_RESERVE, Close, Lane, Ledger, Request, Usage, next_day_start
from shared.errors import QuotaExhausted

log = logging.getLogger(__name__)
STORE_RETRY_SECONDS = 5.0  # after the store failed, calls keep to the local share this long before asking again


class Limiter(Protocol):
    def slot(self) -> AbstractContextManager[None]: ...


class UsageReading(Protocol):
    """A service's own count of the day's calls (every integration's), as its usage endpoint reports it."""

    @property
    def total(self) -> int: ...

    @property
    def date(self) -> str | None: ...


@dataclass(slots=True)
class _Lease:
    id: str
    n: int
    c: int
    use_by: float
    started: int = 0
    running: int = 0
    finishes: list[float] = field(default_factory=list)
    seconds: float = 0.0
    idle_since: float | None = None  # monotonic: since when no call of it runs (while it lingers)

    def usable(self, now: float) -> bool:
        return self.started < self.n and self.running < self.c and now < self.use_by


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
        max_lease: int = 0,
        linger: float = 0.0,
        holder: str | None = None,
        usage_reader: Callable[[], UsageReading] | None = None,
        usage_max_age: float = 300.0,
        rand: Callable[[], float] = random.random,
        idle_clock: Callable[[], float] = time.monotonic,
        service: str = "Marketo",
    ) -> None:
        self.ledger = ledger
        self.lane = lane
        self.fallback = fallback
        self.holder = holder or holder_name(lane)
        self.max_chunk = max(1, max_chunk)
        self.max_lease = max(self.max_chunk, max_lease)
        self.linger = max(0.0, linger)
        self.usage_reader = usage_reader
        self.usage_max_age = usage_max_age
        self.service = service
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._idle_clock = idle_clock  # real time: what ``linger`` (a timer) is measured in
        self._cond = threading.Condition()
        self._leases: list[_Lease] = []
        self._waiting = 0
        self._taking = False
        self._drawing = False
        self._window_wait = False  # the taker sleeps until calls leave the window: closes ride on its next draw
        self._linger_wake = threading.Condition()  # the closer's own: it waits on real time, apart from ``_cond``
        self._linger_due: float | None = None
        self._closer: threading.Thread | None = None
        self._usage_checked: float | None = None
        self._down_until = 0.0  # the store failed: the local share until then, without asking it again
        self.draws = 0  # ledger requests (for the benchmark and tests)
        self.grants = 0  # of which granted calls
        self.fallbacks = 0
        self.pauses = 0

    def __repr__(self) -> str:
        return f"LaneLimiter({self.service}, lane={self.lane.value}, holder={self.holder!r})"

    def usage(self) -> Usage:
        return self.ledger.usage(self._clock())

    @contextmanager
    def slot(self) -> Iterator[None]:
        lease = self._acquire()
        if lease is None:
            with self.fallback.slot():
                yield
            return
        started = self._clock()
        try:
            yield
        finally:
            self._release(lease, started)

    def throttled(self, retry_after: float | None) -> None:
        """The service answered 429 (a call of this lane): nobody draws from the budget until ``retry_after``
        passed. Unknown (no ``Retry-After``): one second."""
        now = self._clock()
        self.pauses += 1
        pause = Request(self.holder, self.lane, 0, pause_until=now + max(retry_after or 1.0, 0.0))
        try:
            self.ledger.draw(pause, now)
        except Exception as exc:  # the caller's own backoff still honours the Retry-After
            log.warning("%s budget: pause not recorded (%s)", self.service, type(exc).__name__)

    # --- waiting for a grant ---------------------------------------------------------------------------------

    def _acquire(self) -> _Lease | None:
        with self._cond:
            self._waiting += 1
            while True:
                now = self._clock()
                for lease in self._leases:
                    if lease.usable(now):
                        lease.started += 1
                        lease.running += 1
                        lease.idle_since = None
                        self._waiting -= 1
                        return lease
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

    def _take(self) -> _Lease | None:
        while True:
            now = self._clock()
            if now < self._down_until:
                self.fallbacks += 1
                return None
            self._check_usage(now)
            now = self._clock()
            with self._cond:
                closes = self._closable(now)
                want = min(self.max_chunk, max(1, self._waiting))
                self._drawing = True
            grant_id = uuid.uuid4().hex[:12]
            try:
                self.draws += 1
                request = Request(self.holder, self.lane, want, grant_id, closes, extra=self.max_lease - want)
                answer = self.ledger.draw(request, now)
            except Exception as exc:  # the store is down: calls go by the fixed local share for a while
                self.fallbacks += 1
                self._down_until = now + STORE_RETRY_SECONDS
                name, lane = type(exc).__name__, self.lane.value
                log.warning(
                    "%s budget unreachable (%s): %s calls use the local share for %g s",
                    self.service, name, lane, STORE_RETRY_SECONDS,
                )  # fmt: skip
                return None
            finally:
                with self._cond:
                    self._drawing = False
            if answer.granted:
                lease = _Lease(
                    grant_id,
                    answer.granted,
                    answer.concurrency or answer.granted,
                    now + self.ledger.limits.use_seconds,
                    started=1,
                    running=1,
                )
                late = self._clock() >= lease.use_by
                if late:  # the round trip outlasted the grant's use_seconds: the ledger expects no call to start on it
                    lease.started = lease.running = 0
                    log.warning("%s budget: a grant came too late to use; given back", self.service)
                with self._cond:
                    self._leases.append(lease)  # a late one is closed (all its calls given back) by the next draw
                    self._cond.notify_all()
                if late:
                    continue
                self.grants += 1
                return lease
            if answer.reason == DAILY_RESERVE:
                resets = datetime.fromtimestamp(next_day_start(now, self.ledger.limits.day_zone), UTC)
                raise QuotaExhausted(
                    f"only the daily reserve of {self.service}'s API quota is left: kept for live changes",
                    code=DAILY_RESERVE,
                    resets_at=resets,
                )
            delay = self._backoff(answer.retry_after, answer.reason)
            with self._cond:  # this process's own leases: wake to close (and give back) what ends unused
                use_by = min((lease.use_by for lease in self._leases), default=now + delay)
                self._window_wait = answer.reason == "window"
            try:
                self._sleep(max(0.01, min(delay, use_by - now + 0.01)))
            finally:
                with self._cond:
                    self._window_wait = False

    def _backoff(self, retry_after: float, reason: str) -> float:
        """How long the taker waits before asking again. Holders polling a full concurrency are spread over 0.5 to
        1.5 times the ledger's hint, so they do not all race for the row at once; a window or a pause frees up at
        the moment the ledger named, so that wait is kept, plus at most 20 ms."""
        if reason == "concurrency":
            return retry_after * (0.5 + self._rand())
        return retry_after + 0.02 * self._rand()

    def _closable(self, now: float) -> tuple[Close, ...]:
        """Leases whose calls all finished and that no waiting thread can use, taken off the list (the caller
        tells the ledger). Lock held."""
        done = [lease for lease in self._leases if self._done(lease, now)]
        if not done:
            return ()
        self._leases = [lease for lease in self._leases if lease not in done]
        return tuple(Close(lease.id, tuple(lease.finishes), lease.seconds) for lease in done)

    def _closable_now(self, now: float) -> tuple[Close, ...]:
        """What a call that ended (or a lingering lease's timer) closes by itself: nothing while another store
        request of this process will carry the closes anyway, that is while the taker draws or sleeps until calls
        leave a full window, or while another lease of this process still has calls to run or start (the closes go
        with that one's close or the next draw). Lock held."""
        if self._drawing or self._window_wait:
            return ()
        if any(not self._done(lease, now) for lease in self._leases if lease.running or lease.usable(now)):
            return ()
        return self._closable(now)

    def _done(self, lease: _Lease, now: float) -> bool:
        """All its calls finished, and no call of this process will start on it. Lock held."""
        if lease.running or lease not in self._leases:
            return False
        if lease.started == lease.n or now >= lease.use_by:
            return True
        if self._waiting - (1 if self._taking else 0) > 0:
            return False
        return lease.idle_since is not None and self._idle_clock() - lease.idle_since >= self.linger

    def _release(self, lease: _Lease, started: float) -> None:
        with self._cond:
            now = self._clock()
            lease.running -= 1
            lease.finishes.append(now)
            lease.seconds += max(0.0, now - started)
            if lease.running == 0:
                lease.idle_since = self._idle_clock()
            closes = self._closable_now(now)
            lingering = self.linger > 0 and lease.running == 0 and lease in self._leases
            self._cond.notify_all()
        self._close(closes, now)
        if lingering:  # kept for this process's next call; closed if none comes within ``linger``
            self._linger_until(self._idle_clock() + self.linger * 1.05 + 0.01)

    def _linger_until(self, due: float) -> None:
        """The closer closes what is idle at ``due`` (idle clock), unless a later call moved it on. One thread per
        limiter, started at its first lingering call, not a timer thread per call: a process calling one at a
        time made a thread per call, and each new thread that allocates may take a malloc arena of its own."""
        with self._linger_wake:
            self._linger_due = due  # the latest call's: every lease idle by then has lingered long enough
            if self._closer is None:
                self._closer = threading.Thread(target=self._closer_loop, name=f"{self.holder}-linger", daemon=True)
                self._closer.start()
            self._linger_wake.notify()

    def _closer_loop(self) -> None:
        """Until nothing is due: a process that stopped calling keeps no thread for it."""
        while True:
            with self._linger_wake:
                while (left := self._linger_left()) > 0:
                    self._linger_wake.wait(left)
                if left < 0:
                    self._closer = None
                    return
                self._linger_due = None
            try:
                self._close_idle()
            except Exception:  # never ends the closer: the grants expire by themselves (conservatively late)
                log.exception("%s budget: lingering leases not closed", self.service)

    def _linger_left(self) -> float:
        """Seconds until the closer is due; 0 when due now; -1 when nothing is due. ``_linger_wake`` held."""
        if self._linger_due is None:
            return -1.0
        return max(0.0, self._linger_due - self._idle_clock())

    def _close_idle(self) -> None:
        with self._cond:
            now = self._clock()
            closes = self._closable_now(now)
        self._close(closes, now)

    def _close(self, closes: tuple[Close, ...], now: float) -> None:
        if not closes:
            return
        try:
            self.draws += 1
            self.ledger.draw(Request(self.holder, self.lane, 0, closes=closes), now)
        except Exception as exc:  # the grants expire by themselves (conservatively late)
            log.warning("%s budget: grants not closed (%s)", self.service, type(exc).__name__)

    # --- the daily quota -------------------------------------------------------------------------------------

    def _check_usage(self, now: float) -> None:
        """A backfill lane keeps the day's count in step with the service's usage endpoint (every integration's
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
            log.warning("%s daily usage not reconciled (%s)", self.service, type(exc).__name__)
