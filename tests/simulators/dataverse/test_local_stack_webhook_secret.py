"""A webhook secret configured for the local host is the one the simulated plug-in steps send.

Before, the simulated tenants made up their own secrets at start while the product checked webhooks against the
configured ``DATAVERSE_WEBHOOK_SECRET``: every delivery was refused with 401.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import LocalStack
from tests.stacks import PROMPT_BATCHING, running_stack

SECRET = "configured-dataverse-webhook-secret-0123456789"


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    overrides = {"DATAVERSE_WEBHOOK_SECRET": SECRET, "DATAVERSE_WEBHOOK_HEADER": "x-configured-header"}
    with running_stack(batching=PROMPT_BATCHING, overrides=overrides) as running:
        yield running


def test_a_configured_dataverse_webhook_secret_is_sent_by_the_plug_in_steps_and_accepted(stack: LocalStack) -> None:
    tenants = stack.tenants
    assert tenants is not None
    assert tenants.secrets.dataverse_webhook_secret == SECRET
    tenants.dataverse.user_create("lead", {"lastname": "Configured"}, user_id=tenants.admin_user_id)
    (delivery,) = tenants.dataverse.deliveries
    assert delivery.headers["x-configured-header"] == SECRET
    assert delivery.succeeded, delivery.statuses  # accepted, not 401
    assert stack.drain(10)
