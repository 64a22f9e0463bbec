"""Marketo -> product: what a trigger campaign's "Call Webhook" step would send after a lead changes.

The payload is the template a Marketo admin would set up for this product (tokens ``{{lead.Id}}``,
``{{lead.Email Address}}`` and the changed fields), posted as JSON with the shared secret in a custom header.
Marketo calls webhooks fire-and-forget (30 s timeout, no retry worth relying on): so does the simulator, and a
failing receiver is only counted. :class:`Delivery` lets a test (or ``POST /_simulator/webhooks``) switch the
calls off, or lose a share of them at random from a seeded generator, to show the lead-changes feed catches up.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from local.simulators.marketo.fields import as_text
from local.simulators.marketo.leads import LeadChangeNote

Sender = Callable[[str, Mapping[str, str], bytes], None]


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: SecretStr
    header: str = "x-sync-secret"
    fields: frozenset[str] | None = None  # the trigger's "Data Value Changes" attributes; None = any field

    def wants(self, note: LeadChangeNote) -> bool:
        return self.fields is None or note.created or bool(self.fields & set(note.changes))


def payload(note: LeadChangeNote) -> dict[str, object]:
    return {
        "leadId": note.lead_id,
        "email": note.email,
        "event": "created" if note.created else "changed",
        "source": note.source,
        "changes": [
            {"field": name, "newValue": as_text(new), "oldValue": as_text(old)}
            for name, (new, old) in sorted(note.changes.items())
        ],
    }


def build_request(config: WebhookConfig, note: LeadChangeNote) -> tuple[str, dict[str, str], bytes]:
    headers = {"content-type": "application/json", config.header: config.secret.get_secret_value()}
    return config.url, headers, json.dumps(payload(note)).encode()


class Delivery:
    """Whether each webhook call goes out: on or off, and the share lost on the way (seeded, so repeatable)."""

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.enabled = True
        self.drop = 0.0
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - chooses which calls a test loses, not a secret
        self.sent = 0
        self.dropped = 0
        self.suppressed = 0  # not sent because webhooks were switched off
        self.failed = 0

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
        """True if this call is to go out; books the call as suppressed or dropped otherwise."""
        with self._lock:
            if not self.enabled:
                self.suppressed += 1
                return False
            if self.drop and self._random.random() < self.drop:
                self.dropped += 1
                return False
            self.sent += 1
            return True

    def fail(self) -> None:
        with self._lock:
            self.failed += 1

    def state(self) -> dict[str, object]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "drop": self.drop,
                "seed": self.seed,
                "sent": self.sent,
                "dropped": self.dropped,
                "suppressed": self.suppressed,
                "failed": self.failed,
            }
