"""The Bicep provides what the code asks for: app settings by name, queues by name, azd wiring.

The bindings test reads the FunctionApp's registered functions (the session fixture ``app_functions``: a
FunctionApp answers ``get_functions()`` only once), so it bites as soon as a queue or timer trigger lands whose
``%SETTING%``, connection or queue the templates do not define.
"""

from __future__ import annotations

import json
import re
from typing import Any

import azure.functions as func
import pytest

from tests.infra import bicep
from tests.infra.bindings import unmet

ROOT = bicep.INFRA.parent


def _bindings(function: Any) -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = json.loads(function.get_function_json())["bindings"]
    return bindings


def _unmet_for(functions: dict[str, Any]) -> list[str]:
    settings = bicep.function_app_settings()
    queues = bicep.declared_queue_names()
    problems: list[str] = []
    for name, function in functions.items():
        problems += unmet(name, _bindings(function), settings, bicep.resolved_setting, queues)
    return problems


def test_every_binding_of_the_function_app_is_backed_by_the_bicep(app_functions: dict[str, Any]) -> None:
    assert app_functions, "the FunctionApp registers no functions"
    assert _unmet_for(app_functions) == []


def test_the_bindings_check_reports_a_missing_setting_connection_and_queue() -> None:
    """The check above must fail for the mistakes it exists to catch: shown on a throwaway FunctionApp."""
    app = func.FunctionApp()

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%NOT_A_SETTING%", connection="ServiceBusConnection")
    def unknown_setting(msg: func.ServiceBusMessage) -> None: ...

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="no-such-queue", connection="ServiceBusConnection")
    def unknown_queue(msg: func.ServiceBusMessage) -> None: ...

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%SYNC_CHANGES_QUEUE%", connection="OtherBus")
    def unknown_connection(msg: func.ServiceBusMessage) -> None: ...

    @app.timer_trigger(arg_name="timer", schedule="%NOT_A_SCHEDULE%")
    def unknown_schedule(timer: func.TimerRequest) -> None: ...

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%QUICK_SYNC_QUEUE%", connection="ServiceBusConnection")
    def fine(msg: func.ServiceBusMessage) -> None: ...

    problems = _unmet_for({str(f.get_function_name()): f for f in app.get_functions()})
    assert len(problems) == 4, problems
    assert any("%NOT_A_SETTING%" in p for p in problems)
    assert any("'no-such-queue'" in p for p in problems)
    assert any("OtherBus__fullyQualifiedNamespace" in p for p in problems)
    assert any("%NOT_A_SCHEDULE%" in p for p in problems)


EXPECTED_LITERALS = {
    "SYNC_CHANGES_QUEUE": "sync-changes",
    "QUICK_SYNC_QUEUE": "quick-sync",
    "FLOW_STEPS_QUEUE": "flow-steps",
    "STATE_STORE": "table",
    "SYNC_TARGET": "live",
    "ServiceBusConnection__credential": "managedidentity",
    "AzureWebJobsStorage__credential": "managedidentity",
}


@pytest.mark.parametrize(("name", "value"), sorted(EXPECTED_LITERALS.items()))
def test_settings_the_app_reads_hold_the_expected_values(name: str, value: str) -> None:
    assert bicep.resolved_setting(name) == value


PRESENT = (
    "ServiceBusConnection__fullyQualifiedNamespace",
    "ServiceBusConnection__clientId",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__clientId",
    "STATE_TABLE_ENDPOINT",
    "DATAVERSE_URL",
    "DATAVERSE_TENANT_ID",
    "DATAVERSE_CLIENT_ID",
    "DATAVERSE_CLIENT_SECRET",
    "DATAVERSE_WEBHOOK_SECRET",
    "MARKETO_BASE_URL",
    "MARKETO_IDENTITY_URL",
    "MARKETO_CLIENT_ID",
    "MARKETO_CLIENT_SECRET",
    "MARKETO_WEBHOOK_SECRET",
    "SYNC_MAPPING_FILE",
    "MARKETO_CALLS_PER_20S",
    "MARKETO_MAX_CONCURRENCY",
    "MARKETO_HEADROOM",
    "FUNCTIONS_MAX_INSTANCES",
    "MARKETO_CALLERS",
    "MARKETO_BUDGET",
    "MARKETO_LIVE_RESERVE_PERCENT",
    "MARKETO_DAILY_RESERVE_PERCENT",
    "MARKETO_FEED_SCHEDULE",
    "DATAVERSE_CATCHUP_SCHEDULE",
    "QUICK_SYNC_SCHEDULE",
)


@pytest.mark.parametrize("name", PRESENT)
def test_setting_is_defined(name: str) -> None:
    assert name in bicep.function_app_settings()


def test_identity_based_connections_all_use_the_one_identity() -> None:
    settings = bicep.function_app_settings()
    client_ids = {settings[n] for n in settings if n.endswith("__clientId")} | {settings["AZURE_CLIENT_ID"]}
    assert client_ids == {"identityClientId"}


def test_state_table_endpoint_is_the_table_endpoint_of_the_account() -> None:
    endpoint = bicep.resolved_setting("STATE_TABLE_ENDPOINT")
    assert endpoint == "https://${storage.name}.table.${environment().suffixes.storage}"


def test_functions_max_instances_tells_the_app_the_scale_limit() -> None:
    value = bicep.function_app_settings()["FUNCTIONS_MAX_INSTANCES"]
    site = bicep.only("Microsoft.Web/sites")
    limit = site.properties["functionAppConfig"]["scaleAndConcurrency"]["maximumInstanceCount"]
    assert value == {"function": {"type": "string", "parameters": {"value_to_convert": limit}}}


SIX_FIELD_NCRONTAB = re.compile(r"^\S+( \S+){5}$")


@pytest.mark.parametrize("name", ["MARKETO_FEED_SCHEDULE", "DATAVERSE_CATCHUP_SCHEDULE", "QUICK_SYNC_SCHEDULE"])
def test_schedules_are_six_field_ncrontab(name: str) -> None:
    schedule = bicep.resolved_setting(name)
    assert isinstance(schedule, str)
    assert SIX_FIELD_NCRONTAB.match(schedule), f"{name}={schedule!r} is not a six-field NCRONTAB expression"


def test_declared_queues_are_exactly_the_three_the_app_uses() -> None:
    assert bicep.declared_queue_names() == {"sync-changes", "quick-sync", "flow-steps"}


def test_azure_yaml_deploys_this_folder_as_the_tagged_python_function_app() -> None:
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^infra:\n  provider: bicep\n  path: infra$", text, re.MULTILINE)
    service = re.search(r"^services:\n  (\w+):\n((?:    .*\n)+)", text, re.MULTILINE)
    assert service, "azure.yaml declares no service"
    body = service.group(2)
    assert "    project: .\n" in body
    assert "    language: python\n" in body
    assert "    host: function\n" in body
    site = bicep.only("Microsoft.Web/sites")
    tag_param = site.body["tags"]["function"]["parameters"]["arg_2"]["'azd-service-name'"]
    assert bicep.resolve(tag_param, site.file) == service.group(1)


def test_parameters_file_supplies_every_required_parameter_of_main() -> None:
    supplied = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    required = {
        name for name, parameter in bicep.parse(bicep.MAIN)["parameters"].items() if parameter.get("default") is None
    }
    assert required <= set(supplied), f"main.parameters.json misses {required - set(supplied)}"
    assert set(supplied) <= set(bicep.parse(bicep.MAIN)["parameters"]), "main.parameters.json sets unknown parameters"
