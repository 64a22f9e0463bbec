"""Webhook delivery as Dataverse does it: POST the RemoteExecutionContext, one retry only for 502/503/504.

The sender is a seam: in-process tests pass a callable that hands the request to a function under test; when the
simulator is served over loopback the default sender makes a real HTTP POST.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

Sender = Callable[[str, Mapping[str, str], bytes], int]
_RETRIED = {502, 503, 504}


def http_sender(url: str, headers: Mapping[str, str], body: bytes) -> int:
    try:
        return httpx.post(url, headers=dict(headers), content=body, timeout=60.0).status_code
    except httpx.TransportError:
        return 0  # no answer: a failure Dataverse does not retry


@dataclass(slots=True)
class Delivery:
    url: str
    headers: dict[str, str]
    body: bytes
    statuses: list[int] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return bool(self.statuses) and 200 <= self.statuses[-1] < 300


def deliver(sender: Sender, url: str, headers: Mapping[str, str], body: bytes) -> Delivery:
    delivery = Delivery(url, dict(headers), body)
    status = sender(url, headers, body)
    delivery.statuses.append(status)
    if status in _RETRIED:
        delivery.statuses.append(sender(url, headers, body))
    return delivery


class DeliverySwitch:
    """Whether each plug-in step's POST goes out: on or off, and a share lost on the way (seeded, so repeatable).

    Driven by ``POST /_simulator/webhooks``; a call switched off or dropped is never sent (as if the step had been
    disabled, or the system job lost), so the product must catch up through change tracking.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.enabled = True
        self.drop = 0.0
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - chooses which calls a test loses, not a secret
        self.sent = 0
        self.failed = 0  # sent, but the last attempt got no 2xx
        self.dropped = 0
        self.suppressed = 0  # not sent because webhooks were switched off

    def configure(self, *, enabled: bool | None = None, drop: float | None = None, seed: int | None = None) -> None:
        if drop is not None and not 0.0 <= drop <= 1.0:
            raise ValueError("drop must be between 0 and 1")
        with self._lock:
            if enabled is not None:
                self.enabled = enabled
            if drop is not None:
                self.drop = drop
            if seed is not None:
                self.seed = seed
                self._random = random.Random(seed)  # noqa: S311 - see __init__

    def admit(self) -> bool:
        """True if this delivery is to go out; books it as suppressed or dropped otherwise."""
        with self._lock:
            if not self.enabled:
                self.suppressed += 1
                return False
            if self.drop and self._random.random() < self.drop:
                self.dropped += 1
                return False
            self.sent += 1
            return True

    def outcome(self, delivery: Delivery) -> None:
        if not delivery.succeeded:
            with self._lock:
                self.failed += 1

    def state(self) -> dict[str, object]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "drop": self.drop,
                "seed": self.seed,
                "sent": self.sent,
                "failed": self.failed,
                "dropped": self.dropped,
                "suppressed": self.suppressed,
            }
