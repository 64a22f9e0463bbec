"""marketo-webhook: the definition to paste (never the secret) and a dry credentials call."""

from __future__ import annotations

import json

import pytest

from shared.pipeline.flowsteps.request import parse_body, step_named
from shared.setup.marketo_setup import FLOW_STEPS, PAYLOAD_TEMPLATE, trigger_fields
from tests.setup.conftest import World

APP = "https://sync-app.azurewebsites.net"


def test_prints_the_definition_and_checks_credentials(world: World) -> None:
    code, out = world.run("marketo-webhook", "--url", APP)
    assert code == 0, out
    assert f"URL:                    {APP}/api/marketo/webhook" in out
    assert "Request Type:           POST" in out
    assert f"Template:               {PAYLOAD_TEMPLATE}" in out
    assert "Request Token Encoding: JSON" in out
    assert "Response type:          None" in out
    assert "Header: x-sync-secret" in out
    assert "Key Vault secret 'marketo-webhook-secret'" in out
    assert "'Data Value Changes'" in out
    assert "    - firstName" in out
    assert "Marketo credentials: PASS" in out
    for secret in (world.settings.marketo_webhook_secret, world.settings.marketo_client_secret):
        assert secret.get_secret_value() not in out
    assert world.tenants.marketo.calls["GET /rest/v1/leads/describe.json"] == 1


def test_the_template_is_what_the_webhook_endpoint_accepts() -> None:
    """Marketo JSON-encodes a string token, quotes included ("Request Token Encoding: JSON")."""
    rendered = PAYLOAD_TEMPLATE.replace("{{lead.Id}}", "1042").replace(
        "{{lead.Email Address}}", json.dumps('ada"quoted"@example.com')
    )
    assert json.loads(rendered) == {"leadId": 1042, "email": 'ada"quoted"@example.com'}


def test_flow_steps_prints_the_three_flow_step_webhooks_without_the_secret(world: World) -> None:
    code, out = world.run("marketo-webhook", "--url", APP, "--flow-steps", "--no-check")
    assert code == 0, out
    for step in ("sync-person", "change-owner", "create-task"):
        assert f"URL:                    {APP}/api/marketo/flow/{step}" in out
    assert out.count("Request Token Encoding: JSON") == 4
    assert out.count("Header: x-sync-secret") == 4
    assert world.settings.marketo_webhook_secret.get_secret_value() not in out


@pytest.mark.parametrize(("step", "name", "template"), FLOW_STEPS)
def test_each_flow_step_template_renders_to_a_body_the_step_accepts(step: str, name: str, template: str) -> None:
    rendered = template.replace("{{lead.Id}}", "1042").replace("{{system.dateTime}}", json.dumps("2026-12-01 10:00"))
    body = parse_body(step_named(step), json.loads(rendered))
    assert body.personId == 1042
    assert body.requestId == "2026-12-01 10:00"


def test_trigger_fields_are_the_ones_that_can_flow_back(world: World) -> None:
    fields = trigger_fields(world.mapping)
    assert "firstName" in fields
    assert "dateOfBirth" in fields
    assert "dynamicsOwnerId" not in fields  # a lookup: never written to Dynamics
    assert "teamName" not in fields  # one-way entity


def test_reports_the_marketo_error(world: World) -> None:
    wrong = "wrong-marketo-client-secret"
    code, out = world.run("marketo-webhook", "--url", APP, settings=world.with_settings(MARKETO_CLIENT_SECRET=wrong))
    assert code == 1
    assert "Marketo credentials: FAIL" in out
    assert "identity-401" in out
    assert "MARKETO_CLIENT_SECRET" in out
    assert wrong not in out


def test_reports_a_marketo_error_code(world: World) -> None:
    world.tenants.marketo.set_daily_quota(0)
    code, out = world.run("marketo-webhook", "--url", APP)
    assert code == 1
    assert "607" in out
    assert "daily API quota" in out


def test_no_check_and_a_url_is_required(world: World) -> None:
    code, out = world.run("marketo-webhook", "--url", APP, "--no-check")
    assert code == 0
    assert "Marketo credentials" not in out
    assert world.tenants.marketo.calls["GET /rest/v1/leads/describe.json"] == 0
    code, out = world.run("marketo-webhook")
    assert code == 2
    assert "--url" in out
