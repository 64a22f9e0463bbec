"""Security properties of the templates, asserted on the parsed Bicep.

checkov (make infra-check) covers the generic rules; these tests pin the ones this product depends on and
checkov does not read for Bicep (Service Bus local auth, Flex Consumption, Key Vault references, role names).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra import bicep
from tests.infra.bicep import Json, resolve

# Substrings that only ever appear in a credential-bearing connection string or key.
CREDENTIAL_MARKERS = re.compile(
    r"AccountKey=|SharedAccessKey|SharedAccessSignature|InstrumentationKey=|[?&]sig=|Password=|pwd=",
    re.IGNORECASE,
)
# ARM functions that return keys or connection strings (listKeys, listConnectionStrings, listSecrets, ...).
LIST_FUNCTION = re.compile(r"^list", re.IGNORECASE)


def test_every_template_parses() -> None:
    templates = bicep.all_templates()
    assert bicep.MAIN in templates
    for template in templates:
        assert bicep.parse(template), template


def test_storage_account_is_entra_only_tls12_https_no_public_blobs() -> None:
    storage = bicep.only("Microsoft.Storage/storageAccounts")
    props = storage.properties
    assert props["allowBlobPublicAccess"] is False
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    for container in bicep.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers"):
        assert container.properties.get("publicAccess") == "None", container.symbol


def test_service_bus_namespace_disables_local_auth_and_old_tls() -> None:
    namespace = bicep.only("Microsoft.ServiceBus/namespaces")
    assert namespace.properties["disableLocalAuth"] is True
    assert namespace.properties["minimumTlsVersion"] == "1.2"
    assert namespace.body["sku"]["name"] == "Standard"


def test_no_service_bus_authorization_rule_is_declared() -> None:
    """disableLocalAuth makes SAS rules inert; declaring one would still invite someone to turn it back on."""
    for resource in bicep.resources():
        assert "authorizationrules" not in resource.type.lower(), resource.symbol


def test_key_vault_uses_rbac_with_soft_delete_and_purge_protection() -> None:
    vault = bicep.only("Microsoft.KeyVault/vaults")
    props = vault.properties
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert "accessPolicies" not in props


def test_application_insights_accepts_only_entra_authenticated_telemetry() -> None:
    component = bicep.only("Microsoft.Insights/components")
    assert component.properties["DisableLocalAuth"] is True


def test_function_app_is_flex_consumption_python_311() -> None:
    plan = bicep.only("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = bicep.only("Microsoft.Web/sites")
    assert site.body["kind"] == "functionapp,linux"
    config = site.properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    deployment = config["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"


def test_maximum_instance_count_is_a_bounded_parameter() -> None:
    site = bicep.only("Microsoft.Web/sites")
    value = site.properties["functionAppConfig"]["scaleAndConcurrency"]["maximumInstanceCount"]
    assert value in bicep.parse(site.file)["parameters"], "maximumInstanceCount must come from a parameter"
    main_parameter = bicep.parse(bicep.MAIN)["parameters"]["maximumInstanceCount"]
    decorators = {d["type"]: d.get("argument") for d in main_parameter["decorators"]}
    assert decorators["min_value"] >= 1
    assert decorators["max_value"] <= 1000
    assert isinstance(resolve(value, site.file), int)


def test_function_app_transport_and_debugging_are_locked_down() -> None:
    site = bicep.only("Microsoft.Web/sites")
    props = site.properties
    assert props["httpsOnly"] is True
    site_config = props["siteConfig"]
    assert site_config["ftpsState"] == "Disabled"
    assert site_config["remoteDebuggingEnabled"] is False
    assert site_config["minTlsVersion"] == "1.2"
    assert site_config["scmMinTlsVersion"] == "1.2"


def test_basic_publishing_credentials_are_disabled_for_ftp_and_scm() -> None:
    policies = bicep.resources_of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    allowed = {resolve(p.body["name"], p.file): p.properties["allow"] for p in policies}
    assert allowed == {"ftp": False, "scm": False}


def test_function_app_runs_as_the_user_assigned_identity_everywhere() -> None:
    site = bicep.only("Microsoft.Web/sites")
    assert site.body["identity"]["type"] == "UserAssigned"
    identity_param = site.properties["keyVaultReferenceIdentity"]
    assert (
        site.properties["functionAppConfig"]["deployment"]["storage"]["authentication"][
            "userAssignedIdentityResourceId"
        ]
        == identity_param
    )
    assert identity_param in bicep.parse(site.file)["parameters"]


def _string_nodes(value: Json) -> list[str]:
    return [node for node in bicep.walk(value) if isinstance(node, str)]


def _function_types(value: Json) -> list[str]:
    return [
        str(node["function"]["type"])
        for node in bicep.walk(value)
        if isinstance(node, dict) and isinstance(node.get("function"), dict)
    ]


@pytest.mark.parametrize("name", sorted(bicep.function_app_settings()))
def test_no_app_setting_carries_a_credential(name: str) -> None:
    value = bicep.function_app_settings()[name]
    for text in _string_nodes(value):
        assert not CREDENTIAL_MARKERS.search(text), f"{name} looks like a connection string or key: {text}"
    assert not any(LIST_FUNCTION.match(f) for f in _function_types(value)), f"{name} calls a list*() function"


def test_only_the_application_insights_connection_string_is_a_connection_string() -> None:
    """Its ikey is not a secret (Microsoft: "aren't considered secrets") and cannot ingest: local auth is off."""
    names = {n for n in bicep.function_app_settings() if "connectionstring" in n.lower().replace("_", "")}
    assert names == {"APPLICATIONINSIGHTS_CONNECTION_STRING"}
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in bicep.function_app_settings()
    assert bicep.only("Microsoft.Insights/components").properties["DisableLocalAuth"] is True


def test_no_template_calls_a_list_function() -> None:
    for template in bicep.all_templates():
        calls = [f for f in _function_types(bicep.parse(template)) if LIST_FUNCTION.match(f)]
        assert not calls, f"{template.name} reads keys: {calls}"


def test_settings_forbidden_on_flex_consumption_are_absent() -> None:
    settings = bicep.function_app_settings()
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings
    assert "FUNCTIONS_EXTENSION_VERSION" not in settings
    assert "AzureWebJobsStorage" not in settings, "host storage must be identity-based (AzureWebJobsStorage__*)"


SECRET_SETTINGS = (
    "DATAVERSE_CLIENT_SECRET",
    "MARKETO_CLIENT_SECRET",
    "DATAVERSE_WEBHOOK_SECRET",
    "MARKETO_WEBHOOK_SECRET",
)
KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=\$\{(\w+)\}secrets/([a-z0-9-]+)\)$")


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_secrets_are_key_vault_references_to_declared_secrets(name: str) -> None:
    value = bicep.function_app_settings()[name]
    assert isinstance(value, str)
    match = KEY_VAULT_REFERENCE.match(value)
    assert match, f"{name} is not a versionless Key Vault reference: {value}"
    declared = {resolve(s.body["name"], s.file) for s in bicep.resources_of_type("Microsoft.KeyVault/vaults/secrets")}
    assert match.group(2) in declared


@pytest.mark.parametrize("template", bicep.all_templates(), ids=lambda p: p.name)
def test_no_output_exposes_a_secret(template: Path) -> None:
    parsed = bicep.parse(template)
    secure_params = {
        name
        for name, parameter in (parsed.get("parameters") or {}).items()
        if any(d["type"] == "secure" for d in parameter.get("decorators") or [])
    }
    for name, output in (parsed.get("outputs") or {}).items():
        assert not any(d["type"] == "secure" for d in output.get("decorators") or []), name
        assert not re.search(r"secret|password|connectionstring|accountkey|sas", name, re.IGNORECASE), name
        for text in _string_nodes(output["value"]):
            assert text not in secure_params, f"output {name} returns secure parameter {text}"
            assert not any(f"${{{p}}}" in text for p in secure_params), f"output {name} embeds a secure parameter"
            assert not CREDENTIAL_MARKERS.search(text), name
            assert "ConnectionString" not in text, name
        assert not any(LIST_FUNCTION.match(f) for f in _function_types(output["value"])), name


def test_role_assignments_are_named_by_scope_principal_and_role() -> None:
    assignments = bicep.resources_of_type("Microsoft.Authorization/roleAssignments")
    assert assignments
    for assignment in assignments:
        name = assignment.body["name"]
        assert isinstance(name, dict), assignment.symbol
        guid = name.get("function", {})
        assert guid.get("type") == "guid", f"{assignment.symbol}: name must be guid(scope, principal, role)"
        scope_arg, principal_arg, role_arg = list(guid["parameters"].values())
        scope = assignment.body["scope"]
        assert scope_arg == {
            "operator": {"type": "property_accessor", "operands": {"operand_1": scope, "operand_2": "id"}}
        }
        assert principal_arg == assignment.properties["principalId"], assignment.symbol
        role_definition = assignment.properties["roleDefinitionId"]["function"]
        assert role_definition["type"] == "subscription_resource_id"
        assert role_arg == role_definition["parameters"]["resource_name_1"], assignment.symbol


ROLE = {
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}


def _assigned_roles() -> set[tuple[str, str, str]]:
    """(principal parameter, role name, type of the scoped resource) for every role assignment."""
    found: set[tuple[str, str, str]] = set()
    for assignment in bicep.resources_of_type("Microsoft.Authorization/roleAssignments"):
        role_id = resolve(
            assignment.properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"], assignment.file
        )
        scope = next(r for r in bicep.resources(assignment.file) if r.symbol == assignment.body["scope"])
        found.add((assignment.properties["principalId"], ROLE[role_id], scope.type))
    return found


def test_the_app_identity_holds_exactly_the_least_privilege_roles() -> None:
    app_roles = {(role, scope) for principal, role, scope in _assigned_roles() if principal == "identityPrincipalId"}
    assert app_roles == {
        ("Azure Service Bus Data Receiver", "Microsoft.ServiceBus/namespaces"),
        ("Azure Service Bus Data Sender", "Microsoft.ServiceBus/namespaces"),
        ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
        ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
        ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
        ("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),
        ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
    }


def test_every_role_is_scoped_to_one_resource_not_a_group_or_subscription() -> None:
    for assignment in bicep.resources_of_type("Microsoft.Authorization/roleAssignments"):
        scope = assignment.body.get("scope")
        assert isinstance(scope, str), f"{assignment.symbol} has no resource scope"
        scoped = next(r for r in bicep.resources(assignment.file) if r.symbol == scope)
        assert scoped.type.lower() not in {"microsoft.resources/resourcegroups", "microsoft.resources/subscriptions"}


def test_the_developer_only_gets_key_vault_secrets_officer() -> None:
    developer_roles = {
        (role, scope) for principal, role, scope in _assigned_roles() if principal != "identityPrincipalId"
    }
    assert developer_roles == {("Key Vault Secrets Officer", "Microsoft.KeyVault/vaults")}


EXPLICIT_QUEUE_PROPERTIES = {
    "lockDuration",
    "maxDeliveryCount",
    "deadLetteringOnMessageExpiration",
    "defaultMessageTimeToLive",
    "requiresDuplicateDetection",
    "duplicateDetectionHistoryTimeWindow",
    "requiresSession",
}


@pytest.mark.parametrize("queue", ["sync-changes", "quick-sync", "flow-steps"])
def test_queue_delivery_semantics_are_explicit(queue: str) -> None:
    matches = [
        q
        for q in bicep.resources_of_type("Microsoft.ServiceBus/namespaces/queues")
        if resolve(q.body["name"], q.file) == queue
    ]
    assert len(matches) == 1, queue
    props = matches[0].properties
    assert set(props) >= EXPLICIT_QUEUE_PROPERTIES, (
        f"{queue} leaves {EXPLICIT_QUEUE_PROPERTIES - set(props)} to defaults"
    )
    assert props["requiresSession"] is False
    assert props["deadLetteringOnMessageExpiration"] is True
    assert props["requiresDuplicateDetection"] is True
    assert props["duplicateDetectionHistoryTimeWindow"] == "PT10M"
    assert 1 <= props["maxDeliveryCount"] <= 20
    assert re.fullmatch(r"PT[1-5]M", props["lockDuration"]), "Service Bus allows at most PT5M"
