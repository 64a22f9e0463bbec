"""A circuit per service (Marketo, Dataverse): an outage is waited out, not retried message by message.

Closed: batches call the service. A batch that fails as a whole because the service is down, throttled past the
clients' retries or out of quota **opens** the circuit (or keeps it open): ``next_probe_at`` moves out with a
delay that doubles per consecutive failure up to a cap, or to the quota's reset. While open and before
``next_probe_at``, batches do not call the service; once it passes, the next batch (the sweep's probe) may try,
and its success **closes** the circuit. These are the pure transitions; :mod:`shared.pipeline.circuit` keeps the
state in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class ProbeSchedule:
    """How long an open circuit waits before the next probe: ``base`` doubled per failure, at most ``cap``."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=15)

    def delay(self, failures: int) -> timedelta:
        factor = 1 << min(max(failures - 1, 0), 30)
        return min(self.cap, self.base * factor)


@dataclass(frozen=True, slots=True)
class Circuit:
    service: str
    open_since: datetime | None = None
    failures: int = 0  # consecutive failed batches
    next_probe_at: datetime | None = None
    reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    def blocks(self, now: datetime) -> bool:
        """Batches must not call the service now (it is open and the probe time has not come)."""
        return self.is_open and self.next_probe_at is not None and now < self.next_probe_at

    def probe_due(self, now: datetime) -> bool:
        return self.is_open and not self.blocks(now)

    def as_doc(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "open_since": self.open_since.isoformat() if self.open_since else None,
            "failures": self.failures,
            "next_probe_at": self.next_probe_at.isoformat() if self.next_probe_at else None,
            "reason": self.reason,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Circuit:
        def when(key: str) -> datetime | None:
            value = doc.get(key)
            return datetime.fromisoformat(value) if value else None

        return cls(
            str(doc["service"]),
            when("open_since"),
            int(doc.get("failures", 0)),
            when("next_probe_at"),
            doc.get("reason"),
        )


def failed(
    circuit: Circuit,
    now: datetime,
    reason: str,
    schedule: ProbeSchedule,
    *,
    resets_at: datetime | None = None,
    retry_after: float | None = None,
) -> Circuit:
    """The circuit after a batch failed because of its service: open, probe later. A batch that started before
    another one opened it changes nothing (the probe already waits)."""
    if circuit.blocks(now):
        return circuit
    failures = circuit.failures + 1
    probe = now + schedule.delay(failures)
    if resets_at is not None and resets_at > now:
        probe = resets_at  # the quota: nothing succeeds before it resets
    if retry_after is not None:
        probe = max(probe, now + timedelta(seconds=retry_after))
    return Circuit(circuit.service, circuit.open_since or now, failures, probe, reason)


def succeeded(circuit: Circuit) -> Circuit:
    """The circuit after a batch reached its service."""
    return Circuit(circuit.service)
