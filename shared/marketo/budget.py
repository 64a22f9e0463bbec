"""Marketo's limits as one budget for the whole tenant: the figures of :mod:`shared.budget.rules`.

Marketo allows 100 calls per sliding 20 s, 10 concurrent calls and a daily quota per *instance*, whatever number
of Function App instances and timers call it. Every process draws grants from one ledger in the state store
(``shared/store/budget.py``, row ``marketo``) through its lanes (:mod:`shared.marketo.lanes`): ``live`` (the
reconcile, webhooks, feeds) may use the whole budget; ``backfill`` (Quick Sync, resyncs, bulk imports, sweeps)
only what leaves ``live_reserve`` of the window and of the concurrency to live calls, and stops drawing when only
``daily_reserve`` of the day's quota (Marketo's day starts at 00:00 US Central) is left.

The rules themselves (grants, closes, the window, lanes, the daily quota) are the generic ones every shared
budget uses; this module only names them for Marketo and sets Marketo's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from shared.budget import rules
from shared.budget.rules import (
    Answer,
    Close,
    Day,
    Grant,
    Lane,
    Ledger,
    LedgerState,
    Limits,
    Request,
    Spent,
    Usage,
    decide,
    reported,
    settle,
    usage,
    usage_is_stale,
)
from shared.marketo.faults import MARKETO_TIMEZONE

LEDGER = "marketo"  # the ledger row's name in the state store


@dataclass(frozen=True, slots=True)
class BudgetLimits(Limits):
    """Marketo's figures: 100 calls per 20 s (10 % left to other integrations), 10 at once, 50,000 a day."""

    calls_per_window: int = 100
    window: float = 20.0
    headroom: float = 0.1
    max_concurrency: int = 10
    daily_quota: int = 50_000
    day_zone: tzinfo = MARKETO_TIMEZONE
    use_seconds: float = 5.0
    call_timeout: float = 40.0  # the HTTP timeouts are 30 s
    resolution: float = 0.01  # at most 100 calls in a window: a finish each costs the row little


def marketo_day(now: float) -> str:
    """The subscription day ``now`` falls in (Marketo's day starts at 00:00 US Central)."""
    return rules.quota_day(now, MARKETO_TIMEZONE)


def next_day_start(now: float) -> float:
    return rules.next_day_start(now, MARKETO_TIMEZONE)


__all__ = [
    "LEDGER",
    "Answer",
    "BudgetLimits",
    "Close",
    "Day",
    "Grant",
    "Lane",
    "Ledger",
    "LedgerState",
    "Request",
    "Spent",
    "Usage",
    "decide",
    "marketo_day",
    "next_day_start",
    "reported",
    "settle",
    "usage",
    "usage_is_stale",
]
