"""Faults on demand: ``sim.faults.inject("606", times=2)`` or ``inject("502", path="/rest/v1/leads.json")``.

Codes: ``"601" "602" "604" "606" "607" "608" "611" "615" "713"`` come back as Marketo error envelopes (HTTP 200);
``"500" "502" "503" "504"`` as gateway errors; ``"timeout"`` raises ``httpx.ReadTimeout`` in-process or, over
loopback, holds the answer past the client's timeout (the call still takes effect, as a real timeout may).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

ENVELOPE_CODES = frozenset({"601", "602", "604", "606", "607", "608", "611", "615", "713", "1016"})
HTTP_CODES = frozenset({"500", "502", "503", "504"})
TIMEOUT = "timeout"


@dataclass
class _Fault:
    code: str
    remaining: int
    path: str | None


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.fired: dict[str, int] = {}

    def inject(self, code: str, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next ``times`` matching calls (any path, or only ``path``) with ``code``."""
        if code not in ENVELOPE_CODES | HTTP_CODES | {TIMEOUT}:
            raise ValueError(f"unknown fault {code!r}")
        with self._lock:
            self._faults.append(_Fault(code, times, path))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def take(self, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.path is None or fault.path == path):
                    fault.remaining -= 1
                    self.fired[fault.code] = self.fired.get(fault.code, 0) + 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault.code
        return None
