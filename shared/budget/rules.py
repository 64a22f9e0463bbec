"""An external service's limits as one budget for the whole tenant: the rules (pure) and the port to the ledger.

A service counts its limits per tenant (Marketo: per instance; Dataverse: per user), whatever number of Function
App instances and timers call it. Every process draws **grants** (leases) from one ledger, kept in the state
store (``shared/store/budget.py``). A grant is ``n`` calls of which at most ``c`` run at once: while open it
counts ``n`` against the window and ``c`` against the concurrency limit; once closed its unused calls are given
back and each call it used counts until ``window`` after that call *finished* (the service stamps a call
somewhere between its start and its end), so the service can never see more than the ceiling in any of its own
windows, across any number of processes. Closed calls are kept as counts per ``bucket`` (a 200th of the window) of
their finish (rounded up, so never early): the ledger row stays small at Dataverse's 6,000 requests per 5 minutes.

A grant whose holder crashed expires: its calls had to start within ``use_seconds`` and end within
``call_timeout``, so after ``hold`` it counts as finished then.

Two lanes: ``live`` may use the whole budget; ``backfill`` only what leaves ``live_reserve`` of the window, of
the concurrency and of the execution time to live calls, and stops drawing when only ``daily_reserve`` of the
day's quota is left (services that have one). A live call therefore never waits behind a backfill's calls.

Optional limits: a daily quota (``daily_quota`` > 0, the day starting at 00:00 in ``day_zone``) and a combined
execution time per window (``execution_seconds`` > 0, from the calls' response times). A 429's ``Retry-After``
told to the ledger (``Request.pause_until``) stops every grant, both lanes, until it passes.

:func:`decide` is the whole rule; :class:`Ledger` is the port a store implements by applying it on the ledger
document's ETag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Protocol

DAILY_RESERVE = "daily-reserve"


class Lane(StrEnum):
    LIVE = "live"
    BACKFILL = "backfill"


@dataclass(frozen=True, slots=True)
class Limits:
    calls_per_window: int = 100
    window: float = 20.0
    headroom: float = 0.0
    max_concurrency: int = 10
    live_reserve: float = 0.3  # share of the window, concurrency and execution time backfills may not take
    daily_quota: int = 0  # 0: the service has no daily quota
    daily_reserve: float = 0.1  # share of the daily quota left to live traffic
    day_zone: tzinfo = UTC  # where the quota's day starts at midnight
    execution_seconds: float = 0.0  # combined execution time the calls of one window may take (0: no such limit)
    use_seconds: float = 5.0  # a grant's calls must start within this
    call_timeout: float = 40.0  # ... and end within this after their start (the HTTP timeouts are 30 s)
    skew: float = 0.25  # clock difference allowed between instances (added to the window)
    resolution: float = 0.0  # closed calls are kept per this many seconds of their finish (0: window / 200)
    max_pause: float = 300.0  # the longest Retry-After the ledger honours for everyone

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
    def execution_ceiling(self) -> float:
        return self.execution_seconds * (1.0 - self.headroom)

    @property
    def backfill_execution(self) -> float:
        return self.execution_ceiling * (1.0 - self.live_reserve)

    @property
    def bucket(self) -> float:
        return self.resolution if self.resolution > 0 else self.window / 200.0

    @property
    def future(self) -> float:
        """How far past ``now`` a stamp may be before it is taken for a clock that jumped (and dropped): well past
        anything a holder that was slow between reading its clock and writing the row could stamp."""
        return 10.0 * (self.window + self.hold)

    @property
    def hold(self) -> float:
        """How long an open grant can have calls running: past it, its holder is taken to have crashed."""
        return self.use_seconds + self.call_timeout


@dataclass(frozen=True, slots=True)
class Grant:
    """An open grant: ``n`` calls of ``lane`` for ``holder`` from ``at``, at most ``c`` of them at once."""

    id: str
    holder: str
    lane: Lane
    n: int
    at: float
    c: int = 0  # 0: n

    @property
    def concurrency(self) -> int:
        return self.c or self.n

    def as_doc(self) -> dict[str, Any]:
        return {"id": self.id, "h": self.holder, "l": self.lane.value, "n": self.n, "at": self.at, "c": self.c}

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> Grant:
        n = int(doc["n"])
        return Grant(str(doc["id"]), str(doc["h"]), Lane(doc["l"]), n, float(doc["at"]), int(doc.get("c") or 0))


@dataclass(frozen=True, slots=True)
class Spent:
    """``calls`` of ``lane`` that finished by ``end`` (and took ``seconds`` together): they count until a window
    after ``end``."""

    lane: Lane
    end: float
    calls: int
    seconds: float = 0.0

    def counts(self, now: float, limits: Limits) -> bool:
        return self.end + limits.window + limits.skew > now

    def as_doc(self) -> list[Any]:
        return [self.lane.value, self.end, self.calls, round(self.seconds, 3)]

    @staticmethod
    def from_doc(doc: list[Any]) -> Spent:
        return Spent(Lane(doc[0]), float(doc[1]), int(doc[2]), float(doc[3]) if len(doc) > 3 else 0.0)


@dataclass(frozen=True, slots=True)
class Day:
    """The quota day's calls: ``counted`` through this budget; ``reported`` by the service's usage endpoint
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

    def as_doc(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "counted": self.counted,
            "reported": self.reported,
            "counted_then": self.counted_then,
            "reported_at": self.reported_at,
        }

    @staticmethod
    def from_doc(raw: dict[str, Any]) -> Day:
        counted, then = int(raw.get("counted") or 0), int(raw.get("counted_then") or 0)
        return Day(str(raw["date"]), counted, raw.get("reported"), then, raw.get("reported_at"))


@dataclass(frozen=True, slots=True)
class LedgerState:
    grants: tuple[Grant, ...] = ()
    spent: tuple[Spent, ...] = ()
    day: Day | None = None
    paused_until: float = 0.0

    def as_doc(self) -> dict[str, Any]:
        return {
            "grants": [g.as_doc() for g in self.grants],
            "spent": [s.as_doc() for s in self.spent],
            "day": None if self.day is None else self.day.as_doc(),
            "paused_until": self.paused_until,
        }

    @staticmethod
    def from_doc(doc: dict[str, Any] | None) -> LedgerState:
        if not doc:
            return LedgerState()
        grants: list[Grant] = []
        spent = [Spent.from_doc(s) for s in doc.get("spent") or ()]
        for raw in doc.get("grants") or ():
            ends = raw.get("f")  # a closed grant as the first ledgers kept it: one finish per call
            if ends is None:
                grants.append(Grant.from_doc(raw))
            else:
                spent += [Spent(Lane(raw["l"]), float(end), 1) for end in ends]
        day = Day.from_doc(doc["day"]) if doc.get("day") else None
        return LedgerState(tuple(grants), tuple(spent), day, float(doc.get("paused_until") or 0.0))


@dataclass(frozen=True, slots=True)
class Close:
    """A holder's grant whose calls all finished, at ``finishes`` (one time per call it used), having run
    ``seconds`` together (their response times)."""

    grant_id: str
    finishes: tuple[float, ...]
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Request:
    holder: str
    lane: Lane
    want: int  # calls wanted now, at once (0: only close, or only pause)
    grant_id: str = ""
    closes: tuple[Close, ...] = ()
    extra: int = 0  # calls to take beyond ``want`` (not at once) while the window has room to spare
    pause_until: float = 0.0  # the service answered 429: no one draws until then


@dataclass(frozen=True, slots=True)
class Answer:
    granted: int  # calls granted (0: none now)
    retry_after: float = 0.0  # when none: how long until room may free up
    reason: str = ""  # when none: "window", "concurrency", "execution-time", "throttled" or "daily-reserve"
    concurrency: int = 0  # of the granted calls, how many may run at once (0: all)


@dataclass(frozen=True, slots=True)
class Usage:
    """What the ledger holds now, for the status view and the benchmark."""

    in_window: int
    in_flight: int  # concurrency granted and not closed (an upper bound of the calls running)
    by_lane: dict[str, int] = field(default_factory=dict)
    daily_estimate: int = 0
    execution_seconds: float = 0.0
    paused_for: float = 0.0


def quota_day(now: float, zone: tzinfo) -> str:
    """The quota day ``now`` falls in."""
    return datetime.fromtimestamp(now, UTC).astimezone(zone).date().isoformat()


def next_day_start(now: float, zone: tzinfo) -> float:
    local = datetime.fromtimestamp(now, UTC).astimezone(zone)
    tomorrow = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return tomorrow.timestamp()


def _round_up(stamp: float, resolution: float) -> float:
    """The end of ``stamp``'s bucket: never before ``stamp`` (floating point is not trusted to round up)."""
    if resolution <= 0:
        return stamp
    end = math.ceil(stamp / resolution) * resolution
    return end if end >= stamp else end + resolution


