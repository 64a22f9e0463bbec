"""The layers of docs/architecture.md, checked: what each part of the code may import, and what is deployed.

Every import statement is read (module level and inside functions, plain and ``from``), resolved to the module
it names, and judged by the rule of the importing module's layer. The deployment package is what ``.funcignore``
lets through of the tracked files: it must hold no simulator, no local host and no test code.
"""

from __future__ import annotations

import ast
import fnmatch
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.python_source import parse

ROOT = Path(__file__).resolve().parent.parent
GIT = shutil.which("git") or "git"

# Third-party libraries that do I/O: the pure core imports none of them.
IO_LIBRARIES = (
    "httpx",
    "requests",
    "azure",
    "msal",
    "sqlite3",
    "socket",
    "urllib.request",
    "http",
    "pydantic_settings",
)


EVERYTHING_BUT_CORE = (
    "shared.dataverse",
    "shared.marketo",
    "shared.store",
    "shared.queueing",
    "shared.http",
    "shared.pipeline",
    "shared.services",
    "shared.settings",
    "shared.setup",
    "functions",
    "local",
    "tests",
)


@dataclass(frozen=True)
class Layer:
    name: str
    packages: tuple[str, ...]  # the layer's own modules, by dotted prefix
    forbidden: tuple[str, ...]  # what its modules must not import, by dotted prefix
    why: str


LAYERS = (
    Layer(
        "core",
        ("shared.core",),
        (*EVERYTHING_BUT_CORE, *IO_LIBRARIES),
        "the decisions are pure: values in, values out, no I/O",
    ),
    Layer(
        "errors",
        ("shared.errors",),
        (
            "shared.core",
            "shared.dataverse",
            "shared.marketo",
            "shared.store",
            "shared.pipeline",
            "shared.services",
            "functions",
            "local",
            "tests",
            *IO_LIBRARIES,
        ),
        "every layer raises and catches these, so they depend on nothing",
    ),
    Layer(
        "adapters",
        ("shared.dataverse", "shared.marketo", "shared.store", "shared.queueing", "shared.http"),
        ("shared.pipeline", "shared.services", "shared.setup", "functions", "local", "tests"),
        "adapters speak to one service each and know nothing of the orchestration above them",
    ),
    Layer(
        "pipeline",
        ("shared.pipeline",),
        ("shared.services", "shared.setup", "functions", "local", "tests", "azure.functions"),
        "the orchestration takes the ports it uses; HTTP and the composition root stay at the edge",
    ),
    Layer(
        "composition root and CLI",
        ("shared.services", "shared.settings", "shared.setup"),
        ("functions", "local", "tests"),
        "deployed code never reaches for the local host, the simulators or the tests",
    ),
    Layer(
        "admin CLI",
        ("shared.admin",),
        ("shared.core", *EVERYTHING_BUT_CORE),
        "the admin CLI speaks only the app's HTTP API, so it does the same against the local host and a deployed app",
    ),
    Layer(
        "triggers",
        ("functions", "function_app"),
        ("local", "tests"),
        "the triggers are deployed: nothing local or test-only may be imported",
    ),
    Layer(
        "simulators",
        ("local.simulators",),
        ("shared", "functions", "local.host", "local.stack", "local.tenants", "tests"),
        "a simulator shares no wire code with the product, or a bug on both sides could never be caught",
    ),
    Layer(
        "local host",
        ("local",),
        ("tests",),
        "the local host runs the product; the tests build on it, not the other way round",
    ),
)


def _tracked_python() -> list[Path]:
    out = subprocess.run(  # noqa: S603 - git with fixed arguments
        [GIT, "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if line and (ROOT / line).exists()]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    return _imports_of(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")


def _imports_of(source: str, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """Every module a source imports, with the line, relative imports resolved against its package."""
    tree = parse(source)
    package = module.split(".")
    if not is_package:
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _layer_of(module: str) -> Layer | None:
    """The most specific layer whose packages contain the module (``local.simulators`` before ``local``)."""
    matches = [
        (len(prefix), layer)
        for layer in LAYERS
        for prefix in layer.packages
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def _names(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_every_import_respects_its_layer() -> None:
    broken = []
    for path in _tracked_python():
        module = _module_name(path)
        layer = _layer_of(module)
        if layer is None:
            continue
        for line, imported in _imports(path):
            for prefix in layer.forbidden:
                if _names(imported, prefix):
                    broken.append(f"{path.relative_to(ROOT)}:{line} ({layer.name}) imports {imported}: {layer.why}")
    assert broken == []


def test_the_layer_checker_sees_relative_and_nested_imports() -> None:
    source = "def f() -> None:\n    from ..pipeline import reconcile\n    import httpx\n"
    imported = [m for _, m in _imports_of(source, "shared.core.probe", is_package=False)]
    assert imported == ["shared.pipeline", "httpx"]
    layer = _layer_of("shared.core.probe")
    assert layer is not None
    assert all(any(_names(m, f) for f in layer.forbidden) for m in imported)


def _funcignore_patterns() -> list[str]:
    lines = (ROOT / ".funcignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    """``.funcignore`` has gitignore syntax; these are the forms it uses (names, ``dir/``, globs)."""
    parts = relative.split("/")
    for pattern in patterns:
        if pattern.endswith("/"):
            name = pattern.rstrip("/")
            if any(fnmatch.fnmatch(p, name) for p in parts[:-1]):
                return True
        elif "/" in pattern:
            if fnmatch.fnmatch(relative, pattern.lstrip("/")):
                return True
        elif any(fnmatch.fnmatch(p, pattern) for p in parts):
            return True
    return False


def deployed_files() -> list[str]:
    tracked = subprocess.run([GIT, "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout  # noqa: S603
    patterns = _funcignore_patterns()
    return [f for f in tracked.splitlines() if f and not _ignored(f, patterns)]


def test_the_deployment_package_holds_no_simulator_local_host_or_test_code() -> None:
    shipped = deployed_files()
    assert "function_app.py" in shipped
    assert "host.json" in shipped
    assert any(f.startswith("shared/pipeline/") for f in shipped)
    offenders = [f for f in shipped if f.startswith(("local/", "tests/", "bench/")) or "simulator" in f]
    assert offenders == []


@pytest.mark.parametrize(
    ("path", "ignored"),
    [("local/simulators/marketo/leads.py", True), ("tests/conftest.py", True), ("shared/core/policy.py", False),
     ("local.settings.json", True), ("shared/__pycache__/x.pyc", True), ("requirements.txt", False)],
)  # fmt: skip
def test_the_funcignore_reader_follows_gitignore_forms(path: str, ignored: bool) -> None:
    assert _ignored(path, _funcignore_patterns()) is ignored


def test_no_product_file_is_over_500_lines() -> None:
    long = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in _tracked_python()
        if p.relative_to(ROOT).parts[0] in ("shared", "functions", "local")
        and (n := len(p.read_text().splitlines())) > 500
    ]
    assert long == []


def _pipeline_files() -> list[Path]:
    return [p for p in _tracked_python() if _names(_module_name(p), "shared.pipeline")]


def test_the_pipeline_speaks_no_http_and_reads_no_service_error_text() -> None:
    """HTTP answers are made in functions/ from the error tree; service errors arrive typed from the adapters, so
    the orchestration never needs a regular expression on what a service wrote."""
    found = []
    for path in _pipeline_files():
        tree = parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                names = [a.name for a in node.names] + module
            elif isinstance(node, ast.ClassDef):
                names = [node.name]
            else:
                continue
            for name in names:
                if name in ("Reply", "re", "HTTPStatus", "http"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []
