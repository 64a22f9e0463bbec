"""Every resource in infra/ agrees with the type data the Bicep compiler checks it against.

There is no Bicep CLI on this machine, so without these tests a misspelt property, a read-only property set or a
value outside an allowed set would first surface at ``azd up``. The rules below show, on small templates written for
the purpose, that the checker reports each kind of mistake with the resource, the property path and what was
expected; then the real templates are held to the same checker, resource by resource.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra import bicep
from tests.infra.resource_types import Problem, check_resource, check_template, display_symbol

# Findings the type data reports but Azure accepts: (resource type@api version, property path) -> why it is fine.
# Keep each entry narrow (one path of one type) and give the evidence; an entry nothing needs any more fails below.
KNOWN_TYPE_DATA_GAPS: dict[tuple[str, str], str] = {}

REAL_RESOURCES = list(bicep.resources())


def _key(resource: bicep.Resource, problem: Problem) -> tuple[str, str]:
    return f"{resource.type}@{resource.api_version}".lower(), problem.path


def problems_in(tmp_path: Path, text: str) -> list[Problem]:
    template = tmp_path / "template.bicep"
    template.write_text(text, encoding="utf-8")
    return check_template(template)


def assert_reported(problems: list[Problem], symbol: str, path: str, *expected: str) -> None:
    """Exactly one finding at ``symbol``/``path``, whose message says each of ``expected``."""
    found = [p for p in problems if p.symbol == symbol and p.path == path]
    listing = "\n".join(map(str, problems)) or "(no findings)"
    assert len(found) == 1, f"expected one finding at {symbol}: {path}, got:\n{listing}"
    for fragment in expected:
        assert fragment in found[0].message, f"{found[0]} does not say {fragment!r}"


SITE = """
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan'
  location: 'westeurope'
}
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'site'
  location: 'westeurope'
  properties: {
    serverFarmId: plan.id
    httpsOnly: HTTPS_ONLY
    siteConfig: {
      MIN_TLS: '1.2'
    }
  }
}
"""


def site(https_only: str = "true", min_tls: str = "minTlsVersion") -> str:
    return SITE.replace("HTTPS_ONLY", https_only).replace("MIN_TLS", min_tls)


# --- the rules, on templates written for the purpose ------------------------------------------------------------


def test_a_correct_template_has_no_findings(tmp_path: Path) -> None:
    assert problems_in(tmp_path, site()) == []


def test_a_misspelt_property_is_reported_with_its_path_and_the_likely_name(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, site(min_tls="minTlsVersoin"))
    assert_reported(
        problems, "site", "properties.siteConfig.minTlsVersoin", "not a property of SiteConfig", "'minTlsVersion'"
    )


def test_property_names_are_case_sensitive(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, site(min_tls="MinTlsVersion"))
    assert_reported(problems, "site", "properties.siteConfig.MinTlsVersion", "case-sensitive", "'minTlsVersion'")


def test_a_read_only_property_is_reported(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: 'sb-x'
  location: 'westeurope'
  properties: {
    provisioningState: 'Succeeded'
  }
}
""",
    )
    assert_reported(problems, "namespace", "properties.provisioningState", "read-only in SBNamespaceProperties")


def test_a_literal_of_the_wrong_type_is_reported(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, site(https_only="'yes'"))
    assert_reported(problems, "site", "properties.httpsOnly", "expected a bool, got 'yes'")


def test_a_value_outside_a_closed_set_is_reported_with_the_allowed_values(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'stx'
}
resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}
resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'app'
  properties: {
    publicAccess: 'Private'
  }
}
""",
    )
    assert_reported(problems, "container", "properties.publicAccess", "one of 'Container', 'Blob', 'None'", "'Private'")


def test_an_extensible_enum_accepts_any_string_as_the_compiler_does(tmp_path: Path) -> None:
    """A union that includes plain string (an x-ms-enum with modelAsString) is a suggestion list, not a rule."""
    assert problems_in(tmp_path, site().replace("'1.2'", "'1.4'")) == []


def test_a_missing_required_property_is_reported(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-x'
  location: 'westeurope'
  properties: {
    sku: {
      family: 'A'
      name: 'standard'
    }
  }
}
""",
    )
    assert_reported(problems, "vault", "properties.tenantId", "required by VaultProperties", "min 36")


