"""register / unregister against the Dataverse simulator, through the Web API, and the deliveries that follow."""

from __future__ import annotations

import json

import pytest

from shared.core.mapping import SyncMapping, load_mapping
from shared.dataverse.context import parse_context
from shared.errors import SyncError
from shared.services import build_dataverse
from shared.setup.registration import ENDPOINT_NAME, PREFIX
from tests.setup.conftest import HOOK, World


def _rows(world: World, table: str) -> list[dict[str, object]]:
    return world.tenants.dataverse.rows(table)


def _ours(world: World, table: str) -> list[dict[str, object]]:
    return [r for r in _rows(world, table) if str(r.get("name") or "").startswith(PREFIX)]


def _writes(world: World) -> int:
    calls = world.tenants.dataverse.calls
    return sum(n for label, n in calls.items() if label.split(" ")[0] in {"POST", "PATCH", "DELETE"})


def _step(world: World, entity: str, message: str) -> dict[str, object]:
    sim = world.tenants.dataverse
    return next(
        s
        for s in _rows(world, "sdkmessageprocessingstep")
        if s["_sdkmessageid_value"] == sim.sdk_message_id(message)
        and s["_sdkmessagefilterid_value"] == sim.sdk_message_filter_id(message, entity)
    )


def _images(world: World, step: dict[str, object]) -> list[dict[str, object]]:
    return [
        i
        for i in _rows(world, "sdkmessageprocessingstepimage")
        if i["_sdkmessageprocessingstepid_value"] == step["sdkmessageprocessingstepid"]
    ]


def test_register_creates_endpoint_steps_and_images(world: World) -> None:
    code, out = world.run("register", "--url", HOOK)
    assert code == 0, out
    entities = len(world.mapping.entities) + 1  # and the connection table: an opportunity's stakeholders
    assert f"{1 + 6 * entities} created, 0 updated, 0 unchanged, 0 deleted" in out

    [endpoint] = _rows(world, "serviceendpoint")
    assert endpoint["name"] == ENDPOINT_NAME
    assert (endpoint["url"], endpoint["contract"], endpoint["authtype"], endpoint["messageformat"]) == (HOOK, 8, 5, 2)
    secret = world.settings.dataverse_webhook_secret.get_secret_value()
    assert endpoint["authvalue"] == f'<settings><setting name="x-sync-secret" value="{secret}" /></settings>'
    assert secret not in out

    steps = _rows(world, "sdkmessageprocessingstep")
    assert len(steps) == 3 * entities
    assert all(s["_eventhandler_value"] == endpoint["serviceendpointid"] for s in steps)
    assert all((s["mode"], s["stage"], s["supporteddeployment"]) == (1, 40, 0) for s in steps)

    update = _step(world, "contact", "Update")
    watched = {f.dynamics for f in world.mapping.get("contact").live_fields} | {
        "new_synctomkto",
        "originatingleadid",
        "ownerid",  # its sales owner
    }
    assert set(str(update["filteringattributes"]).split(",")) == watched
    [post] = _images(world, update)
    assert (post["imagetype"], post["entityalias"], post["messagepropertyname"]) == (1, "PostImage", "Target")
    assert set(str(post["attributes"]).split(",")) == watched
    [create_image] = _images(world, _step(world, "lead", "Create"))
    assert (create_image["imagetype"], create_image["messagepropertyname"]) == (1, "Id")
    [pre] = _images(world, _step(world, "lead", "Delete"))
    assert (pre["imagetype"], pre["entityalias"]) == (0, "PreImage")


def test_re_running_is_a_no_op(world: World) -> None:
    world.run("register", "--url", HOOK)
    before = _writes(world)
    code, out = world.run("register", "--url", HOOK)
    assert code == 0
    tables = len(world.mapping.entities) + 1  # and the connection table
    assert f"0 created, 0 updated, {1 + 6 * tables} unchanged, 0 deleted" in out
    assert _writes(world) == before


def test_dry_run_changes_nothing(world: World) -> None:
    code, out = world.run("register", "--url", HOOK, "--dry-run")
    assert code == 0
    assert "(dry run, nothing changed)" in out
    assert _rows(world, "serviceendpoint") == []


def _changed_mapping(mapping: SyncMapping) -> SyncMapping:
    """jobtitle no longer synced for leads; team no longer synced at all."""
    data = json.loads(mapping.model_dump_json())
    data["entities"] = [e for e in data["entities"] if e["entity"] != "team"]
    lead = next(e for e in data["entities"] if e["entity"] == "lead")
    lead["fields"] = [f for f in lead["fields"] if f["dynamics"] != "jobtitle"]
    return load_mapping(data)


def test_a_mapping_change_updates_filters_and_images_and_drops_removed_entities(world: World) -> None:
    world.run("register", "--url", HOOK)
    changed = _changed_mapping(world.mapping)
    code, out = world.run("register", "--url", HOOK, mapping=changed)
    assert code == 0, out
    assert "update    step 'd365-marketo-sync: Update of lead' (filteringattributes)" in out
    assert "0 created, 4 updated" in out
    assert "6 deleted" in out

    update = _step(world, "lead", "Update")
    assert "jobtitle" not in str(update["filteringattributes"]).split(",")
    for message in ("Create", "Update", "Delete"):
        [image] = _images(world, _step(world, "lead", message))
        assert "jobtitle" not in str(image["attributes"]).split(",")
    team_filters = {world.tenants.dataverse.sdk_message_filter_id(m, "team") for m in ("Create", "Update", "Delete")}
    assert not [s for s in _rows(world, "sdkmessageprocessingstep") if s["_sdkmessagefilterid_value"] in team_filters]
    assert len(_rows(world, "sdkmessageprocessingstepimage")) == 3 * (len(changed.entities) + 1)  # and connection

    code, out = world.run("register", "--url", HOOK, mapping=changed)
    assert "0 created, 0 updated" in out
    assert "0 deleted" in out


