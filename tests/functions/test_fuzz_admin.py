"""Every other HTTP function the FunctionApp registers, fuzzed: the field-add request mutated field by field, and
for each of the rest random methods, route parameters, query strings, headers and bodies. The functions are
enumerated from the app, so a new endpoint is fuzzed (generically) the day it is registered.

The properties are those of every answer (``fuzz_requests.check_answer``): no 5xx, a JSON error body for a 4xx,
nothing queued unless 202, no state written unless 2xx, nothing that was sent repeated in the answer, no exception
escaping. ``FUZZ_EXAMPLES=n`` runs n examples per endpoint from a fresh seed (see ``fuzz_requests``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.stack import LocalStack
from tests.functions.fuzz_requests import (
    MARKER,
    Watch,
    answered,
    bodies,
    fuzz_settings,
    headers,
    queries,
    request,
    route_values,
    watch,
)

ADD_FIELD = {  # a column the simulated lead table has and the mapping does not, to a Marketo field to create
    "dynamics": "description",
    "marketo": "fuzzDescription",
    "one_way": True,
    "create_marketo_field": True,
    "marketo_display_name": "Description (fuzz)",
    "lookup_part": None,
    "quick_sync": {"modified_from": "2024-01-01", "modified_to": "2024-12-31T23:59:59Z", "page_size": 100},
}
SPECIFIC = {"dataverse_webhook", "marketo_webhook", "mapping_add_field"}  # fuzzed by shape (this file, the other)


def _http_functions(app_functions: dict[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (route, methods) of every HTTP-triggered function, read from its binding."""
    found = {}
    for name, fn in app_functions.items():
        trigger = fn.get_trigger()
        if trigger.get_binding_name() == "httpTrigger":
            binding = trigger.get_dict_repr()
            found[name] = (
                str(binding.get("route") or name),
                tuple(str(getattr(m, "value", m)) for m in binding.get("methods") or ("GET", "POST")),
            )
    return found


@pytest.fixture(scope="module")
def fuzzed(module_stack: LocalStack) -> Watch:
    assert module_stack.tenants is not None
    secrets = module_stack.tenants.secrets
    return watch(module_stack.services, [secrets.dataverse_webhook_secret, secrets.marketo_client_secret])


def test_every_http_function_is_fuzzed(app_functions: dict[str, Any]) -> None:
    names = set(_http_functions(app_functions))
    assert names >= SPECIFIC
    assert len(names) >= 10, "the app registers fewer HTTP functions than the fuzz expects: enumeration broke"


@fuzz_settings(300)
@given(data=st.data())
def test_the_field_add_request_is_refused_with_a_4xx_unless_it_is_whole(
    app_functions: dict[str, Any], fuzzed: Watch, data: st.DataObject
) -> None:
    call = app_functions["mapping_add_field"].get_user_function()
    entity = data.draw(st.sampled_from(["lead", "lead", "contact"]) | route_values, "entity")
    body, _ = data.draw(bodies(ADD_FIELD), "body")
    head = data.draw(headers({"content-type": "application/json"}), "headers")
    req = request("POST", f"mapping/{entity}/fields", body=body, head=head, route_params={"entity": entity})
    answered(call, req, fuzzed)


def _route_params(route: str) -> st.SearchStrategy[dict[str, str]]:
    names = re.findall(r"{(\w+)(?::\w+)?}", route)
    return st.fixed_dictionaries(dict.fromkeys(names, route_values))


def _path(route: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: str(values[m.group(1)]), route)


def _generic_requests(route: str, methods: tuple[str, ...]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    body = st.one_of(st.just(b""), bodies({"entity": "lead", "status": "open", "limit": 5}).map(lambda b: b[0]))
    head = headers({"accept": "application/json", "content-type": "application/json"})
    return st.tuples(
        st.sampled_from(methods),
        st.fixed_dictionaries({"params": queries, "route_params": _route_params(route), "body": body, "head": head}),
    )


@fuzz_settings(50)
@given(data=st.data())
def test_every_other_http_function_answers_any_request_with_a_2xx_or_a_4xx(
    app_functions: dict[str, Any], fuzzed: Watch, data: st.DataObject
) -> None:
    functions = {n: rm for n, rm in _http_functions(app_functions).items() if n not in SPECIFIC}
    for name, (route, methods) in sorted(functions.items()):
        method, kw = data.draw(_generic_requests(route, methods), name)
        path = _path(route, kw["route_params"])
        answered(app_functions[name].get_user_function(), request(method, path, **kw), fuzzed)


def test_the_marker_is_refused_by_every_name_and_id_pattern() -> None:
    """The fuzz relies on it: a value that passes validation may be named in an answer; the marker never does."""
    assert not re.fullmatch(r"[A-Za-z0-9_\-.:{}]+", MARKER)
    assert json.dumps(MARKER) == f'"{MARKER}"'
