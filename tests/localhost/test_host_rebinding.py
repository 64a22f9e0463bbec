"""DNS rebinding: a page whose own name is made to resolve to 127.0.0.1 is same-origin with the local host in the
browser's eyes, so only the ``Host`` header tells its requests apart. The local host serves loopback names and
addresses (any port), its own address and the names it is configured with, and refuses every other ``Host`` with
421 and the product's problem body before any routing; the in-process name (``functions.localhost``) passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.host import LocalHost, host_name, is_loopback_name
from local.stack import IN_PROCESS_HOST
from tests.localhost.test_host_guards import CALLS, _fresh_calls, host, make_host

__all__ = ["_fresh_calls", "host"]  # the fixtures, shared with the other guards' tests


def call(host: LocalHost, method: str, path: str, host_header: str | None = None, **kw: Any) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))
    if host_header is not None:
        headers["Host"] = host_header
    return host.handle_http(httpx.Request(method, f"{IN_PROCESS_HOST}/api/{path}", headers=headers, **kw))


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 421
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == "host-not-allowed"
    assert body["error"]["message"]


ALLOWED = [
    "localhost",
    "localhost:7071",
    "LocalHost:1",
    "localhost.",
    "functions.localhost",
    "app.localhost:8080",
    "127.0.0.1",
    "127.0.0.1:7071",
    "127.0.0.2:80",
    "[::1]",
    "[::1]:7071",
]
REFUSED = [
    "evil.example",
    "evil.example:7071",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "localhostx",
    "0.0.0.0:7071",
    "192.168.1.20:7071",
    "[::2]",
    "[::ffff:7f00:1]x",
    "evil@127.0.0.1",
    "127.0.0.1/path",
    "127.0.0.1:7071:1",
    "",
]


@pytest.mark.parametrize("value", ALLOWED)
def test_loopback_names_and_addresses_with_any_port_are_served(host: LocalHost, value: str) -> None:
    assert call(host, "GET", "things", value).json() == {"method": "GET"}


@pytest.mark.parametrize("value", REFUSED)
def test_any_other_host_is_refused_with_421_and_a_problem_body(host: LocalHost, value: str) -> None:
    assert_refused(call(host, "GET", "things", value))
    assert CALLS == []


@pytest.mark.parametrize(("method", "path"), [("POST", "hook"), ("GET", "nothing/here"), ("DELETE", "things")])
def test_the_refusal_comes_before_routing_and_covers_anonymous_functions(
    host: LocalHost, method: str, path: str
) -> None:
    assert_refused(call(host, method, path, "evil.example"))  # not a 404 or 405 that maps the routes
    assert CALLS == []


def test_the_refusal_comes_before_the_key_check() -> None:
    keyed = make_host(functions_key="local-key-5d1e")
    assert_refused(call(keyed, "GET", "things", "evil.example", headers={"x-functions-key": "local-key-5d1e"}))


def test_the_in_process_name_of_the_stack_passes(host: LocalHost) -> None:
    assert host.handle_http(httpx.Request("GET", f"{IN_PROCESS_HOST}/api/things")).status_code == 200


def test_names_the_host_is_configured_with_are_served() -> None:
    named = make_host(host_names=["DevBox.internal:7071"])
    assert call(named, "GET", "things", "devbox.internal").status_code == 200
    assert call(named, "GET", "things", "devbox.internal:9999").status_code == 200
    assert_refused(call(named, "GET", "things", "other.internal"))


@pytest.mark.parametrize(
    ("value", "name"),
    [("LOCALHOST:80", "localhost"), ("[::1]:1", "[::1]"), ("a.b.", "a.b"), ("a b", None), ("x:y", None)],
)
def test_host_names_are_read_without_port_in_lower_case(value: str, name: str | None) -> None:
    assert host_name(value) == name


def test_only_loopback_addresses_count_as_loopback() -> None:
    assert is_loopback_name("127.8.9.10")
    assert is_loopback_name("[::1]")
    assert not is_loopback_name("[::]")
    assert not is_loopback_name("10.0.0.1")


@pytest.fixture
def served() -> Iterator[LocalHost]:
    running = make_host().start()
    try:
        yield running
    finally:
        running.stop()


def test_over_http_the_host_header_the_client_sent_is_the_one_judged(served: LocalHost) -> None:
    with httpx.Client(base_url=served.url, timeout=5.0) as client:
        assert client.get("/api/things").json() == {"method": "GET"}  # Host: 127.0.0.1:<port>
        port = httpx.URL(served.url).port
        assert client.get("/api/things", headers={"Host": f"localhost:{port}"}).status_code == 200
        rebound = client.get("/api/things", headers={"Host": f"evil.example:{port}"})
        assert_refused(rebound)
        posted = client.post("/api/hook", headers={"Host": "evil.example"}, content=b"{}")
        assert_refused(posted)
    assert CALLS == ["GET", "GET"]
