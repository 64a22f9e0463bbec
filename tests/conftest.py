from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from tests import log_guard

if TYPE_CHECKING:
    from local.stack import LocalStack

# Property tests judge rules, not speed: on a loaded 2-core machine a slow draw or example is not a failure.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


# --- no secret in any log record (tests/log_guard.py) -------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    log_guard.install()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    log_guard.GUARD.start(item.nodeid)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """After a test's teardown, its leaks (if any) fail it: the report names the test, the logger and what."""
    outcome = yield
    if call.when != "teardown":
        return
    leaks = log_guard.GUARD.finish(item.nodeid)
    if leaks:
        report = outcome.get_result()
        report.outcome = "failed"
        report.longrepr = log_guard.describe(leaks)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Records written outside any test (collection, a module's or the session's fixtures at the very end)."""
    leaks = log_guard.GUARD.finish(log_guard.OUTSIDE)
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(log_guard.describe(leaks), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def app_functions() -> dict[str, Any]:
    """The FunctionApp's registered functions by name.

    ``get_functions()`` may be called only once per FunctionApp (a second call raises "does not have a unique
    function name"), so every test that inspects bindings shares this one session-wide result.
    """
    import function_app
    from local.host import registered_functions

    return {str(f.get_function_name()): f for f in registered_functions(function_app.app)}


def _running_stack() -> Iterator[LocalStack]:
    """The whole product in-process on the simulated tenants: the FunctionApp's own functions, the local broker,
    SQLite; timers fire only when a test fires them (``stack.host.fire``). Imported here, not at the top, so a
    test session that never asks for it does not load the local host."""
    from tests.stacks import running_stack

    with running_stack() as running:
        yield running


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """A fresh product for each test (a module with other needs, such as its own batching, defines its own)."""
    yield from _running_stack()


@pytest.fixture(scope="module")
def module_stack() -> Iterator[LocalStack]:
    """One product for a module's tests, for tests that leave nothing behind another test could see (refusals)."""
    yield from _running_stack()
