"""The simulator behaves like a registered asynchronous plugin step posting to a webhook."""

from __future__ import annotations

import json

import httpx
import pytest

from local.loopback import serve
from local.simulators.dataverse import CapturedWebhooks, DataverseSimulator
from shared.dataverse.auth import BearerAuth, MsalTokenSource, build_confidential_client
from shared.dataverse.batch import BatchOperation
from shared.dataverse.client import DataverseClient
from shared.dataverse.context import parse_context
from shared.dataverse.values import EntityRef

ORG = "https://contoso.crm.dynamics.com"
CLIENT_ID = "0c6f0d2a-0000-4000-8000-0000000000c1"
SECRET = "simulator-test-secret"
HOOK = "https://func.example/api/dataverse"


def _client(sim: DataverseSimulator) -> DataverseClient:
    app = build_confidential_client(
        tenant_id=sim.tenant_id,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        http_client=httpx.Client(transport=httpx.MockTransport(sim)),
    )
    auth = BearerAuth(MsalTokenSource(app, ORG))
    return DataverseClient(httpx.Client(transport=httpx.MockTransport(sim), auth=auth), ORG, sleep=lambda _: None)


@pytest.fixture
def hooks() -> CapturedWebhooks:
    return CapturedWebhooks()


@pytest.fixture
def sim(hooks: CapturedWebhooks) -> DataverseSimulator:
    return DataverseSimulator(sender=hooks, organization_name="contoso")


@pytest.fixture
def app_user(sim: DataverseSimulator) -> str:
    return sim.add_app(CLIENT_ID, secret=SECRET)


@pytest.fixture
def client(sim: DataverseSimulator, app_user: str) -> DataverseClient:
    return _client(sim)


def test_registered_update_step_fires_only_for_its_filtering_attributes(
    sim: DataverseSimulator, hooks: CapturedWebhooks, client: DataverseClient, app_user: str
) -> None:
    lead = sim.seed("lead", {"firstname": "Ada", "emailaddress1": "old@example.com", "leadsourcecode": 1})
    step = sim.register_webhook(
        HOOK,
        entity="lead",
        message="Update",
        filtering_attributes=["emailaddress1", "leadsourcecode"],
        pre_image=["emailaddress1"],
        post_image=["emailaddress1", "leadsourcecode"],
        header=("x-sync-secret", "s3"),
    )

    client.update("lead", lead, {"firstname": "Augusta"})
    assert hooks.received == []

    client.update("lead", lead, {"emailaddress1": "new@example.com", "leadsourcecode": 8})
    assert len(hooks.received) == 1
    url, headers, body = hooks.received[0]
    assert url == HOOK
    assert headers["x-sync-secret"] == "s3"
    assert headers["x-ms-dynamics-entity-name"] == "lead"
    assert headers["x-ms-dynamics-request-name"] == "Update"
    assert headers["x-ms-dynamics-organization"] == "contoso.crm.dynamics.com"
    assert b"\\/Date(" in body  # escaped like Dataverse's serializer

    ctx = parse_context(body)
    assert headers["x-ms-correlation-request-id"] == ctx.correlation_id
    assert ctx.message_name == "Update"
    assert ctx.primary_entity_id == lead
    assert ctx.initiating_user_id == ctx.user_id == app_user
    assert ctx.depth == 1
    assert ctx.stage == 40
    assert ctx.changed_attributes["emailaddress1"] == "new@example.com"
    assert ctx.changed_attributes["leadsourcecode"] == 8
    # the Target is what the request set, as the platform saw it: references without names, no formatted values
    assert ctx.changed_attributes["modifiedby"] == EntityRef(app_user, "systemuser", None)
    assert ctx.formatted_values == {}
    pre, post = ctx.image("pre"), ctx.image("post")
    assert pre is not None
    assert post is not None
    assert post.formatted_values["leadsourcecode"] == "Web"  # images are retrieved rows: they carry labels
    assert dict(pre.attributes) == {"emailaddress1": "old@example.com"}
    assert dict(post.attributes) == {"emailaddress1": "new@example.com", "leadsourcecode": 8}
    assert json.loads(body)["OwningExtension"]["Id"] == step


def test_without_registrations_every_write_goes_to_every_configured_url(hooks: CapturedWebhooks) -> None:
    sim = DataverseSimulator(sender=hooks, webhook_urls=[HOOK, HOOK + "2"])
    sim.add_app(CLIENT_ID, secret=SECRET)
    client = _client(sim)
    human = sim.add_user("Grace Hopper")

    new_id = client.create("contact", {"lastname": "Hopper"})
    sim.user_update("contact", new_id, {"firstname": "Grace"}, user_id=human)
    sim.user_delete("contact", new_id, user_id=human)

    messages = [(url, parse_context(body).message_name) for url, _, body in hooks.received]
    assert messages == [
        (HOOK, "Create"),
        (HOOK + "2", "Create"),
        (HOOK, "Update"),
        (HOOK + "2", "Update"),
        (HOOK, "Delete"),
        (HOOK + "2", "Delete"),
    ]
    update = parse_context(hooks.received[2][2])
    assert update.initiating_user_id == human  # a person's change, not the sync's
    delete = parse_context(hooks.received[4][2])
    assert delete.target_reference == EntityRef(new_id, "contact", None)
    pre = delete.image("pre")
    assert pre is not None
    assert pre.attributes["firstname"] == "Grace"


