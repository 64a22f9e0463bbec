"""Marketo's limits as one budget for the whole tenant: the rules (pure) and the port instances draw it through.

Marketo allows 100 calls per sliding 20 s, 10 concurrent calls and a daily quota per *instance*, whatever number
of Function App instances and timers call it. Every process draws **grants** from one ledger (kept in the state
store, ``shared/store/budget.py``): a grant is ``n`` calls a holder may start at once. While it is open it counts
``n`` against both the concurrency limit and the 20 s window; once closed (its calls finished) it counts each call
it used until ``window`` after that call finished, so the server can never see more than the ceiling in any of
its own windows (the same rule as :class:`~shared.marketo.limiter.RateLimiter`, across processes). A grant whose
holder crashed expires: its calls had to start within ``use_seconds`` and end within ``call_timeout``.

Two lanes: ``live`` (the reconcile, webhooks, feeds) may use the whole budget; ``backfill`` (Quick Sync, resyncs,
bulk imports, sweeps) only what leaves ``live_reserve`` of the window and of the concurrency to live calls, and
stops drawing when only ``daily_reserve`` of the day's quota is left. A live call therefore never waits behind a
backfill's calls: they cannot hold the live share.

:func:`decide` is the whole rule, values in and values out; :class:`Ledger` is the port a store implements by
applying it on the ledger document's ETag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from shared.marketo.faults import MARKETO_TIMEZONE


class Lane(StrEnum):
    LIVE = "live"
    BACKFILL = "backfill"


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    calls_per_window: int = 100
    window: float = 20.0
    headroom: float = 0.1
    max_concurrency: int = 10
    live_reserve: float = 0.3  # share of the window and of the concurrency backfills may not take
    daily_quota: int = 50_000
    daily_reserve: float = 0.1  # share of the daily quota left to live traffic
    use_seconds: float = 5.0  # a grant's calls must start within this
    call_timeout: float = 40.0  # ... and end within this after their start (the HTTP timeouts are 30 s)
    skew: float = 0.25  # clock difference allowed between instances (added to the window)

    @property
    def ceiling(self) -> int:
        return max(1, math.floor(self.calls_per_window * (1.0 - self.headroom) + 1e-9))

    @property
    def backfill_ceiling(self) -> int:
        return max(1, math.floor(self.ceiling * (1.0 - self.live_reserve) + 1e-9))

    @property
    def backfill_concurrency(self) -> int:
        return max(1, math.floor(self.max_concurrency * (1.0 - self.live_reserve) + 1e-9))

    @property
    def backfill_daily(self) -> int:
        return math.floor(self.daily_quota * (1.0 - self.daily_reserve) + 1e-9)

    @property
    def hold(self) -> float:
        """How long an open grant can have calls running: past it, its holder is taken to have crashed."""
        return self.use_seconds + self.call_timeout


@dataclass(frozen=True, slots=True)
class Grant:
    """``n`` calls of ``lane`` granted to ``holder`` at ``at``; once closed, the calls used finished at ``finishes``."""

    id: str
    holder: str
    lane: Lane
    n: int
    at: float
    finishes: tuple[float, ...] | None = None  # None: open

    @property
    def open(self) -> bool:
        return self.finishes is None

    def counted(self, now: float, limits: BudgetLimits) -> int:
        """Calls of this grant the window holds at ``now``."""
        if self.finishes is None:
            return self.n
        return sum(1 for end in self.finishes if end + limits.window + limits.skew > now)

    def as_doc(self) -> dict[str, Any]:
        doc = {"id": self.id, "h": self.holder, "l": self.lane.value, "n": self.n, "at": self.at}
        return doc | {"f": None if self.finishes is None else list(self.finishes)}

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> Grant:
        ends = doc.get("f")
        finishes = None if ends is None else tuple(float(end) for end in ends)
        return Grant(str(doc["id"]), str(doc["h"]), Lane(doc["l"]), int(doc["n"]), float(doc["at"]), finishes)


@dataclass(frozen=True, slots=True)
class Day:
    """The subscription day's calls: ``counted`` through this budget; ``reported`` by Marketo's Usage endpoint
    (every integration's calls) when ``counted`` was ``counted_then``."""

    date: str
    counted: int = 0
    reported: int | None = None
    counted_then: int = 0
    reported_at: float | None = None

    @property
    def estimate(self) -> int:
        if self.reported is None:
            return self.counted
        return max(self.counted, self.reported + self.counted - self.counted_then)


@dataclass(frozen=True, slots=True)
class LedgerState:
    grants: tuple[Grant, ...] = ()
    day: Day | None = None

    def as_doc(self) -> dict[str, Any]:
        day = self.day
        return {
            "grants": [g.as_doc() for g in self.grants],
            "day": None
            if day is None
            else {
                "date": day.date,
                "counted": day.counted,
                "reported": day.reported,
                "counted_then": day.counted_then,
                "reported_at": day.reported_at,
            },
        }

    @staticmethod
    def from_doc(doc: dict[str, Any] | None) -> LedgerState:
        if not doc:
            return LedgerState()
        raw = doc.get("day")
        day = None
        if raw:
            counted, then = int(raw.get("counted") or 0), int(raw.get("counted_then") or 0)
            day = Day(str(raw["date"]), counted, raw.get("reported"), then, raw.get("reported_at"))
        return LedgerState(tuple(Grant.from_doc(g) for g in doc.get("grants") or ()), day)


@dataclass(frozen=True, slots=True)
class Close:
    """A holder's grant whose calls all finished, at ``finishes`` (one time per call it used)."""

    grant_id: str
    finishes: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Request:
    holder: str
    lane: Lane
    want: int  # calls wanted now (0: only close)
    grant_id: str = ""
    closes: tuple[Close, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    granted: int  # calls granted (0: none now)
    retry_after: float = 0.0  # when none: how long until room may free up
    reason: str = ""  # when none: "window", "concurrency" or "daily-reserve"


@dataclass(frozen=True, slots=True)
class Usage:
    """What the ledger holds now, for the status view and the benchmark."""

    in_window: int
    in_flight: int  # calls granted and not closed (an upper bound of the calls running)
    by_lane: dict[str, int] = field(default_factory=dict)
    daily_estimate: int = 0


def marketo_day(now: float) -> str:
    """The subscription day ``now`` falls in (Marketo's day starts at 00:00 US Central)."""
    return datetime.fromtimestamp(now, UTC).astimezone(MARKETO_TIMEZONE).date().isoformat()


def _counted_until(grant: Grant, limits: BudgetLimits) -> float:
    """When a grant stops counting against the window."""
    if grant.open:
        return grant.at + limits.hold + limits.window + limits.skew
    return max(grant.finishes or (grant.at,)) + limits.window + limits.skew


def settle(state: LedgerState, now: float, limits: BudgetLimits) -> LedgerState:
    """Forget what no longer counts; an open grant past its hold becomes closed (its holder crashed); a grant
    stamped in the future (a clock that jumped back, a store copied from elsewhere) is dropped."""
    kept: list[Grant] = []
    for stored in state.grants:
        if stored.at > now + limits.window + limits.hold:
            continue
        crashed = stored.open and now >= stored.at + limits.hold
        grant = replace(stored, finishes=(stored.at + limits.hold,) * stored.n) if crashed else stored
        if _counted_until(grant, limits) > now:
            kept.append(grant)
    day = state.day
    today = marketo_day(now)
    if day is None or day.date != today:
        day = Day(today)
    return LedgerState(tuple(kept), day)


def usage(state: LedgerState, now: float, limits: BudgetLimits) -> Usage:
    state = settle(state, now, limits)
    by_lane = dict.fromkeys((lane.value for lane in Lane), 0)
    for grant in state.grants:
        by_lane[grant.lane.value] += grant.counted(now, limits)
    in_flight = sum(g.n for g in state.grants if g.open)
    return Usage(sum(by_lane.values()), in_flight, by_lane, state.day.estimate if state.day else 0)


def _closed(state: LedgerState, request: Request) -> LedgerState:
    closes = {c.grant_id: c for c in request.closes}
    grants: list[Grant] = []
    returned = 0
    for grant in state.grants:
        close = closes.get(grant.id)
        if close is not None and grant.open and grant.holder == request.holder:
            finishes = close.finishes[: grant.n]
            returned += grant.n - len(finishes)
            grants.append(replace(grant, finishes=finishes))
        else:
            grants.append(grant)
    day = state.day
    if day is not None and returned:
        day = replace(day, counted=max(0, day.counted - returned))
    return LedgerState(tuple(grants), day)


def _room(state: LedgerState, lane: Lane, now: float, limits: BudgetLimits) -> tuple[int, str]:
    """Calls ``lane`` may be granted now, and what limits it (the first limit that is full)."""
    in_window = dict.fromkeys(Lane, 0)
    in_flight = dict.fromkeys(Lane, 0)
    for grant in state.grants:
        in_window[grant.lane] += grant.counted(now, limits)
        if grant.open:
            in_flight[grant.lane] += grant.n
    window_room = limits.ceiling - sum(in_window.values())
    flight_room = limits.max_concurrency - sum(in_flight.values())
    if lane is Lane.BACKFILL:
        window_room = min(window_room, limits.backfill_ceiling - in_window[Lane.BACKFILL])
        flight_room = min(flight_room, limits.backfill_concurrency - in_flight[Lane.BACKFILL])
        day = state.day
        if day is not None and limits.backfill_daily - day.estimate <= 0:
            return 0, "daily-reserve"
        if day is not None:
            window_room = min(window_room, limits.backfill_daily - day.estimate)
    if window_room <= 0:
        return 0, "window"
    if flight_room <= 0:
        return 0, "concurrency"
    return min(window_room, flight_room), ""


def _retry_after(state: LedgerState, now: float, limits: BudgetLimits, reason: str) -> float:
    if reason == "daily-reserve":
        return 60.0
    if reason == "concurrency":
        return 0.1  # an open grant closes when its calls end: look again soon
    # The window frees up only as closed grants leave it (an open one leaves a window after it closes).
    ends = [_counted_until(g, limits) for g in state.grants if not g.open]
    return max(0.01, min(ends) - now) if ends else 0.25


def decide(state: LedgerState, request: Request, now: float, limits: BudgetLimits) -> tuple[LedgerState, Answer]:
    """Apply a holder's closes, then grant up to ``want`` calls of its lane if the budget has room."""
    state = settle(_closed(settle(state, now, limits), request), now, limits)
    if request.want <= 0:
        return state, Answer(0)
    room, reason = _room(state, request.lane, now, limits)
    if room <= 0:
        return state, Answer(0, _retry_after(state, now, limits, reason), reason)
    granted = min(room, request.want)
    grant = Grant(request.grant_id, request.holder, request.lane, granted, now)
    assert state.day is not None
    day = replace(state.day, counted=state.day.counted + granted)
    return LedgerState((*state.grants, grant), day), Answer(granted)


def reported(state: LedgerState, total: int, date: str | None, now: float, limits: BudgetLimits) -> LedgerState:
    """Marketo's Usage endpoint said ``total`` calls are booked to day ``date``: the estimate follows it."""
    state = settle(state, now, limits)
    assert state.day is not None
    if date is not None and date != state.day.date:
        return state
    return replace(state, day=replace(state.day, reported=total, counted_then=state.day.counted, reported_at=now))


def usage_is_stale(state: LedgerState, now: float, max_age: float) -> bool:
    day = state.day
    return day is None or day.reported_at is None or not 0 <= now - day.reported_at < max_age


def next_day_start(now: float) -> float:
    local = datetime.fromtimestamp(now, UTC).astimezone(MARKETO_TIMEZONE)
    tomorrow = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return tomorrow.timestamp()


class Ledger(Protocol):
    """The shared budget's port: one round trip applies a holder's closes and grants what :func:`decide` allows."""

    limits: BudgetLimits

    def draw(self, request: Request, now: float) -> Answer: ...

    def report_usage(self, total: int, date: str | None, now: float) -> None: ...

    def usage_stale(self, now: float, max_age: float) -> bool: ...

    def usage(self, now: float) -> Usage: ...
