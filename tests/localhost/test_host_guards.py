"""The local host refuses what a web page on the developer's machine could make a browser send to 127.0.0.1, and
requires the function key the way the Functions host does in Azure, once one is configured.

Most tests call ``handle_http`` directly (the guards live there); the ones about what goes over the wire (OPTIONS,
the key in the query string or a header, a browser-style cross-site POST) go through the real loopback server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import httpx
import pytest

import function_app
from local.__main__ import banner
from local.broker import LocalBroker
from local.host import LocalHost, discover
from local.stack import IN_PROCESS_HOST, binding_settings
from shared.settings import Settings
from tests.stacks import running_stack

KEY = "local-key-5d1e"
EVIL = "http://evil.example"
CALLS: list[str] = []


def _answer(req: func.HttpRequest) -> func.HttpResponse:
    CALLS.append(req.method)
    return func.HttpResponse(json.dumps({"method": req.method}), mimetype="application/json")


def _build_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="hook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def hook(req: func.HttpRequest) -> func.HttpResponse:
        return _answer(req)

    @app.route(route="things", methods=["GET", "POST"])
    def things(req: func.HttpRequest) -> func.HttpResponse:
        return _answer(req)

    @app.route(route="upload", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def upload(req: func.HttpRequest) -> func.HttpResponse:
        return _answer(req)

    @app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail 9c2b")

    return app


APP = _build_app()


def make_host(**kw: Any) -> LocalHost:
    return LocalHost(APP, LocalBroker(), env={}, run_timers=False, **kw)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


@pytest.fixture
def host() -> LocalHost:
    return make_host()


@pytest.fixture
def keyed() -> LocalHost:
    return make_host(functions_key=KEY)


@pytest.fixture
def served() -> Iterator[LocalHost]:
    running = make_host(functions_key=KEY).start()
    try:
        yield running
    finally:
        running.stop()


def call(host: LocalHost, method: str, path: str, **kw: Any) -> httpx.Response:
    return host.handle_http(httpx.Request(method, f"{IN_PROCESS_HOST}/api/{path}", **kw))


def error_code(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()["error"]["code"]


# --- cross-origin writes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["things", "hook", "upload"])
def test_a_post_from_another_origin_is_refused_with_403(host: LocalHost, path: str) -> None:
    response = call(host, "POST", path, headers={"Origin": EVIL}, json={})
    assert error_code(response) == (403, "cross-origin-refused")
    assert not CALLS


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_cross_site_fetch_without_an_origin_is_refused_with_403(host: LocalHost, site: str) -> None:
    assert error_code(call(host, "POST", "things", headers={"Sec-Fetch-Site": site}))[0] == 403


@pytest.mark.parametrize("origin", ["null", "http://localhost:9", "https://functions.localhost", "file://"])
def test_an_origin_that_is_not_the_hosts_own_is_refused(host: LocalHost, origin: str) -> None:
    assert error_code(call(host, "POST", "things", headers={"Origin": origin}))[0] == 403


def test_a_post_from_the_hosts_own_origin_is_served(host: LocalHost) -> None:
    own = {"Origin": IN_PROCESS_HOST, "Sec-Fetch-Site": "same-origin"}
    assert call(host, "POST", "things", headers=own).json() == {"method": "POST"}


def test_a_get_from_another_origin_is_served_without_cors_headers(host: LocalHost) -> None:
    """Reading is not the danger (the browser keeps the answer from the page: no CORS header lets it through)."""
    response = call(host, "GET", "things", headers={"Origin": EVIL})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_a_browser_style_cross_site_form_post_over_http_is_refused(served: LocalHost) -> None:
    form = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"}
    response = httpx.post(f"{served.url}/api/things?code={KEY}", headers=form, content=b"a=1", timeout=15)
    assert error_code(response) == (403, "cross-origin-refused")
    assert not CALLS


def test_the_same_post_from_the_hosts_own_page_is_served(served: LocalHost) -> None:
    own = {"Origin": served.url, "x-functions-key": KEY}
    assert httpx.post(f"{served.url}/api/things", headers=own, json={}, timeout=15).status_code == 200
    alias = {"Origin": served.url.replace("127.0.0.1", "localhost"), "x-functions-key": KEY}
    assert httpx.post(f"{served.url}/api/things", headers=alias, json={}, timeout=15).status_code == 200


# --- OPTIONS ----------------------------------------------------------------------------------------------------


def test_options_is_a_405_with_allow_and_no_cors_headers_as_without_cors_in_azure(served: LocalHost) -> None:
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"}
    response = httpx.options(f"{served.url}/api/things", headers=preflight, timeout=15)
    assert error_code(response) == (405, "method-not-allowed")
    assert response.headers["allow"] == "GET, POST"
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    assert not CALLS


# --- form bodies --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain;charset=UTF-8"]
)
def test_a_form_body_to_a_keyed_function_is_refused_with_415(host: LocalHost, content_type: str) -> None:
    response = call(host, "POST", "things", headers={"Content-Type": content_type}, content=b"a=1")
    assert error_code(response) == (415, "unsupported-media-type")
    assert not CALLS


def test_json_or_no_body_to_a_keyed_function_is_served(host: LocalHost) -> None:
    assert call(host, "POST", "things", json={"a": 1}).status_code == 200
    assert call(host, "POST", "things").status_code == 200


def test_an_anonymous_function_takes_any_body(host: LocalHost) -> None:
    assert call(host, "POST", "hook", headers={"Content-Type": "text/plain"}, content=b"x").status_code == 200


def test_a_function_named_as_taking_forms_gets_them() -> None:
    host = make_host(form_routes={"upload"})
    form = {"Content-Type": "multipart/form-data; boundary=x"}
    assert call(host, "POST", "upload", headers=form, content=b"--x--").status_code == 200


# --- the function key -------------------------------------------------------------------------------------------


def test_without_a_configured_key_keyed_functions_are_open(host: LocalHost) -> None:
    assert not host.requires_key
    assert call(host, "GET", "things").status_code == 200


@pytest.mark.parametrize("path", ["things", "upload"])
@pytest.mark.parametrize("given", [{}, {"x-functions-key": "wrong"}, {"x-functions-key": ""}])
def test_with_a_configured_key_a_keyed_function_without_it_is_a_401(
    keyed: LocalHost, path: str, given: dict[str, str]
) -> None:
    method = "GET" if path == "things" else "POST"
    assert error_code(call(keyed, method, path, headers=given)) == (401, "unauthorized")
    assert error_code(call(keyed, method, f"{path}?code=wrong")) == (401, "unauthorized")
    assert not CALLS


def test_the_key_is_accepted_as_code_in_the_query_string(served: LocalHost) -> None:
    response = httpx.get(f"{served.url}/api/things", params={"code": KEY}, timeout=15)
    assert response.json() == {"method": "GET"}


def test_the_key_is_accepted_in_the_x_functions_key_header(served: LocalHost) -> None:
    response = httpx.get(f"{served.url}/api/things", headers={"x-functions-key": KEY}, timeout=15)
    assert response.json() == {"method": "GET"}


def test_a_refused_key_is_never_echoed(served: LocalHost) -> None:
    response = httpx.get(f"{served.url}/api/things", params={"code": "guess-4411"}, timeout=15)
    assert response.status_code == 401
    assert "guess-4411" not in response.text


def test_anonymous_functions_need_no_key_when_one_is_configured(keyed: LocalHost) -> None:
    assert call(keyed, "POST", "hook", json={}).status_code == 200


def test_the_key_comes_from_the_local_functions_key_setting() -> None:
    host = LocalHost(APP, LocalBroker(), env={"LOCAL_FUNCTIONS_KEY": KEY}, run_timers=False)
    assert host.requires_key
    assert call(host, "GET", "things").status_code == 401
    assert Settings.model_validate({"LOCAL_FUNCTIONS_KEY": KEY}).local_functions_key.get_secret_value() == KEY


def test_every_route_of_the_product_keeps_the_auth_level_of_its_binding() -> None:
    routes = {r.route: r for r in discover(function_app.app, binding_settings(Settings())).http}
    # The webhooks check their own secrets; the console's scripts and styles hold no data and a <script src>
    # cannot send the key (the pages and every API call they make need it).
    anonymous = {"health", "dataverse/webhook", "marketo/webhook", "marketo/flow/{step}", "console/assets/{name}"}
    assert {name for name, r in routes.items() if not r.needs_key} == anonymous
    assert routes["sync/pause"].auth_level == "FUNCTION"


@pytest.mark.parametrize(("key", "says"), [(KEY, "required"), ("", "not required")])
def test_the_banner_says_whether_a_key_is_required(key: str, says: str) -> None:
    stack = SimpleNamespace(settings=Settings.model_validate({}), host=make_host(functions_key=key), tenants=None)
    line = next(line for line in banner(stack).splitlines() if line.strip().startswith("key "))  # type: ignore[arg-type]
    assert line.split(maxsplit=1)[1].startswith(says)
    assert KEY not in banner(stack)  # type: ignore[arg-type]


# --- routing and failures ----------------------------------------------------------------------------------------


def test_an_unknown_path_is_a_404_and_a_wrong_method_a_405_with_allow(host: LocalHost) -> None:
    assert error_code(call(host, "GET", "nothing/here")) == (404, "not-found")
    wrong = call(host, "DELETE", "things")
    assert error_code(wrong) == (405, "method-not-allowed")
    assert wrong.headers["allow"] == "GET, POST"


def test_a_function_that_raises_is_a_500_without_the_exception_text(host: LocalHost) -> None:
    response = call(host, "GET", "boom")
    assert error_code(response) == (500, "internal")
    assert "9c2b" not in response.text


# --- the product's own admin endpoints ------------------------------------------------------------------------


def test_a_cross_site_form_post_cannot_pause_the_sync() -> None:
    """The fuzzing finding: ``<form method=post action=http://127.0.0.1:7071/api/sync/pause>`` paused the sync."""
    with running_stack() as stack:
        form = {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
        attack = stack.host.handle_http(httpx.Request("POST", f"{IN_PROCESS_HOST}/api/sync/pause", headers=form))
        assert error_code(attack) == (403, "cross-origin-refused")
        no_origin = {"Content-Type": "application/x-www-form-urlencoded"}  # an old browser, or a proxy strips it
        attack = stack.host.handle_http(httpx.Request("POST", f"{IN_PROCESS_HOST}/api/sync/pause", headers=no_origin))
        assert error_code(attack) == (415, "unsupported-media-type")
        status = stack.host.handle_http(httpx.Request("GET", f"{IN_PROCESS_HOST}/api/status"))
        assert status.json()["paused"] is False


def test_a_key_configured_for_the_local_stack_is_required_by_its_admin_routes() -> None:
    with running_stack(overrides={"LOCAL_FUNCTIONS_KEY": "stack-key-0123456789"}) as stack:
        url = f"{stack.host.url}/api/errors"
        assert stack.host.handle_http(httpx.Request("GET", url)).status_code == 401
        keyed = httpx.Request("GET", url, headers={"x-functions-key": "stack-key-0123456789"})
        assert stack.host.handle_http(keyed).status_code == 200
