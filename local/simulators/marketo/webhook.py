"""Marketo -> product: what a trigger campaign's "Call Webhook" step would send after a lead changes.

The payload is the template a Marketo admin would set up for this product (tokens ``{{lead.Id}}``,
``{{lead.Email Address}}`` and the changed fields), posted as JSON with the shared secret in a custom header.
Marketo calls webhooks fire-and-forget (30 s timeout, no retry worth relying on): so does the simulator, and a
failing receiver is only counted. :class:`Delivery` lets a test (or ``POST /_simulator/webhooks``) switch the
calls off, or lose a share of them at random from a seeded generator, to show the lead-changes feed catches up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from local.simulators.marketo.fields import as_text
from local.simulators.marketo.leads import LeadChangeNote
from local.simulators.webhook_switch import WebhookSwitch

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


class Delivery(WebhookSwitch):
    """Whether each webhook call goes out: on or off, and the share lost on the way (seeded, so repeatable).

    The switch both simulators use (``local/simulators/webhook_switch.py``); a call that fails is only counted
    (:meth:`fail`), never retried.
    """

    fields = ("enabled", "drop", "seed", "sent", "dropped", "suppressed", "failed")  # the order it always answered in
