"""Planned failures: the next matching request(s) answer with a status, or hang and time out.

A test plans what a real organisation sometimes does (a 503 during an update, a 429 with ``Retry-After``, a read
that never answers) and the client under test must cope. ``timeout`` waits ``delay`` real seconds so that a
client's own read timeout fires over loopback; in-process tests pass ``delay=0``.

This is the one fault mechanism; the HTTP control surface (``control.py``: ``POST /_simulator/faults`` and
``/_simulator/outage``) is only a second door onto it. A fault answers the next ``times`` matching calls; with
``until`` (a time on the simulator's clock) every matching call until then (``times=None``), or the first
``times`` of them. A *gateway* fault (what an outage is) answers Web API calls before the token check; with
``authority=True`` it answers the token endpoint too (Entra's ``temporarily_unavailable``).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx

from local.simulators.dataverse.errors import ApiError


@dataclass(slots=True)
class InjectedFault:
    """One planned failure. ``kind``: ``status`` (answer ``status``), ``timeout`` (hang ``delay`` s, then time out)."""

    kind: str = "status"
    status: int = 503
    code: str = "0x80040216"
    message: str = "An unexpected error occurred."
    retry_after: float | None = None
    path_contains: str | None = None
    method: str | None = None
    times: int | None = 1  # None: every matching call until ``until``
    delay: float = 0.3
    until: float | None = None  # on the simulator's clock
    gateway: bool = False  # an outage: answers before the token check
    authority: bool = False  # with gateway: the token endpoint answers 503 too
    id: int = 0  # given by the plan

    def matches(self, request: httpx.Request) -> bool:
        if self.method and request.method != self.method:
            return False
        return not self.path_contains or self.path_contains in unquote(str(request.url))

    def live(self, now: float) -> bool:
        return (self.times is None or self.times > 0) and (self.until is None or now < self.until)

    def error(self) -> ApiError:
        headers = {"Retry-After": str(math.ceil(self.retry_after))} if self.retry_after is not None else {}
        return ApiError(self.status, self.code, self.message, headers)

    def describe(self, now: float) -> dict[str, object]:
        return {
            "id": self.id,
            "fault": "timeout" if self.kind == "timeout" else self.status,
            "code": None if self.kind == "timeout" else self.code,
            "retry_after": self.retry_after,
            "times_left": self.times,
            "path": self.path_contains,
            "method": self.method,
            "seconds_left": None if self.until is None else round(max(self.until - now, 0.0), 3),
            "outage": self.gateway,
            "authority": self.authority,
            "delay": self.delay if self.kind == "timeout" else None,
        }


@dataclass
class FaultPlan:
    faults: list[InjectedFault] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    fired: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, fault: InjectedFault) -> InjectedFault:
        if fault.times is None and fault.until is None:
            raise ValueError("a fault without times needs an end (until)")
        with self._lock:
            fault.id = next(self._ids)
            self.faults.append(fault)
        return fault

    def take(self, request: httpx.Request, *, gateway: bool = False, authority: bool = False) -> InjectedFault | None:
        """The fault that answers this call, if any: gateway faults at the gateway stage, the others after it;
        ``authority``: a token request, which only an outage that includes the authority answers."""
        with self._lock:
            now = self.clock()
            for fault in self.faults:
                if fault.gateway != gateway or (authority and not fault.authority):
                    continue
                if not fault.live(now) or not fault.matches(request):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                self.fired["timeout" if fault.kind == "timeout" else str(fault.status)] += 1
                if not fault.live(now):
                    self.faults.remove(fault)
                return fault
        return None

    def active(self) -> list[InjectedFault]:
        """The faults still due to fire, oldest first (spent ones are forgotten here)."""
        with self._lock:
            now = self.clock()
            self.faults = [f for f in self.faults if f.live(now)]
            return list(self.faults)

    def clear(self, *, gateway: bool | None = None) -> int:
        """Drop every fault (or only outages, or only the others); how many were live."""
        with self._lock:
            now = self.clock()
            kept = [f for f in self.faults if gateway is not None and f.gateway != gateway]
            live = sum(1 for f in self.faults if f not in kept and f.live(now))
            self.faults = kept
            return live

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            kept = [f for f in self.faults if f.id != fault_id]
            found = len(kept) != len(self.faults)
            self.faults = kept
            return found

    @property
    def pending(self) -> int:
        """Calls still planned to fail; a time-boxed fault without ``times`` counts once while it lasts."""
        return sum(1 if f.times is None else f.times for f in self.active())
