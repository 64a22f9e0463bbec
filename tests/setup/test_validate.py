"""validate: passes on a provisioned, registered tenant pair; each broken piece fails with the fix."""

from __future__ import annotations

import json
from typing import Any

from shared.core.mapping import SyncMapping, load_mapping
from shared.setup.validate import NEVER_CREATED
from tests.setup.conftest import HOOK, World


def _validate(world: World, *extra: str, **kwargs: Any) -> tuple[int, dict[str, dict[str, Any]], str]:
    code, out = world.run("validate", "--json", *extra, **kwargs)
    report = json.loads(out)
    assert report["ok"] is (code == 0)
    return code, {c["name"]: c for c in report["checks"]}, out


def _with_lead_field(mapping: SyncMapping, column: str, marketo: str, *, one_way: bool = False) -> SyncMapping:
    data = json.loads(mapping.model_dump_json())
    lead = next(e for e in data["entities"] if e["entity"] == "lead")
    lead["fields"].append({"dynamics": column, "marketo": marketo, "type": "text", "one_way": one_way})
    return load_mapping(data)


def test_passes_on_a_provisioned_and_registered_setup(world: World) -> None:
    world.run("register", "--url", HOOK)
    code, checks, _ = _validate(world, "--url", HOOK)
    assert code == 0
    assert {c["status"] for c in checks.values()} == {"PASS"}
    assert "Marketo link fields" in checks
    assert "dynamicsContactId" in checks["Marketo link fields"]["detail"]

    code, out = world.run("validate", "--url", HOOK)  # the human-readable form
    assert code == 0
    assert "  PASS  Change tracking on lead" in out
    assert "0 failed, 0 skipped" in out


def test_webhook_registration_missing_or_stale(world: World) -> None:
    code, checks, _ = _validate(world)
    assert code == 1
    check = checks["Webhook registration"]
    assert check["status"] == "FAIL"
    assert "no webhook service endpoint" in check["detail"]
    assert "python -m shared.setup register" in check["fixes"][0]

    world.run("register", "--url", HOOK)
    code, checks, _ = _validate(world, "--url", "https://elsewhere.example/api/dataverse/webhook")
    assert checks["Webhook registration"]["status"] == "FAIL"
    assert "endpoint" in checks["Webhook registration"]["detail"]


def test_a_missing_column_must_be_created_in_dynamics(world: World) -> None:
    world.run("register", "--url", HOOK)
    mapping = _with_lead_field(world.mapping, "new_nosuchcolumn", "firstName2")
    code, checks, _ = _validate(world, mapping=mapping)
    assert code == 1
    check = checks["Columns of lead"]
    assert check["status"] == "FAIL"
    assert "column 'new_nosuchcolumn' does not exist on lead" in check["detail"]
    assert any(NEVER_CREATED in fix for fix in check["fixes"])
    assert NEVER_CREATED == "create the column in Dynamics first — the sync never creates Dynamics columns"
    assert checks["Columns of contact"]["status"] == "PASS"


def test_a_secured_column_needs_a_field_security_privilege(world: World) -> None:
    mapping = _with_lead_field(world.mapping, "new_salarynotes", "salaryNotes")  # secured in the simulated org
    code, checks, _ = _validate(world, mapping=mapping)
    assert code == 1
    check = checks["Columns of lead"]
    assert check["status"] == "FAIL"
    assert "the sync user cannot read new_salarynotes" in check["detail"]
    assert "new_salarynotes: add it to a field security profile with Read" in check["fixes"]

    tenants = world.tenants
    tenants.dataverse.grant_column(tenants.sync_user_id, "lead", "new_salarynotes", read=True, update=True)
    _code, checks, _ = _validate(world, mapping=mapping)
    assert checks["Columns of lead"]["status"] == "PASS"


def test_a_two_way_field_needs_update_on_its_secured_column_a_one_way_field_does_not(world: World) -> None:
    tenants = world.tenants
    tenants.dataverse.grant_column(tenants.sync_user_id, "lead", "new_salarynotes", read=True, update=False)
    two_way = _with_lead_field(world.mapping, "new_salarynotes", "salaryNotes")
    _code, checks, _ = _validate(world, mapping=two_way)
    check = checks["Columns of lead"]
    assert check["status"] == "FAIL"
    assert "the sync user may read new_salarynotes but has no Update privilege on it" in check["detail"]
    assert any('"one_way": true' in fix for fix in check["fixes"])

    one_way = _with_lead_field(world.mapping, "new_salarynotes", "salaryNotes", one_way=True)
    _code, checks, _ = _validate(world, mapping=one_way)
    assert checks["Columns of lead"]["status"] == "PASS"


def test_a_two_way_field_cannot_write_a_read_only_column(world: World) -> None:
    mapping = _with_lead_field(world.mapping, "modifiedon", "dynamicsModifiedOn")
    _code, checks, _ = _validate(world, mapping=mapping)
    check = checks["Columns of lead"]
    assert check["status"] == "FAIL"
    assert "modifiedon is read-only in Dynamics, and a two-way field writes it back" in check["detail"]


