"""One process's side of the shared Marketo budget: the generic :class:`~shared.budget.lanes.LaneLimiter`.

The reconcile's client draws from the ``live`` lane, the job runner's from the ``backfill`` lane
(``shared/services.py``, ``marketo_lanes``); both share one connection and token. See :mod:`shared.budget.lanes`
for how threads wait, lease chunks of calls and fall back to the fixed local share while the store is down.
"""

from __future__ import annotations

from shared.budget.lanes import LaneLimiter, holder_name
from shared.budget.rules import DAILY_RESERVE

__all__ = ["DAILY_RESERVE", "LaneLimiter", "holder_name"]
