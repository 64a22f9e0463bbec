"""Planned failures: the next matching request(s) answer with a status, or hang and time out.

A test plans what a real organisation sometimes does (a 503 during an update, a 429 with ``Retry-After``, a read
that never answers) and the client under test must cope. ``timeout`` waits ``delay`` real seconds so that a
client's own read timeout fires over loopback; in-process tests pass ``delay=0``.
"""

from __future__ import annotations

import math
import threading
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
    times: int = 1
    delay: float = 0.3

    def matches(self, request: httpx.Request) -> bool:
        if self.method and request.method != self.method:
            return False
        return not self.path_contains or self.path_contains in unquote(str(request.url))

    def error(self) -> ApiError:
        headers = {"Retry-After": str(math.ceil(self.retry_after))} if self.retry_after is not None else {}
        return ApiError(self.status, self.code, self.message, headers)


@dataclass
class FaultPlan:
    faults: list[InjectedFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: InjectedFault) -> InjectedFault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def take(self, request: httpx.Request) -> InjectedFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(request):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None