def test_unregister_removes_only_its_own_registrations(world: World) -> None:
    sim = world.tenants.dataverse
    foreign = sim.register_webhook(
        "https://other.example/hook",
        entity="lead",
        message="Update",
        filtering_attributes=["firstname"],
        post_image=["firstname"],
        header=("x-other", "their-secret"),
    )
    world.run("register", "--url", HOOK)
    code, out = world.run("unregister")
    assert code == 0, out
    assert "0 created, 0 updated, 0 unchanged" in out

    assert [s["sdkmessageprocessingstepid"] for s in _rows(world, "sdkmessageprocessingstep")] == [foreign]
    assert [e["url"] for e in _rows(world, "serviceendpoint")] == ["https://other.example/hook"]
    assert [i["_sdkmessageprocessingstepid_value"] for i in _rows(world, "sdkmessageprocessingstepimage")] == [foreign]
    assert _ours(world, "sdkmessageprocessingstep") == []

    code, out = world.run("unregister")  # nothing left of ours: nothing to do
    assert code == 0
    assert "0 deleted" in out


def test_unregister_keeps_the_endpoint_while_someone_else_s_step_uses_it(world: World) -> None:
    world.run("register", "--url", HOOK)
    sim = world.tenants.dataverse
    [endpoint] = _rows(world, "serviceendpoint")
    sim.seed(
        "sdkmessageprocessingstep",
        {
            "name": "Audit: Update of account",
            "mode": 1,
            "stage": 40,
            "_sdkmessageid_value": sim.sdk_message_id("Update"),
            "_sdkmessagefilterid_value": sim.sdk_message_filter_id("Update", "account"),
            "_eventhandler_value": endpoint["serviceendpointid"],
        },
    )
    code, out = world.run("unregister")
    assert code == 0
    assert "kept the service endpoint" in out
    assert "Audit: Update of account" in out
    assert [s["name"] for s in _rows(world, "sdkmessageprocessingstep")] == ["Audit: Update of account"]
    assert len(_rows(world, "serviceendpoint")) == 1


def test_the_simulator_delivers_what_was_registered(world: World) -> None:
    world.run("register", "--url", HOOK)
    sim, admin = world.tenants.dataverse, world.tenants.admin_user_id
    secret = world.settings.dataverse_webhook_secret.get_secret_value()

    lead = sim.user_create("lead", {"lastname": "Lovelace", "jobtitle": "Analyst"}, user_id=admin)
    assert len(world.hooks.received) == 1
    url, headers, body = world.hooks.received[-1]
    assert (url, headers["x-sync-secret"], headers["x-ms-dynamics-request-name"]) == (HOOK, secret, "Create")
    assert parse_context(body).post_images["PostImage"].attributes["jobtitle"] == "Analyst"

    sim.user_update("lead", lead, {"jobtitle": "Engineer"}, user_id=admin)  # a mapped column
    assert len(world.hooks.received) == 2
    url, headers, body = world.hooks.received[-1]
    assert headers["x-sync-secret"] == secret
    assert headers["x-ms-dynamics-request-name"] == "Update"
    image = parse_context(body).post_images["PostImage"].attributes
    assert image["jobtitle"] == "Engineer"
    assert "parentaccountid" not in image  # images carry the mapped columns only

    account = sim.seed("account", {"name": "Contoso"})
    sim.user_update("lead", lead, {"parentaccountid@odata.bind": f"/accounts({account})"}, user_id=admin)
    assert len(world.hooks.received) == 2  # an unmapped column: no webhook

    sim.user_delete("lead", lead, user_id=admin)
    _, headers, body = world.hooks.received[-1]
    assert headers["x-ms-dynamics-request-name"] == "Delete"
    assert parse_context(body).pre_images["PreImage"].attributes["lastname"] == "Lovelace"


def test_after_unregister_nothing_is_delivered(world: World) -> None:
    world.run("register", "--url", HOOK)
    world.run("unregister")
    world.tenants.dataverse.user_create("lead", {"lastname": "Quiet"}, user_id=world.tenants.admin_user_id)
    assert world.hooks.received == []


def test_refuses_plain_http_and_an_empty_secret(world: World) -> None:
    code, out = world.run("register", "--url", "http://sync-app.azurewebsites.net/api/dataverse/webhook")
    assert code == 2
    assert "https" in out
    code, out = world.run("register", "--url", HOOK, settings=world.with_settings(DATAVERSE_WEBHOOK_SECRET=""))
    assert code == 1
    assert "DATAVERSE_WEBHOOK_SECRET is empty" in out
    assert _rows(world, "serviceendpoint") == []


def test_a_base_url_gets_the_webhook_route(world: World) -> None:
    code, _out = world.run("register", "--url", "https://sync-app.azurewebsites.net")
    assert code == 0
    assert _rows(world, "serviceendpoint")[0]["url"] == HOOK


def test_the_simulator_refuses_a_step_whose_filter_is_for_another_message(world: World) -> None:
    sim = world.tenants.dataverse
    world.run("register", "--url", HOOK)
    [endpoint] = _rows(world, "serviceendpoint")
    client = build_dataverse(world.settings, world.http)
    body = {
        "name": "mismatched",
        "mode": 1,
        "stage": 40,
        "sdkmessageid@odata.bind": f"/sdkmessages({sim.sdk_message_id('Update')})",
        "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({sim.sdk_message_filter_id('Create', 'lead')})",
        "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint['serviceendpointid']})",
    }
    with pytest.raises(SyncError, match="SdkMessageFilter"):
        client.create("sdkmessageprocessingstep", body)
