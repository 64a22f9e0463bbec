"""Marketo's side of the wiring: the webhook definition an admin pastes, and a cheap credentials check.

Marketo has no API to create webhooks or trigger campaigns, so the definition is printed for a human. The custom
header value is the ``MARKETO_WEBHOOK_SECRET`` app setting: it is never printed, only where to find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.core.entities import MarketoObject
from shared.core.mapping import SyncMapping
from shared.errors import SyncError
from shared.marketo.client import MarketoClient
from shared.marketo.faults import Action, classify
from shared.pipeline.marketo_side import MARKETO_DATA_TYPES
from shared.settings import Settings

PAYLOAD_TEMPLATE = '{"leadId": {{lead.Id}}, "email": {{lead.Email Address}}}'
"""With "Request Token Encoding: JSON" Marketo writes a string token as a JSON string, quotes included, so tokens
stand bare in the template (a token inside quotes would arrive as ``""ada@example.com""``)."""
FLOW_ROUTE = "/api/marketo/flow/"
FLOW_STEPS: tuple[tuple[str, str, str], ...] = (
    (
        "sync-person",
        "Dynamics sync - Sync Person to Microsoft",
        '{"personId": {{lead.Id}}, "requestId": {{system.dateTime}}, "owner": {"salesOwner": true}}',
    ),
    (
        "change-owner",
        "Dynamics sync - Change Owner in Microsoft",
        '{"personId": {{lead.Id}}, "requestId": {{system.dateTime}}, "owner": {"email": "sales.rep@contoso.com"}}',
    ),
    (
        "create-task",
        "Dynamics sync - Create Task in Microsoft",
        '{"personId": {{lead.Id}}, "requestId": {{system.dateTime}}, "subject": "Follow up", '
        '"description": "Created by a Marketo campaign", "priority": "normal"}',
    ),
)
"""Each flow step's route, webhook name and payload template (docs/setup.md lists every field a template may hold)."""
KEY_VAULT_SECRET = "marketo-webhook-secret"  # noqa: S105 - the name of the vault secret, not a value


def trigger_fields(mapping: SyncMapping) -> list[str]:
    """Marketo person fields whose change should call the webhook: those that may flow back to Dynamics."""
    names: dict[str, None] = {}
    for entity in mapping.entities:
        if entity.rule.two_way:
            for f in entity.live_fields:
                if f.to_dynamics_allowed:
                    names.setdefault(f.marketo)
    return list(names)


def webhook_definition(settings: Settings, mapping: SyncMapping, url: str) -> list[str]:
    """The lines to print: every value the admin types into Marketo, and the trigger campaign to add."""
    fields = trigger_fields(mapping)
    header = settings.marketo_webhook_header
    return [
        "Marketo webhook (Admin > Integration > Webhooks > New Webhook)",
        "  Webhook Name:           Dynamics sync - person changed",
        f"  URL:                    {url}",
        "  Request Type:           POST",
        f"  Template:               {PAYLOAD_TEMPLATE}",
        "  Request Token Encoding: JSON",
        "  Response type:          None",
        "",
        *_secret_lines(header),
        "",
        "Trigger campaign (Marketing Activities > New Smart Campaign)",
        "  Smart List: trigger 'Data Value Changes', Attribute is any of:",
        *(f"    - {name}" for name in fields),
        "  Flow: 'Call Webhook' > Dynamics sync - person changed",
        "  Schedule: Activate; each person can run through the flow every time",
        "  The lead-changes feed (every 30 s) stays the reliable path: the webhook only makes changes arrive sooner.",
    ]


def _secret_lines(header: str) -> list[str]:
    return [
        "Custom header (select the webhook > Webhooks Actions > Set Custom Header)",
        f"  Header: {header}",
        "  Value:  the MARKETO_WEBHOOK_SECRET setting of the Function App: Key Vault secret "
        f"'{KEY_VAULT_SECRET}' (az keyvault secret show --vault-name <AZURE_KEY_VAULT_NAME> "
        f"--name {KEY_VAULT_SECRET} --query value -o tsv)",
        "  (not printed here on purpose; paste it straight from the vault)",
    ]