@pytest.mark.parametrize(
    ("statuses", "attempts"), [([503, 200], 2), ([504, 502], 2), ([500], 1), ([429], 1), ([200], 1)]
)
def test_delivery_retries_once_only_for_502_503_504(
    sim: DataverseSimulator, hooks: CapturedWebhooks, statuses: list[int], attempts: int
) -> None:
    sim.webhook_urls = [HOOK]
    hooks.statuses = list(statuses)
    human = sim.add_user("Someone")
    sim.user_create("lead", {"lastname": "X"}, user_id=human)
    assert len(hooks.received) == attempts
    assert sim.deliveries[-1].statuses == statuses[:attempts]


def test_oversized_context_drops_inputs_and_images_and_says_so(
    sim: DataverseSimulator, hooks: CapturedWebhooks
) -> None:
    sim.webhook_urls = [HOOK]
    sim.max_context_bytes = 1500
    human = sim.add_user("Someone")
    lead = sim.user_create("lead", {"lastname": "Big", "companyname": "x" * 100}, user_id=human)
    _, headers, body = hooks.received[-1]
    assert headers["x-ms-dynamics-msg-size-exceeded"] == "true"
    raw = json.loads(body)
    assert "InputParameters" not in raw
    assert "PostEntityImages" not in raw
    ctx = parse_context(body)
    assert ctx.size_exceeded
    assert ctx.primary_entity_id == lead


def test_webhook_key_goes_in_the_query_string(sim: DataverseSimulator, hooks: CapturedWebhooks) -> None:
    sim.register_webhook(HOOK, entity="account", message="Create", key="function-key")
    sim.user_create("account", {"name": "Contoso"}, user_id=sim.add_user("A B"))
    assert hooks.received[0][0] == HOOK + "?code=function-key"


def test_rolled_back_change_set_sends_no_webhook(
    sim: DataverseSimulator, hooks: CapturedWebhooks, client: DataverseClient
) -> None:
    sim.webhook_urls = [HOOK]
    lead = sim.seed("lead", {"lastname": "A"})
    results = client.execute_batch(
        [
            BatchOperation("PATCH", f"leads({lead})", {"firstname": "Z"}, {"If-Match": "*"}),
            BatchOperation(
                "PATCH", "leads(00000000-0000-0000-0000-000000000009)", {"firstname": "Q"}, {"If-Match": "*"}
            ),
        ],
        atomic=True,
    )
    assert [r.status for r in results] == [404, 404]
    assert hooks.received == []
    assert sim.get("lead", lead)["firstname"] is None  # type: ignore[index]


def test_qualification_sends_contact_create_and_lead_update(
    sim: DataverseSimulator, hooks: CapturedWebhooks, client: DataverseClient
) -> None:
    sim.webhook_urls = [HOOK]
    lead = sim.seed("lead", {"lastname": "Lovelace", "companyname": "Analytical"})
    client.qualify_lead(lead, create_account=True)
    seen = [(parse_context(b).primary_entity_name, parse_context(b).message_name) for _, _, b in hooks.received]
    assert seen == [("account", "Create"), ("contact", "Create"), ("lead", "Update")]
    contact = parse_context(hooks.received[1][2])
    assert contact.changed_attributes["originatingleadid"] == EntityRef(lead, "lead", None)


def test_registrations_are_writable_entity_sets(sim: DataverseSimulator, client: DataverseClient) -> None:
    endpoint = client.create(
        "serviceendpoint", {"name": "sync", "url": HOOK, "contract": 8, "authtype": 4, "authvalue": "k"}
    )
    step = client.create(
        "sdkmessageprocessingstep",
        {
            "name": "sync: Update of lead",
            "primaryobjecttypecode": "lead",
            "sdkmessagename": "Update",
            "filteringattributes": "emailaddress1",
            "mode": 1,
            "stage": 40,
            "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint})",
        },
    )
    client.create(
        "sdkmessageprocessingstepimage",
        {
            "name": "PostImage",
            "entityalias": "PostImage",
            "imagetype": 1,
            "attributes": "emailaddress1",
            "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({step})",
        },
    )
    steps = list(client.query("sdkmessageprocessingstep", select=["name", "filteringattributes"]))
    assert [s.values["filteringattributes"] for s in steps] == ["emailaddress1"]
    lead = sim.seed("lead", {"lastname": "A"})
    client.update("lead", lead, {"emailaddress1": "a@example.com"})
    assert sim.deliveries[-1].url == HOOK + "?code=k"


def test_real_http_delivery_over_loopback() -> None:
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(202)

    with serve(receiver) as base:
        sim = DataverseSimulator(webhook_urls=[f"{base}/api/dataverse"])
        sim.user_create("lead", {"lastname": "Loop"}, user_id=sim.add_user("A B"))
    assert len(received) == 1
    assert received[0].headers["x-ms-dynamics-request-name"] == "Create"
    assert parse_context(received[0].content).primary_entity_name == "lead"
    assert sim.deliveries[0].succeeded
