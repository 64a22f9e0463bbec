"""Marketo Engage REST client: identity, the shared rate limiter, fault mapping and the operations the sync uses."""

from __future__ import annotations

from shared.marketo.auth import MarketoAuth
from shared.marketo.client import MarketoClient
from shared.marketo.limiter import RateLimiter
from shared.marketo.models import Activity, ActivityPage, ImportStatus, Reason, RecordOutcome, RecordStatus, SkipCode

__all__ = [
    "Activity",
    "ActivityPage",
    "ImportStatus",
    "MarketoAuth",
    "MarketoClient",
    "RateLimiter",
    "Reason",
    "RecordOutcome",
    "RecordStatus",
    "SkipCode",
]
