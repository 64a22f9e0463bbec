"""The simulators share no code with the product they test: a bug on both sides could never show."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.python_source import parse

SIMULATORS = Path(__file__).parents[3] / "local" / "simulators"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_simulator_module_imports_the_product() -> None:
    modules = sorted(SIMULATORS.rglob("*.py"))
    assert modules, f"no simulator modules under {SIMULATORS}"
    offenders = {
        str(path.relative_to(SIMULATORS)): sorted(n for n in _imports(path) if n == "shared" or n.startswith("shared."))
        for path in modules
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_dataverse_simulator_ships_its_recorded_tables() -> None:
    tables = SIMULATORS / "dataverse" / "tables"
    assert {p.stem for p in tables.glob("*.json")} >= {
        "lead",
        "contact",
        "account",
        "systemuser",
        "opportunity",
        "team",
    }
