"""Webhook delivery as Dataverse does it: POST the RemoteExecutionContext, one retry only for 502/503/504.

The sender is a seam: in-process tests pass a callable that hands the request to a function under test; when the
simulator is served over loopback the default sender makes a real HTTP POST.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from local.simulators.webhook_switch import WebhookSwitch

Sender = Callable[[str, Mapping[str, str], bytes], int]
_RETRIED = {502, 503, 504}


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    """One client for every delivery (thread-safe, connections kept alive): a client per POST would build a TLS
    context each time, which had cost the simulator most of its CPU at 30 webhooks a second."""
    global _client  # noqa: PLW0603 - one pool for the process, built on first use
    with _client_lock:
        if _client is None:
            _client = httpx.Client(timeout=60.0)
        return _client


def http_sender(url: str, headers: Mapping[str, str], body: bytes) -> int:
    try:
        return _shared_client().post(url, headers=dict(headers), content=body).status_code
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


class DeliverySwitch(WebhookSwitch):
    """Whether each plug-in step's POST goes out: on or off, and a share lost on the way (seeded, so repeatable).

    Driven by ``POST /_simulator/webhooks``; a call switched off or dropped is never sent (as if the step had been
    disabled, or the system job lost), so the product must catch up through change tracking. The switch itself
    (and its counts) is the one both simulators use: ``local/simulators/webhook_switch.py``.
    """

    def outcome(self, delivery: Delivery) -> None:
        if not delivery.succeeded:
            self.fail()
