"""The loopback HTTP layer answers every malformed request with a JSON 4xx/5xx, never a silent close or a hang.

Malformed requests go over a real socket (``httpx`` would refuse to send them); the timeouts are short (0.5 s)
but every assertion is on the answer, never on how long it took, and every read has a generous timeout so a
loaded machine only makes the tests slower.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from local.loopback import METHODS, LoopbackServer, ServerLimits

READ_TIMEOUT = 15.0  # seconds: only ever reached when something is broken
MARK = "ECHO-7f3a"  # put into refused requests; no answer may carry it back
SHORT = ServerLimits(max_body=1024, timeout=0.5, idle_timeout=0.5, max_connections=16, linger=1.0)


@dataclass
class Echo:
    """The handler: records what reached it, answers what it saw (or raises, on /boom)."""

    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path == "/boom":
            raise RuntimeError(f"secret detail {MARK}")
        return httpx.Response(
            200, json={"method": request.method, "path": request.url.path, "size": len(request.content)}
        )


@dataclass
class Served:
    echo: Echo
    server: LoopbackServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def address(self) -> tuple[str, int]:
        url = httpx.URL(self.url)
        return str(url.host), int(url.port or 80)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=READ_TIMEOUT)
        sock.settimeout(READ_TIMEOUT)
        return sock

    def exchange(self, data: bytes, *, close_write: bool = False) -> bytes:
        """Send ``data`` on a fresh connection and read until the server closes it."""
        with self.connect() as sock:
            sock.sendall(data)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
            return read_to_end(sock)


@pytest.fixture
def serve_echo() -> Iterator[Callable[[ServerLimits], Served]]:
    servers: list[LoopbackServer] = []

    def start(limits: ServerLimits = SHORT) -> Served:
        echo = Echo()
        server = LoopbackServer(echo, limits=limits).start()
        servers.append(server)
        return Served(echo, server)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def served(serve_echo: Callable[[ServerLimits], Served]) -> Served:
    return serve_echo(SHORT)


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def refusal(raw: bytes) -> tuple[int, str]:
    """Status and error code of a JSON refusal; asserts the shape and that nothing of the request came back."""
    assert raw, "the server closed the connection without an answer"
    status, headers, body = parse(raw)
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"}
    assert error["message"]
    assert MARK.encode() not in raw, "the answer echoes the request"
    return status, error["code"]


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + body


# --- Content-Length and the body -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "5, 5", "0x10", "1e3", "", MARK])
def test_a_content_length_that_is_not_a_decimal_number_is_a_400(served: Served, value: str) -> None:
    raw = served.exchange(request(f"POST / HTTP/1.1\nHost: a\nContent-Length: {value}\n\n"))
    assert refusal(raw) == (400, "invalid-content-length")
    assert not served.echo.seen


def test_two_different_content_lengths_are_a_400(served: Served) -> None:
    raw = served.exchange(request("POST / HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 4\n\nabcd"))
    assert refusal(raw) == (400, "invalid-content-length")


@pytest.mark.parametrize("value", ["1025", "99999999999999999999999999999999999999999999"])
def test_a_content_length_over_the_limit_is_a_413_before_any_body_is_read(served: Served, value: str) -> None:
    raw = served.exchange(request(f"POST / HTTP/1.1\nHost: a\nContent-Length: {value}\n\n"))
    assert refusal(raw) == (413, "too-large")
    assert not served.echo.seen


def test_a_413_reaches_a_client_that_is_still_sending_its_body(served: Served) -> None:
    body = b"x" * 200_000
    raw = served.exchange(request(f"POST / HTTP/1.1\nHost: a\nContent-Length: {len(body)}\n\n", body))
    assert refusal(raw) == (413, "too-large")


def test_the_limit_itself_is_accepted(served: Served) -> None:
    response = httpx.post(served.url + "/in", content=b"y" * 1024, timeout=READ_TIMEOUT)
    assert response.json() == {"method": "POST", "path": "/in", "size": 1024}


def test_an_oversized_body_announced_with_expect_100_is_refused_before_the_continue(served: Served) -> None:
    raw = served.exchange(request("POST / HTTP/1.1\nHost: a\nExpect: 100-continue\nContent-Length: 5000\n\n"))
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert refusal(raw) == (413, "too-large")


def test_chunked_transfer_encoding_is_a_411_asking_for_a_content_length(served: Served) -> None:
    raw = served.exchange(request("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n5\nhello\n0\n\n"))
    assert refusal(raw) == (411, "length-required")
    assert not served.echo.seen


def test_another_transfer_coding_is_a_501(served: Served) -> None:
    raw = served.exchange(request("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\nContent-Length: 3\n\nabc"))
    assert refusal(raw) == (501, "transfer-coding-not-implemented")


def test_a_body_shorter_than_its_content_length_times_out_with_a_408(served: Served) -> None:
    raw = served.exchange(request("POST / HTTP/1.1\nHost: a\nContent-Length: 10\n\n", b"abc"))
    assert refusal(raw) == (408, "request-timeout")
    assert not served.echo.seen


def test_a_body_cut_short_by_the_client_closing_is_a_400(served: Served) -> None:
    raw = served.exchange(request("POST / HTTP/1.1\nHost: a\nContent-Length: 10\n\n", b"abc"), close_write=True)
    assert refusal(raw) == (400, "incomplete-body")


# --- slow and idle clients ------------------------------------------------------------------------------------


def test_half_sent_headers_time_out_with_a_408(served: Served) -> None:
    raw = served.exchange(request("GET / HTTP/1.1\nHost: a\nX-Partial: "))
    assert refusal(raw) == (408, "request-timeout")


def test_a_trickle_of_bytes_does_not_extend_the_request_deadline(served: Served) -> None:
    """One byte at a time, each well within a per-read timeout: the deadline counts from the first byte."""
    line = b"GET /" + b"a" * 10_000
    with served.connect() as sock:
        for byte in line:  # at most 10,000 x 50 ms: far beyond the 0.5 s deadline, never reached if it holds
            sock.sendall(bytes([byte]))
            if select.select([sock], [], [], 0.05)[0]:
                break
        else:
            pytest.fail("the server kept reading a trickled request line")
        assert refusal(read_to_end(sock)) == (408, "request-timeout")


def test_an_idle_connection_is_closed_quietly(served: Served) -> None:
    with served.connect() as sock:
        assert read_to_end(sock) == b""


def test_an_idle_kept_alive_connection_is_closed_after_its_answer(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(request("GET /first HTTP/1.1\nHost: a\n\n"))
        raw = read_to_end(sock)  # the answer, then the close once idle
    status, headers, body = parse(raw)
    assert status == 200
    assert json.loads(body)["path"] == "/first"
    assert headers.get("connection") != "close"


def test_a_kept_alive_connection_serves_one_request_after_another(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=READ_TIMEOUT) as client:
        assert [client.get(f"/{n}").json()["path"] for n in range(3)] == ["/0", "/1", "/2"]


# --- methods, request lines, headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["OPTIONS", "PATCH", "DELETE", "PUT"])
def test_options_and_the_other_standard_methods_reach_the_handler(served: Served, method: str) -> None:
    response = httpx.request(method, served.url + "/x", timeout=READ_TIMEOUT)
    assert response.status_code == 200
    assert response.json()["method"] == method


def test_head_is_answered_without_a_body(served: Served) -> None:
    response = httpx.head(served.url + "/x", timeout=READ_TIMEOUT)
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "CONNECT", MARK])
def test_an_unknown_method_is_a_501_in_json_with_allow(served: Served, method: str) -> None:
    raw = served.exchange(request(f"{method} /x HTTP/1.1\nHost: a\n\n"))
    assert refusal(raw) == (501, "method-not-implemented")
    assert parse(raw)[1]["allow"] == ", ".join(METHODS)
    assert not served.echo.seen


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (f"G{MARK}(T / HTTP/1.1\nHost: a\n\n", (400, "bad-request")),
        (f"GET /{MARK} HTTP/1.1 extra\nHost: a\n\n", (400, "bad-request")),
        (f"GET / HTTP/9{MARK}\nHost: a\n\n", (400, "bad-request")),
        ("GET / HTTP/2.0\nHost: a\n\n", (505, "http-version-not-supported")),
        ("GET /\n\n", (400, "http-version-not-supported")),
        (f"GET {MARK} HTTP/1.1\nHost: a\n\n", (400, "malformed-target")),
        ("GET / HTTP/1.1\n\n", (400, "bad-host")),
        ("GET / HTTP/1.1\nHost: a\nHost: b\n\n", (400, "bad-host")),
        (f"GET / HTTP/1.1\nHost: a\n{MARK} no colon\nContent-Length: 5\n\n", (400, "malformed-header")),
        (f"GET / HTTP/1.1\nHost: a\nX-Folded: a\n {MARK}\n\n", (400, "malformed-header")),
        ("GET / HTTP/1.1\nHost: a\nContent-Length : 5\n\n", (400, "malformed-header")),
        (f"GET /{'a' * 70_000} HTTP/1.1\nHost: a\n\n", (414, "uri-too-long")),
        (f"GET / HTTP/1.1\nHost: a\nX-Big: {'b' * 70_000}\n\n", (431, "header-fields-too-large")),
        (
            "GET / HTTP/1.1\nHost: a\n" + "".join(f"X-{n}: {n}\n" for n in range(120)) + "\n",
            (431, "header-fields-too-large"),
        ),
    ],
)
def test_a_malformed_request_gets_a_json_refusal_that_quotes_nothing(
    served: Served, head: str, expected: tuple[int, str]
) -> None:
    assert refusal(served.exchange(request(head))) == expected
    assert not served.echo.seen


def test_empty_lines_before_a_request_line_are_skipped(served: Served) -> None:
    raw = served.exchange(request("\nGET /after HTTP/1.1\nHost: a\nConnection: close\n\n"))
    assert parse(raw)[0] == 200


def test_an_absolute_form_target_is_served_by_its_path(served: Served) -> None:
    raw = served.exchange(request("GET http://elsewhere.example/p?q=1 HTTP/1.1\nHost: a\nConnection: close\n\n"))
    assert json.loads(parse(raw)[2])["path"] == "/p"
    assert str(served.echo.seen[0].url) == served.url + "/p?q=1"


def test_a_handler_exception_is_a_500_in_json_without_its_text(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="local.loopback"):
        response = httpx.get(served.url + "/boom", timeout=READ_TIMEOUT)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "0x80040216"
    assert MARK not in response.text
    assert MARK in caplog.text, "the exception goes to the log instead"


def test_nagle_is_off_on_served_connections(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers and body go out in separate writes: with Nagle on, each answer would wait for a delayed ACK."""
    port = served.address[1]
    nodelay: list[int] = []
    original = socket.socket.setsockopt

    def spy(sock: socket.socket, level: int, option: int, value: Any) -> None:
        if (level, option) == (socket.IPPROTO_TCP, socket.TCP_NODELAY) and sock.getsockname()[1] == port:
            nodelay.append(int(value))
        original(sock, level, option, value)

    monkeypatch.setattr(socket.socket, "setsockopt", spy)
    assert httpx.get(served.url, timeout=READ_TIMEOUT).status_code == 200
    assert nodelay == [1]