def test_an_integer_outside_its_range_is_reported(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'stx'
}
resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 400
    }
  }
}
""",
    )
    assert_reported(problems, "blobs", "properties.deleteRetentionPolicy.days", "max 365", "got 400")


def test_a_parameter_is_checked_by_its_type_allowed_values_bounds_and_default(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
@allowed([
  'standard'
  'gold'
])
param vaultSku string = 'standard'
param secured string = 'yes'
param retention int = 400
@minValue(0)
param containerRetention int
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-x'
  location: 'westeurope'
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: vaultSku
    }
    enablePurgeProtection: secured
  }
}
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'stx'
}
resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      days: retention
    }
    containerDeleteRetentionPolicy: {
      days: containerRetention
    }
  }
}
""",
    )
    assert_reported(problems, "vault", "properties.sku.name", "got 'gold' (allowed by parameter vaultSku)")
    assert_reported(
        problems, "blobs", "properties.containerDeleteRetentionPolicy.days", "@minValue(0)", "min 1, max 365"
    )
    assert_reported(problems, "vault", "properties.enablePurgeProtection", "got parameter secured (string)")
    assert_reported(
        problems, "blobs", "properties.deleteRetentionPolicy.days", "got 400 (default of parameter retention)"
    )


def test_a_default_behind_a_condition_is_not_held_against_the_property(tmp_path: Path) -> None:
    """``empty(x) ? 'fallback' : x``: the default '' is exactly the value the condition keeps away."""
    template = """
param queueName string = ''
resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: 'sb-x'
  location: 'westeurope'
}
resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: empty(queueName) ? 'changes' : queueName
}
"""
    assert problems_in(tmp_path, template) == []


def test_expressions_are_accepted_but_an_interpolation_is_still_a_string(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
param suffix string
var memory = 2048
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${suffix}'
  location: resourceGroup().location
  tags: union({}, { env: suffix })
}
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: toLower('site-${suffix}')
  location: plan.location
  properties: {
    serverFarmId: plan.id
    httpsOnly: !empty(suffix)
    functionAppConfig: {
      scaleAndConcurrency: {
        instanceMemoryMB: memory
        maximumInstanceCount: '${memory}'
      }
    }
  }
}
""",
    )
    assert [p.path for p in problems] == ["properties.functionAppConfig.scaleAndConcurrency.maximumInstanceCount"]
    assert_reported(problems, "site", problems[0].path, "expected an int, got a string interpolation")


def test_a_name_keyed_variant_is_chosen_by_the_literal_name(tmp_path: Path) -> None:
    template = site() + (
        "resource webConfig 'Microsoft.Web/sites/config@2024-04-01' = {\n"
        "  parent: site\n  name: 'NAME'\n  properties: {\n    PROPERTY: '1.2'\n  }\n}\n"
    )
    web = problems_in(tmp_path, template.replace("NAME", "web").replace("PROPERTY", "minTlsVersoin"))
    assert_reported(web, "webConfig", "properties.minTlsVersoin", "not a property of SiteConfig", "'minTlsVersion'")
    (tmp_path / "other").mkdir()
    unknown = problems_in(tmp_path / "other", template.replace("NAME", "webb").replace("PROPERTY", "x"))
    assert_reported(unknown, "webConfig", "name", "'appsettings'", "'web'", "got 'webb'")


def test_reads_of_a_resource_must_name_properties_it_has(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource components 'Microsoft.Insights/components@2020-02-02' existing = {
  name: 'appi-x'
}
output connection string = components.properties.connectionString
output key string = components.properties.InstrumentationKey
output app string = 'app ${components.properties.AppID}'
""",
    )
    assert_reported(
        problems, "components", "components.properties.connectionString", "case-sensitive", "'ConnectionString'"
    )
    assert_reported(problems, "components", "components.properties.AppID", "case-sensitive", "'AppId'")
    assert len(problems) == 2