def test_change_tracking_off(world: World) -> None:
    world.tenants.dataverse.tables["contact"].change_tracking = False
    code, checks, _ = _validate(world)
    check = checks["Change tracking on contact"]
    assert (code, check["status"]) == (1, "FAIL")
    assert "Track changes" in check["fixes"][0]
    assert checks["Change tracking on lead"]["status"] == "PASS"


def test_a_missing_marketo_field_fails_and_may_be_created(world: World) -> None:
    world.run("register", "--url", HOOK)
    fields = world.tenants.marketo.leads.fields
    del fields["engagementScore"]
    del fields["dynamicsContactId"]
    code, checks, _ = _validate(world)
    assert code == 1
    assert checks["Marketo person fields"]["status"] == "FAIL"
    assert checks["Marketo person fields"]["detail"] == "missing in Marketo: engagementScore"
    assert "--create-marketo-fields" in checks["Marketo person fields"]["fixes"][0]
    assert checks["Marketo link fields"]["detail"] == "missing in Marketo: dynamicsContactId"

    code, checks, _ = _validate(world, "--create-marketo-fields")
    assert code == 0
    assert checks["Marketo person fields"]["detail"] == "created: engagementScore"
    assert checks["Marketo link fields"]["detail"] == "created: dynamicsContactId"
    assert fields["engagementScore"].data_type == "float"
    assert fields["dynamicsContactId"].data_type == "string"
    code, checks, _ = _validate(world)
    assert code == 0


def test_a_missing_custom_object_field_names_where_to_add_it(world: World) -> None:
    data = json.loads(world.mapping.model_dump_json())
    project = next(e for e in data["entities"] if e["entity"] == "new_project")
    project["fields"].append({"dynamics": "new_phase", "marketo": "phase", "type": "text"})
    _, checks, _ = _validate(world, mapping=load_mapping(data))
    check = checks["Marketo project_c fields (for new_project)"]
    assert check["status"] == "FAIL"
    assert check["detail"] == "missing in Marketo: phase"
    assert "Marketo Custom Objects > project_c" in check["fixes"][0]


def test_a_wrong_marketo_secret(world: World) -> None:
    world.run("register", "--url", HOOK)
    wrong = "definitely-not-the-marketo-secret"
    code, checks, out = _validate(world, settings=world.with_settings(MARKETO_CLIENT_SECRET=wrong))
    assert code == 1
    check = checks["Marketo credentials"]
    assert check["status"] == "FAIL"
    assert "identity" in check["detail"]
    assert "MARKETO_CLIENT_SECRET" in check["fixes"][0]
    for name in ("Marketo person fields", "Marketo link fields", "Marketo company fields (for account)"):
        assert checks[name]["status"] == "SKIP", name  # each item named, none dropped
        assert checks[name]["detail"].startswith("needs Marketo credentials")
    assert checks["Dataverse credentials"]["status"] == "PASS"
    assert wrong not in out


def test_wrong_dataverse_credentials_skip_the_dataverse_items(world: World) -> None:
    wrong = "not-the-dataverse-secret-at-all"
    code, checks, out = _validate(world, settings=world.with_settings(DATAVERSE_CLIENT_SECRET=wrong))
    assert code == 1
    assert checks["Dataverse credentials"]["status"] == "FAIL"
    assert "DATAVERSE_CLIENT_SECRET" in checks["Dataverse credentials"]["fixes"][0]
    skipped = {n for n, c in checks.items() if c["status"] == "SKIP"}
    for entity in world.mapping.entities:  # every item the credentials would have allowed, each with why
        for item in ("Read access to", "Columns of", "Change tracking on"):
            assert f"{item} {entity.entity}" in skipped
    assert {"Application user", "Webhook registration"} <= skipped
    assert "invalid_client" in checks["Webhook registration"]["detail"]
    assert checks["Marketo credentials"]["status"] == "PASS"
    assert wrong not in out


def test_webhook_secrets_must_be_set_and_are_never_shown(world: World) -> None:
    world.run("register", "--url", HOOK)
    code, checks, out = _validate(world, settings=world.with_settings(MARKETO_WEBHOOK_SECRET="short"))
    assert code == 1
    assert checks["Webhook secrets"]["detail"] == "MARKETO_WEBHOOK_SECRET is shorter than 32 characters"
    for secret in (
        world.settings.dataverse_webhook_secret,
        world.settings.marketo_client_secret,
        world.settings.dataverse_client_secret,
    ):
        assert secret.get_secret_value() not in out


def test_a_disabled_application_user(world: World) -> None:
    tenants = world.tenants
    row = tenants.dataverse.get("systemuser", tenants.sync_user_id)
    assert row is not None
    tenants.dataverse.seed("systemuser", {**_writable(row), "isdisabled": True}, record_id=tenants.sync_user_id)
    code, checks, _ = _validate(world)
    assert code == 1
    check = checks["Dataverse credentials"]
    assert "Application users" in check["fixes"][0]


def _writable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k in {"firstname", "lastname", "applicationid"}}