def _merged(spent: list[Spent], now: float, limits: Limits) -> tuple[Spent, ...]:
    """What still counts, one entry per lane and rounded finish; a finish stamped in the future (a clock that
    jumped back, a store copied from elsewhere) is dropped."""
    buckets: dict[tuple[Lane, float], Spent] = {}
    for item in spent:
        if not item.counts(now, limits) or item.end > now + limits.future:
            continue
        key = (item.lane, _round_up(item.end, limits.bucket))
        seen = buckets.get(key)
        calls, seconds = item.calls + (seen.calls if seen else 0), item.seconds + (seen.seconds if seen else 0.0)
        buckets[key] = Spent(key[0], key[1], calls, seconds)
    return tuple(sorted(buckets.values(), key=lambda s: (s.end, s.lane.value)))


def settle(state: LedgerState, now: float, limits: Limits) -> LedgerState:
    """Forget what no longer counts; an open grant past its hold is closed as if every call ran to its end (its
    holder crashed); a grant stamped in the future is dropped."""
    grants: list[Grant] = []
    spent = list(state.spent)
    for grant in state.grants:
        if grant.at > now + limits.future:
            continue
        if now >= grant.at + limits.hold:
            spent.append(Spent(grant.lane, grant.at + limits.hold, grant.n))
        else:
            grants.append(grant)
    day = state.day
    if limits.daily_quota > 0:
        today = quota_day(now, limits.day_zone)
        if day is None or day.date != today:
            day = Day(today)
    paused = state.paused_until if state.paused_until > now else 0.0
    return LedgerState(tuple(grants), _merged(spent, now, limits), day, paused)


def _closed(state: LedgerState, request: Request) -> LedgerState:
    closes = {c.grant_id: c for c in request.closes}
    grants: list[Grant] = []
    spent = list(state.spent)
    returned = 0
    for grant in state.grants:
        close = closes.get(grant.id)
        if close is None or grant.holder != request.holder:
            grants.append(grant)
            continue
        finishes = close.finishes[: grant.n]
        returned += grant.n - len(finishes)
        share = close.seconds / len(finishes) if finishes else 0.0
        spent += [Spent(grant.lane, end, 1, share) for end in finishes]
    day = state.day
    if day is not None and returned:
        day = replace(day, counted=max(0, day.counted - returned))
    return replace(state, grants=tuple(grants), spent=tuple(spent), day=day)


@dataclass(frozen=True, slots=True)
class _Held:
    in_window: dict[Lane, int]
    in_flight: dict[Lane, int]
    seconds: dict[Lane, float]


def _held(state: LedgerState, now: float, limits: Limits) -> _Held:
    in_window, in_flight, seconds = dict.fromkeys(Lane, 0), dict.fromkeys(Lane, 0), dict.fromkeys(Lane, 0.0)
    for grant in state.grants:
        in_window[grant.lane] += grant.n
        in_flight[grant.lane] += grant.concurrency
    for item in state.spent:
        if item.counts(now, limits):
            in_window[item.lane] += item.calls
            seconds[item.lane] += item.seconds
    return _Held(in_window, in_flight, seconds)


def _room(state: LedgerState, lane: Lane, now: float, limits: Limits) -> tuple[int, int, str]:
    """Calls ``lane`` may be granted now (window, concurrency), and what limits it (the first limit that is full)."""
    held = _held(state, now, limits)
    window_room = limits.ceiling - sum(held.in_window.values())
    flight_room = limits.max_concurrency - sum(held.in_flight.values())
    time_left = limits.execution_ceiling - sum(held.seconds.values())
    if lane is Lane.BACKFILL:
        window_room = min(window_room, limits.backfill_ceiling - held.in_window[Lane.BACKFILL])
        flight_room = min(flight_room, limits.backfill_concurrency - held.in_flight[Lane.BACKFILL])
        time_left = min(time_left, limits.backfill_execution - held.seconds[Lane.BACKFILL])
        day = state.day
        if day is not None and limits.daily_quota > 0:
            if limits.backfill_daily - day.estimate <= 0:
                return 0, 0, DAILY_RESERVE
            window_room = min(window_room, limits.backfill_daily - day.estimate)
    if window_room <= 0:
        return 0, 0, "window"
    if limits.execution_seconds > 0 and time_left <= 0:
        return 0, 0, "execution-time"
    if flight_room <= 0:
        return 0, 0, "concurrency"
    return window_room, flight_room, ""


