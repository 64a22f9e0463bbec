"""The FunctionApp as the Functions host sees it: registered functions, bindings, and direct calls."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest


@pytest.fixture
def functions(app_functions: dict[str, Any]) -> dict[str, Any]:
    return app_functions


def test_every_function_has_a_unique_name_and_a_trigger(functions: dict[str, Any]) -> None:
    assert "health" in functions
    for fn in functions.values():
        assert fn.get_trigger() is not None


def test_health_answers_without_calling_any_service(functions: dict[str, Any]) -> None:
    health = functions["health"].get_user_function()
    response = health(func.HttpRequest("GET", "/api/health", body=b""))
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"status": "ok"}