# --- how many at once -----------------------------------------------------------------------------------------


def test_a_connection_beyond_the_limit_gets_a_503_with_retry_after(
    serve_echo: Callable[[ServerLimits], Served],
) -> None:
    served = serve_echo(ServerLimits(max_connections=3, timeout=READ_TIMEOUT, idle_timeout=60.0))
    held = [served.connect() for _ in range(3)]
    try:
        for sock in held:  # a full exchange each: the server has taken the connection into one of its slots
            sock.sendall(request("GET /held HTTP/1.1\nHost: a\n\n"))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        raw = served.exchange(request("GET /extra HTTP/1.1\nHost: a\n\n"))
        assert refusal(raw) == (503, "busy")
        assert parse(raw)[1]["retry-after"] == "1"
    finally:
        for sock in held:
            sock.close()
    for _ in range(1000):  # the slots free as soon as the server sees the closes; no waiting beyond that
        if parse(served.exchange(request("GET /later HTTP/1.1\nHost: a\nConnection: close\n\n")))[0] == 200:
            break
    else:
        pytest.fail("the slots of closed connections were not freed")


def test_many_half_sent_requests_do_not_take_more_threads_than_the_limit(
    serve_echo: Callable[[ServerLimits], Served],
) -> None:
    limit = 8
    served = serve_echo(ServerLimits(max_connections=limit, timeout=2.0, idle_timeout=2.0))
    before = threading.active_count()
    sockets = []
    try:
        for _ in range(60):  # sent as soon as connected: a turned-away connection drains it before it closes
            sockets.append(sock := served.connect())
            sock.sendall(request("GET / HTTP/1.1\nHost: a\nX-Half: "))
        assert threading.active_count() <= before + limit
        answers = [refusal(read_to_end(sock)) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert set(answers) <= {(408, "request-timeout"), (503, "busy")}
    assert (503, "busy") in answers
    assert httpx.get(served.url + "/after", timeout=READ_TIMEOUT).status_code == 200