def _retry_after(state: LedgerState, now: float, limits: Limits, reason: str, want: int) -> float:
    if reason == DAILY_RESERVE:
        return 60.0
    if reason == "concurrency":
        return 0.1  # an open grant closes when its calls end: look again soon
    # The window frees up as closed calls leave it: look again once as many calls left as the holder wants at
    # once (so holders do not all wake for every single one), or once an open grant must have been closed (its
    # holder gives back the calls it did not start), whichever comes first.
    wake = math.inf
    left = 0
    for item in state.spent:  # oldest first
        left += item.calls
        if left >= want:
            wake = item.end + limits.window + limits.skew
            break
    for grant in state.grants:
        if grant.at + limits.use_seconds > now:
            wake = min(wake, grant.at + limits.use_seconds)
    return 0.25 if wake == math.inf else max(0.01, wake - now)


def decide(state: LedgerState, request: Request, now: float, limits: Limits) -> tuple[LedgerState, Answer]:
    """Apply a holder's closes and pause, then grant up to ``want`` calls at once (and up to ``extra`` more, half
    of what the window has to spare) of its lane if the budget has room."""
    state = settle(_closed(settle(state, now, limits), request), now, limits)
    if request.pause_until > max(now, state.paused_until):
        state = replace(state, paused_until=min(request.pause_until, now + limits.max_pause))
    if request.want <= 0:
        return state, Answer(0)
    if state.paused_until > now:
        return state, Answer(0, state.paused_until - now, "throttled")
    window_room, flight_room, reason = _room(state, request.lane, now, limits)
    if reason:
        return state, Answer(0, _retry_after(state, now, limits, reason, request.want), reason)
    at_once = min(window_room, flight_room, request.want)
    more = max(0, min(request.extra, (window_room - at_once) // 2))
    granted = at_once + more
    grant = Grant(request.grant_id, request.holder, request.lane, granted, now, at_once if more else 0)
    day = state.day
    if day is not None:
        day = replace(day, counted=day.counted + granted)
    return replace(state, grants=(*state.grants, grant), day=day), Answer(granted, concurrency=at_once)


def reported(state: LedgerState, total: int, date: str | None, now: float, limits: Limits) -> LedgerState:
    """The service's usage endpoint said ``total`` calls are booked to day ``date``: the estimate follows it."""
    state = settle(state, now, limits)
    if state.day is None or (date is not None and date != state.day.date):
        return state
    return replace(state, day=replace(state.day, reported=total, counted_then=state.day.counted, reported_at=now))


USAGE_MAX_AGE_CEILING = 3600.0  # the longest a usage reading is trusted, however far the day is from the reserve


def usage_max_age(day: Day, max_age: float, limits: Limits | None) -> float:
    """How long the last usage reading holds: at least ``max_age``; longer while the day's estimate is so far below
    the backfill's share of the quota that every integration spending at the full rate limit (which they share)
    could not reach it sooner, up to :data:`USAGE_MAX_AGE_CEILING`. A backfill far from the quota's reserve thus
    costs one usage call an hour, not one per ``max_age``."""
    if limits is None or limits.daily_quota <= 0:
        return max_age
    headroom = limits.backfill_daily - day.estimate
    fastest = limits.calls_per_window / limits.window  # calls per second, every API user of the tenant together
    return max(max_age, min(USAGE_MAX_AGE_CEILING, headroom / fastest if fastest > 0 else 0.0))


def usage_is_stale(state: LedgerState, now: float, max_age: float, limits: Limits | None = None) -> bool:
    day = state.day
    if day is None or day.reported_at is None:
        return True
    return not 0 <= now - day.reported_at < usage_max_age(day, max_age, limits)


def usage(state: LedgerState, now: float, limits: Limits) -> Usage:
    state = settle(state, now, limits)
    held = _held(state, now, limits)
    by_lane = {lane.value: held.in_window[lane] for lane in Lane}
    return Usage(
        in_window=sum(by_lane.values()),
        in_flight=sum(held.in_flight.values()),
        by_lane=by_lane,
        daily_estimate=state.day.estimate if state.day else 0,
        execution_seconds=round(sum(held.seconds.values()), 3),
        paused_for=max(0.0, state.paused_until - now),
    )


class Ledger(Protocol):
    """The shared budget's port: one round trip applies a holder's closes and grants what :func:`decide` allows."""

    limits: Limits

    def draw(self, request: Request, now: float) -> Answer: ...

    def report_usage(self, total: int, date: str | None, now: float) -> None: ...

    def usage_stale(self, now: float, max_age: float) -> bool: ...

    def usage(self, now: float) -> Usage: ...
