from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

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
