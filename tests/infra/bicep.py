"""Reading the Bicep templates as data, offline (there is no Bicep CLI here).

pycep-parser turns a ``.bicep`` file into nested dicts. Two of its habits shape this module:

* An identifier and a string literal both come back as a plain ``str`` (``storageAccountName`` vs
  ``'managedidentity'``), so :func:`resolve` treats a string as a reference only when the file declares a
  parameter, variable or module by that name.
* Expressions (property access, function calls, operators) come back as ``{"operator": ...}`` or
  ``{"function": ...}`` dicts; :func:`resolve` follows the one shape the templates use to pass values between
  files, ``module.outputs.name``, and gives up (returns ``None``) on anything else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAIN = INFRA / "main.bicep"

Json = Any  # pycep's output: nested dicts, lists and scalars


@cache
def parse(path: Path) -> dict[str, Json]:
    """Parse once per file per process: the templates do not change during a test run."""
    # pycep types its result as a TypedDict of the grammar; the tests walk it as plain JSON.
    return cast("dict[str, Json]", BicepParser().parse(file_path=path))


def all_templates() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@dataclass(frozen=True)
class Resource:
    """One declared resource, with loop and condition wrappers peeled off."""

    file: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: Mapping[str, Json]

    @property
    def properties(self) -> Mapping[str, Json]:
        props: Mapping[str, Json] = self.body.get("properties") or {}
        return props


def _peel(config: Mapping[str, Json]) -> Mapping[str, Json]:
    """A conditional or looped resource nests its body one level deeper under ``config``."""
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def resources(path: Path | None = None) -> Iterator[Resource]:
    for file in [path] if path else all_templates():
        for symbol, declaration in (parse(file).get("resources") or {}).items():
            yield Resource(
                file=file,
                symbol=symbol,
                type=declaration["type"],
                api_version=declaration["api_version"],
                existing=bool(declaration.get("existing")),
                body=_peel(declaration["config"]),
            )


def resources_of_type(resource_type: str) -> list[Resource]:
    return [r for r in resources() if r.type.lower() == resource_type.lower() and not r.existing]


def only(resource_type: str) -> Resource:
    found = resources_of_type(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {[r.symbol for r in found]}"
    return found[0]


def module_call(module_file: Path) -> tuple[str, Mapping[str, Json]]:
    """The symbol under which main.bicep calls ``module_file``, and the params it passes."""
    for symbol, module in (parse(MAIN).get("modules") or {}).items():
        if (MAIN.parent / module["detail"]["path"]).resolve() == module_file.resolve():
            params: Mapping[str, Json] = _peel(module["config"]).get("params") or {}
            return symbol, params
    raise AssertionError(f"main.bicep does not call {module_file}")


def _module_file(symbol: str) -> Path | None:
    module = (parse(MAIN).get("modules") or {}).get(symbol)
    return None if module is None else (MAIN.parent / module["detail"]["path"]).resolve()


def _outputs_accessor(value: Json) -> tuple[str, str] | None:
    """``module.outputs.name`` as ``(module, name)``; anything else as ``None``."""
    if not isinstance(value, dict) or value.get("operator", {}).get("type") != "property_accessor":
        return None
    operands = value["operator"]["operands"]
    inner = operands["operand_2"]
    if not isinstance(operands["operand_1"], str) or not isinstance(inner, dict):
        return None
    inner_operands = inner.get("operator", {}).get("operands", {})
    if inner_operands.get("operand_1") != "outputs" or not isinstance(inner_operands.get("operand_2"), str):
        return None
    return operands["operand_1"], inner_operands["operand_2"]


def resolve(value: Json, file: Path, depth: int = 0) -> Json:
    """Follow a value through parameters, variables and module outputs to a literal, or ``None``.

    A parameter of a module resolves to what main.bicep passes for it, or else to its default.
    """
    if depth > 20:
        return None
    file = file.resolve()
    template = parse(file)
    if isinstance(value, str):
        if value in (template.get("parameters") or {}):
            if file != MAIN.resolve():
                _, passed = module_call(file)
                if value in passed:
                    return resolve(passed[value], MAIN, depth + 1)
            return resolve(template["parameters"][value].get("default"), file, depth + 1)
        if value in (template.get("variables") or {}):
            return resolve(template["variables"][value]["value"], file, depth + 1)
        return value
    if isinstance(value, (bool, int, float, list)) or value is None:
        return value
    accessor = _outputs_accessor(value)
    if accessor is not None:
        module, output = accessor
        module_file = _module_file(module) if file == MAIN.resolve() else None
        if module_file is None:
            return None
        outputs = parse(module_file).get("outputs") or {}
        if output not in outputs:
            return None
        return resolve(outputs[output]["value"], module_file, depth + 1)
    if isinstance(value, dict) and "operator" not in value and "function" not in value:
        return value  # an object literal
    return _resource_name(value, file, depth)


def _resource_name(value: Json, file: Path, depth: int) -> Json:
    """``symbol.name`` where ``symbol`` is a resource in ``file``: its declared name; ``variable.key``: the key's value."""
    if not isinstance(value, dict) or value.get("operator", {}).get("type") != "property_accessor":
        return None
    operands = value["operator"]["operands"]
    variables = parse(file).get("variables") or {}
    if operands.get("operand_1") in variables and isinstance(operands.get("operand_2"), str):
        container = resolve(operands["operand_1"], file, depth + 1)
        return resolve(container.get(operands["operand_2"]), file, depth + 1) if isinstance(container, dict) else None
    if operands.get("operand_2") != "name":
        return None
    for resource in resources(file):
        if resource.symbol == operands["operand_1"]:
            return resolve(resource.body.get("name"), file, depth + 1)
    return None


def function_app_settings() -> Mapping[str, Json]:
    """The Function App's app settings: the ``appsettings`` config resource of the Microsoft.Web/sites."""
    configs = [
        r
        for r in resources_of_type("Microsoft.Web/sites/config")
        if resolve(r.body.get("name"), r.file) == "appsettings"
    ]
    assert len(configs) == 1, "expected exactly one Microsoft.Web/sites/config named appsettings"
    return configs[0].properties


def function_app_settings_file() -> Path:
    return only("Microsoft.Web/sites").file


def resolved_setting(name: str) -> Json:
    return resolve(function_app_settings()[name], function_app_settings_file())


def declared_queue_names() -> set[str]:
    names: set[str] = set()
    for queue in resources_of_type("Microsoft.ServiceBus/namespaces/queues"):
        name = resolve(queue.body.get("name"), queue.file)
        assert isinstance(name, str), f"queue {queue.symbol}: name does not resolve to a literal"
        names.add(name)
    return names


def walk(value: Json) -> Iterator[Json]:
    """Every node of a parsed value, depth first."""
    yield value
    if isinstance(value, dict):
        for child in value.values():
            yield from walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from walk(child)
