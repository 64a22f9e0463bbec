"""The circuits of Marketo and Dataverse, kept in the state store so every instance sees the same one.

Each is a document (``circuit:<service>``) saved on its ETag: two instances failing at once both count, neither
overwrites the other. :func:`outage_of` decides whether an exception means "the service is unavailable" and which
one; a failure of the store itself is never one (nothing could hold the work then: the batch must be redelivered).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from shared.core.circuit import Circuit, ProbeSchedule, failed, succeeded
from shared.errors import Conflict, QuotaExhausted, RetryLater
from shared.marketo.lanes import DAILY_RESERVE
from shared.store.base import StateStore
from shared.store.tables import STORE_UNAVAILABLE

MARKETO = "marketo"
DATAVERSE = "dataverse"
SERVICES = (MARKETO, DATAVERSE)
_MODULES = {"shared.marketo": MARKETO, "shared.dataverse": DATAVERSE, "shared.store": "store"}
_ROUNDS = 20


def _document(service: str) -> str:
    return f"circuit:{service}"


@dataclass(frozen=True, slots=True)
class Outage:
    """A batch failed as a whole because ``service`` is unavailable."""

    service: str
    reason: str
    resets_at: datetime | None = None
    retry_after: float | None = None


def outage_of(exc: BaseException) -> Outage | None:
    """The outage an exception means: :class:`RetryLater` (and :class:`Throttled`) past the clients' retries or
    :class:`QuotaExhausted`, raised by the Marketo or Dataverse client. None for anything else: a bug, a refusal,
    or the state store (its own failures are redelivered by Service Bus)."""
    if not isinstance(exc, RetryLater | QuotaExhausted) or exc.code in (STORE_UNAVAILABLE, DAILY_RESERVE):
        return None  # the daily reserve stops backfills only: Marketo still answers, live traffic goes on
    service = _raised_in(exc.__traceback__)
    if service not in SERVICES:
        return None
    reason = f"{type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, QuotaExhausted):
        return Outage(service, reason, resets_at=exc.resets_at)
    return Outage(service, reason, retry_after=exc.retry_after)


def _raised_in(tb: TracebackType | None) -> str | None:
    """The service whose client raised: the innermost frame of a client (or the store) module."""
    found = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        for prefix, service in _MODULES.items():
            if module == prefix or module.startswith(prefix + "."):
                found = service
        tb = tb.tb_next
    return found


@dataclass(frozen=True, slots=True)
class Circuits:
    store: StateStore
    clock: Callable[[], datetime]
    schedule: ProbeSchedule = field(default_factory=ProbeSchedule)

    def get(self, service: str) -> Circuit:
        return self._read(service)[0]

    def all(self) -> dict[str, Circuit]:
        return {s: self.get(s) for s in SERVICES}

    def _read(self, service: str) -> tuple[Circuit, str | None]:
        found = self.store.get_document(_document(service))
        if found is None:
            return Circuit(service), None
        text, etag = found
        return Circuit.from_doc(json.loads(text)), etag

    def _change(self, service: str, rule: Callable[[Circuit], Circuit]) -> Circuit:
        for _ in range(_ROUNDS):
            current, etag = self._read(service)
            new = rule(current)
            if new == current:
                return current
            try:
                self.store.save_document(_document(service), json.dumps(new.as_doc()), etag)
                return new
            except Conflict:
                continue
        raise Conflict(f"the {service} circuit kept changing under us")

    def failed(self, outage: Outage) -> Circuit:
        now = self.clock()
        return self._change(
            outage.service,
            lambda c: failed(
                c, now, outage.reason, self.schedule, resets_at=outage.resets_at, retry_after=outage.retry_after
            ),
        )

    def succeeded(self, service: str) -> Circuit:
        return self._change(service, succeeded)
