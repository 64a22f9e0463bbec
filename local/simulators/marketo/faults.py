"""Faults on demand: ``sim.faults.inject("606", times=2)`` or ``inject("502", path="/rest/v1/leads.json")``.

This is the one fault mechanism; the HTTP control surface (``control.py``, ``POST /_simulator/faults`` and
``/_simulator/outage``) is only a second door onto it.

- Marketo error codes (``"601" "602" "604" "606" "607" "608" "611" "615" "713" "1029"``, any code the simulator
  has a message for) come back as Marketo error envelopes (HTTP 200).
- HTTP statuses (any 4xx/5xx that ``http.HTTPStatus`` names) come back as the web tier's answer (an HTML page, as Marketo's gateway sends).
- ``"timeout"`` raises ``httpx.ReadTimeout`` in-process or, over loopback, holds the answer past the client's
  timeout (the call still takes effect, as a real timeout may); a fault's own ``delay`` holds it that long.

A fault answers the next ``times`` matching calls; with ``for_seconds`` it lasts that long on the simulator's
clock instead (and ``times``, if also given, still caps it). ``path`` is an exact path, or a prefix when it ends
with ``*``. A *gateway* fault (what an outage is) answers before authentication, identity calls included, as a
maintenance window does; any other fault answers only REST calls that passed the token check.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from local.simulators.marketo.envelope import ERROR_MESSAGES

ENVELOPE_CODES = frozenset(ERROR_MESSAGES)
HTTP_CODES = frozenset(str(status.value) for status in HTTPStatus if 400 <= status.value < 600)
TIMEOUT = "timeout"


@dataclass
class Fault:
    id: int
    code: str
    remaining: int | None  # None: every matching call until ``until``
    path: str | None
    until: float | None  # on the simulator's clock; None: until ``remaining`` runs out
    gateway: bool = False  # answers before the token check, identity calls too (an outage)
    delay: float | None = None  # with "timeout": real seconds to hold the answer, whatever the timeout mode

    def matches(self, path: str) -> bool:
        if self.path is None:
            return True
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path

    def live(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)

    def describe(self, now: float) -> dict[str, object]:
        return {
            "id": self.id,
            "fault": self.code,
            "times_left": self.remaining,
            "path": self.path,
            "seconds_left": None if self.until is None else round(max(self.until - now, 0.0), 3),
            "outage": self.gateway,
            "delay": self.delay,
        }


def known(code: str) -> bool:
    return code in ENVELOPE_CODES or code in HTTP_CODES or code == TIMEOUT


class FaultPlan:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self.fired: dict[str, int] = {}

    def inject(
        self,
        code: str,
        *,
        times: int | None = 1,
        path: str | None = None,
        for_seconds: float | None = None,
        gateway: bool = False,
        delay: float | None = None,
    ) -> Fault:
        """Answer the next ``times`` matching calls (any path, or only ``path``) with ``code``; with
        ``for_seconds``, every matching call for that long (``times=None``) or the first ``times`` of them."""
        if not known(code):
            raise ValueError(f"unknown fault {code!r}")
        if times is None and for_seconds is None:
            raise ValueError("a fault without times needs for_seconds")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        if for_seconds is not None and for_seconds <= 0:
            raise ValueError("for_seconds must be positive")
        with self._lock:
            until = None if for_seconds is None else self._clock() + for_seconds
            fault = Fault(next(self._ids), code, times, path, until, gateway, delay)
            self._faults.append(fault)
            return fault

    def clear(self, *, gateway: bool | None = None) -> int:
        """Drop every fault (or only gateway faults, or only the others); how many were live."""
        with self._lock:
            now = self._clock()
            kept = [f for f in self._faults if gateway is not None and f.gateway != gateway]
            live = sum(1 for f in self._faults if f not in kept and f.live(now))
            self._faults = kept
            return live

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            kept = [f for f in self._faults if f.id != fault_id]
            found = len(kept) != len(self._faults)
            self._faults = kept
            return found

    def active(self) -> list[Fault]:
        """The faults still due to fire, oldest first (expired ones are forgotten here)."""
        with self._lock:
            now = self._clock()
            self._faults = [f for f in self._faults if f.live(now)]
            return list(self._faults)

    @property
    def pending(self) -> int:
        """Calls still planned to fail; a time-boxed fault without ``times`` counts once while it lasts."""
        return sum(1 if f.remaining is None else f.remaining for f in self.active())

    def take(self, path: str, *, gateway: bool = False) -> Fault | None:
        """The fault that answers this call, if any: gateway faults at the gateway stage, the others after it."""
        with self._lock:
            now = self._clock()
            for fault in self._faults:
                if fault.gateway != gateway or not fault.live(now) or not fault.matches(path):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                self.fired[fault.code] = self.fired.get(fault.code, 0) + 1
                if not fault.live(now):
                    self._faults.remove(fault)
                return fault
        return None