def test_a_child_resource_must_have_a_parent_of_its_parent_type(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'stx'
}
resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: storage
  name: 'default/app'
}
resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  name: 'changes'
}
""",
    )
    assert_reported(
        problems, "container", "parent", "needs a parent of type Microsoft.Storage/storageAccounts/blobServices"
    )
    assert_reported(problems, "container", "name", "without '/'")
    assert_reported(problems, "queue", "name", "needs 2 '/'-separated segments")


def test_a_nested_resource_is_checked_under_its_bicep_name(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: 'sb-x'
  location: 'westeurope'
  resource queue 'queues' = {
    name: 'changes'
    properties: {
      maxDeliveryCont: 10
    }
  }
}
""",
    )
    assert_reported(problems, display_symbol("namespace__queue"), "properties.maxDeliveryCont", "'maxDeliveryCount'")


def test_scope_and_target_scope_must_suit_the_resource_type(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'stx'
}
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-x'
  location: 'westeurope'
  scope: storage
}
resource role 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('x')
  scope: storage
  properties: {
    principalId: '00000000-0000-0000-0000-000000000000'
    roleDefinitionId: 'x'
  }
}
resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-x'
  location: 'westeurope'
}
""",
    )
    assert_reported(problems, "identity", "scope", "only an extension resource")
    assert_reported(problems, "group", "type", "cannot be deployed at targetScope 'resourceGroup'")
    assert not [p for p in problems if p.symbol == "role"]


def test_a_type_or_api_version_without_type_data_names_the_file_to_ask_for(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path,
        """
resource site 'Microsoft.Web/sites@2099-01-01' = {
  name: 'site'
  location: 'westeurope'
}
resource cache 'Microsoft.Cache/redis@2024-03-01' = {
  name: 'redis'
  location: 'westeurope'
}
resource sites 'Microsoft.Web/site@2024-04-01' = {
  name: 'site'
  location: 'westeurope'
}
""",
    )
    assert_reported(problems, "site", "type", "ask for web_microsoft.web_2099-01-01.json")
    assert_reported(problems, "cache", "type", "ask for cache_microsoft.cache_2024-03-01.json")
    assert_reported(
        problems, "sites", "type", "not a resource type in web_microsoft.web_2024-04-01.json", "microsoft.web/sites"
    )


# --- the real templates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource", REAL_RESOURCES, ids=[f"{r.file.name}::{display_symbol(r.symbol)}" for r in REAL_RESOURCES]
)
def test_every_resource_in_infra_matches_the_bicep_type_data(resource: bicep.Resource) -> None:
    gaps = {(type_.lower(), path) for type_, path in KNOWN_TYPE_DATA_GAPS}
    problems = [p for p in check_resource(resource) if _key(resource, p) not in gaps]
    assert not problems, f"{resource.file.relative_to(bicep.INFRA.parent)}:\n" + "\n".join(map(str, problems))


def test_infra_declares_resources_to_check() -> None:
    """Guards the parametrized test above against passing vacuously if parsing stopped finding resources."""
    assert {r.file for r in REAL_RESOURCES} == set(bicep.all_templates())


def test_every_known_type_data_gap_is_still_needed() -> None:
    """An allow-list entry the templates no longer trigger would silently excuse a future real mistake."""
    seen = {_key(r, p) for r in REAL_RESOURCES for p in check_resource(r)}
    stale = [entry for entry in KNOWN_TYPE_DATA_GAPS if (entry[0].lower(), entry[1]) not in seen]
    assert not stale, f"remove these entries from KNOWN_TYPE_DATA_GAPS: {stale}"
