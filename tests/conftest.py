from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from local.stack import LocalStack

# Property tests judge rules, not speed: on a loaded 2-core machine a slow draw or example is not a failure.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


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
    import function_app
    from local.stack import LocalStack

    running = LocalStack(function_app.app, in_process=True, run_timers=False, retry_delay=0.05).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """A fresh product for each test (a module with other needs, such as its own batching, defines its own)."""
    yield from _running_stack()


@pytest.fixture(scope="module")
def module_stack() -> Iterator[LocalStack]:
    """One product for a module's tests, for tests that leave nothing behind another test could see (refusals)."""
    yield from _running_stack()