def flow_step_definitions(settings: Settings, base_url: str) -> list[str]:
    """The three flow-step webhooks to create in Marketo, each used by a "Call Webhook" step of a trigger campaign."""
    lines: list[str] = []
    for step, name, template in FLOW_STEPS:
        lines += [
            "",
            f"Marketo webhook for the '{step}' flow step (Admin > Integration > Webhooks > New Webhook)",
            f"  Webhook Name:           {name}",
            f"  URL:                    {base_url.rstrip('/')}{FLOW_ROUTE}{step}",
            "  Request Type:           POST",
            f"  Template:               {template}",
            "  Request Token Encoding: JSON",
            "  Response type:          JSON",
            "",
            *_secret_lines(settings.marketo_webhook_header),
        ]
    lines += [
        "",
        "Use (a trigger campaign's Flow): 'Call Webhook' > the webhook. Each call is answered 202 once the run is",
        "recorded; its outcome, or the sync error that stopped it, is in the app (GET /api/errors, operation flow:<step>).",
        'Owners: {"email": ...}, {"id": ...}, {"username": ...} or {"salesOwner": true}; sync-person assigns',
        'only a lead it creates unless "reassign": true. requestId makes a redelivery of the same run do nothing.',
    ]
    return lines


@dataclass(frozen=True, slots=True)
class MarketoCheck:
    ok: bool
    detail: str
    code: str | None = None
    fix: str | None = None
    lead_fields: frozenset[str] = frozenset()


def _fix_for(code: str | None) -> str:
    if code and code.startswith("identity-4"):
        return (
            "check MARKETO_CLIENT_ID and MARKETO_CLIENT_SECRET (Admin > LaunchPoint > the service > View Details) "
            "and MARKETO_IDENTITY_URL (Admin > Web Services > REST API)"
        )
    if code in ("601", "602"):
        return "the token was refused: check MARKETO_BASE_URL and MARKETO_IDENTITY_URL name the same instance"
    if code == "603":
        return "the API user's role lacks the permission: give it Read-Write Lead and Read-Only Activity"
    if code == "607":
        return "the daily API quota is spent: wait for the reset at 00:00 US Central or lower other integrations' use"
    if code in ("606", "615"):
        return "Marketo is rate limiting this instance: try again in a minute"
    return "check MARKETO_BASE_URL (Admin > Web Services > REST API > Endpoint, without /rest) and the service status"


def check_marketo(marketo: MarketoClient) -> MarketoCheck:
    """One dry call (Describe Lead): proves identity, endpoint and API role together."""
    try:
        fields = marketo.describe_leads()
    except SyncError as exc:
        return MarketoCheck(False, f"Marketo refused: {exc}", exc.code, _fix_for(exc.code))
    names = frozenset(f.rest_name for f in fields if f.rest_name)
    return MarketoCheck(True, f"credentials accepted; {len(names)} lead fields described", lead_fields=names)


def daily_usage(http: httpx.Client, marketo: MarketoClient, base_url: str) -> int | None:
    """Calls used today (``/rest/v1/stats/usage.json``) when the instance reports it; ``None`` otherwise."""
    try:
        response = http.get(base_url.rstrip("/") + "/rest/v1/stats/usage.json", auth=marketo.auth)
    except (httpx.HTTPError, SyncError):
        return None
    verdict = classify(response)
    if verdict.action is not Action.OK or verdict.payload is None:
        return None
    result: Any = verdict.payload.get("result") or []
    return sum(int(row.get("total", 0)) for row in result if isinstance(row, dict))


def person_fields(mapping: SyncMapping) -> dict[str, str]:
    """Marketo person field -> the data type to create it with, for every person-mapped field."""
    wanted: dict[str, str] = {}
    for entity in mapping.entities:
        if entity.rule.marketo_object is MarketoObject.PERSON:
            for f in entity.fields:
                wanted.setdefault(f.marketo, MARKETO_DATA_TYPES[f.type])
    return wanted
