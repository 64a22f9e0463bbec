"""Serve an ``httpx``-style handler (``Request -> Response``) over real HTTP on loopback.

The simulators are written once, as handlers. In-process tests hand them to ``httpx.MockTransport``; the local
host and the over-HTTP tests serve the very same handler here, so both paths run the same code.

The HTTP layer answers every request it cannot hand over with a 4xx/5xx and a JSON body
``{"error": {"code": ..., "message": ...}}`` that names the problem and never quotes the request back, then
closes the connection (its framing can no longer be trusted):

* a ``Content-Length`` that is not a decimal number (negative included), or several that disagree: 400;
  one over :attr:`ServerLimits.max_body`: 413, without reading the body;
* ``Transfer-Encoding: chunked``: 411 (send a ``Content-Length``), any other transfer coding: 501. Dataverse and
  Marketo webhooks, the simulators' clients and the product's own clients all send a length; not decoding
  chunked bodies keeps request smuggling (length vs. coding) out of the picture entirely;
* a request (line, headers and body) that has not arrived in full :attr:`ServerLimits.timeout` seconds after its
  first byte: 408 -- a deadline per request, not per read, so trickling a byte at a time does not extend it;
* a malformed request line, header or target, a missing or repeated ``Host``, HTTP/0.9: 400; a request line over
  64 KiB: 414; header lines too long or too many: 431; HTTP/2+ on this port: 505;
* a method outside GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS: 501 with ``Allow``. OPTIONS goes to the handler
  like any method (the local host answers it as the Functions host does without CORS: no ``Access-Control-*``);
* more than :attr:`ServerLimits.max_connections` connections at once: 503 with ``Retry-After``, answered from the
  accepting thread without starting another one;
* the handler raising: 500 ``{"error": {"code": "0x80040216", ...}}`` (the Dataverse shape the simulators use);
  the exception goes to the log, never into the answer.

A kept-alive connection with no new request for :attr:`ServerLimits.idle_timeout` seconds is closed quietly.
"""

from __future__ import annotations

import email.errors
import io
import json
import logging
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

Handler = Callable[[httpx.Request], httpx.Response]
_Request = socket.socket | tuple[bytes, socket.socket]  # what socketserver hands a server: a TCP one gets the socket

log = logging.getLogger("local.loopback")

MiB = 1024 * 1024


def free_port() -> int:
    """A TCP port on the loopback interface nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DIGITS = re.compile(r"[0-9]+")
_MAX_LINE = 65536
_MAX_LINGERING = 256  # turned-away sockets draining at once (a file descriptor each, no thread)
# Lines the header parser could not take as headers (it then reads the rest as a "body": a smuggling risk). Not its
# other defects: those judge a multipart Content-Type against a body it never saw.
_HEADER_DEFECTS = (
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.FirstHeaderLineIsContinuationDefect,
    email.errors.MisplacedEnvelopeHeaderDefect,
)
_HANDLER_FAILED = {"error": {"code": "0x80040216", "message": "An unexpected error occurred; see the server log."}}

# The standard library's own refusals (parse_request), reworded: its messages quote the offending request line.
_STDLIB_REFUSALS: Mapping[int, tuple[str, str]] = {
    HTTPStatus.BAD_REQUEST: ("bad-request", "the request line is malformed"),
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: (
        "header-fields-too-large",
        "a header line is over 64 KiB or there are over 100 headers",
    ),
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: ("http-version-not-supported", "only HTTP/1.0 and HTTP/1.1 are served"),
}


@dataclass(frozen=True)
class ServerLimits:
    """What one client may take of the server. The defaults suit the simulators; the local host tightens them."""

    max_body: int = 32 * MiB  # above the simulators' own limits (Marketo imports: 10 MB), so they answer those
    timeout: float = 10.0  # seconds from a request's first byte until it must be in full; also the write timeout
    idle_timeout: float = 10.0  # seconds a kept-alive connection may wait for its next request
    max_connections: int = 128  # connections served at once (one thread each); beyond: 503
    linger: float = 1.0  # seconds to drain unread request bytes after a refusal, so the client gets to read it


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads fail once ``deadline`` (monotonic) has passed.

    A socket timeout bounds each read; this bounds them all together, so a client cannot hold a connection (and
    its thread) by sending one byte just before every timeout.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("read deadline passed")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


def _request_handler(handler: Handler, base_url: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class _Adapter(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are written separately: without TCP_NODELAY every answer waits ~40 ms for a delayed ACK.
        disable_nagle_algorithm = True
        timeout = None  # the per-request deadline of _DeadlineReader replaces a per-read timeout

        def setup(self) -> None:
            super().setup()
            self.limits = cast(_BoundedServer, self.server).limits
            self.rfile.close()  # the makefile() reader: replaced by one that keeps the request deadline
            self._reader = _DeadlineReader(self.connection)
            self._buffered = io.BufferedReader(self._reader)
            self.rfile = self._buffered
            self._responding = False
            self._length: int | None = None

        def handle_one_request(self) -> None:
            self._responding, self._length = False, None
            self.command, self.requestline, self.request_version = "", "", self.protocol_version
            try:
                self._reader.deadline = time.monotonic() + self.limits.idle_timeout
                if not self._buffered.peek(1):
                    self.close_connection = True  # the client closed between requests
                    return
            except OSError:  # idle too long (TimeoutError is an OSError), or reset: close without a word
                self.close_connection = True
                return
            self._reader.deadline = time.monotonic() + self.limits.timeout
            try:
                self._handle_request()
            except _Refusal as refusal:
                self._refuse(refusal)
            except TimeoutError:
                if not self._responding:
                    t = self.limits.timeout
                    self._refuse(_Refusal(408, "request-timeout", f"the request did not arrive in full within {t:g} s"))
                self.close_connection = True
            except OSError:  # the client went away (reset, broken pipe)
                self.close_connection = True

        def _handle_request(self) -> None:
            line = self.rfile.readline(_MAX_LINE + 1)
            for _ in range(3):  # RFC 9112 2.2: ignore empty lines before a request line
                if line not in (b"\r\n", b"\n"):
                    break
                line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise _Refusal(414, "uri-too-long", "the request line is over 64 KiB")
            if not line.strip():
                raise _Refusal(400, "bad-request", "no request line")
            self.raw_requestline = line
            if not self.parse_request():
                return  # refused already (through send_error or handle_expect_100)
            if self._length is None:
                self._check_request()
                self._length = self._body_length()
            length = self._length
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                raise _Refusal(400, "incomplete-body", "the connection ended before the body was complete")
            response, payload = self._call(self._to_request(body))
            self._respond(response, payload)

        def handle_expect_100(self) -> bool:
            """Refuse a bad length before inviting the body (curl sends ``Expect: 100-continue`` above 1 MB)."""
            try:
                self._check_request()
                self._length = self._body_length()
            except _Refusal as refusal:
                self._refuse(refusal)
                return False
            return super().handle_expect_100()

        def _check_request(self) -> None:
            if self.request_version == "HTTP/0.9":
                raise _Refusal(400, "http-version-not-supported", "HTTP/0.9 requests are not served")
            method = self.command or ""
            if not _TOKEN.fullmatch(method):
                raise _Refusal(400, "bad-request", "the method is not a valid token")
            if method not in METHODS:
                raise _Refusal(
                    501,
                    "method-not-implemented",
                    "this server does not implement the method",
                    {"Allow": ", ".join(METHODS)},
                )
            headers = self.headers
            broken = any(isinstance(d, _HEADER_DEFECTS) for d in headers.defects) or headers.get_payload()
            if broken or any("\r" in v or "\n" in v for v in headers.values()):
                raise _Refusal(400, "malformed-header", "a header line is malformed (or folded)")
            hosts = headers.get_all("host") or []
            if len(hosts) > 1 or (not hosts and self.request_version != "HTTP/1.0"):
                raise _Refusal(400, "bad-host", "an HTTP/1.1 request needs exactly one Host header")

        def _body_length(self) -> int:
            """The body's length from the headers, refused unless it is one unambiguous, acceptable number."""
            if self.headers.get_all("transfer-encoding"):
                if "chunked" in ",".join(self.headers.get_all("transfer-encoding") or []).lower():
                    raise _Refusal(
                        411,
                        "length-required",
                        "chunked bodies are not accepted here; send the body with a Content-Length",
                    )
                raise _Refusal(501, "transfer-coding-not-implemented", "transfer codings are not implemented")
            values = {v.strip(" \t") for v in self.headers.get_all("content-length") or []}
            if not values:
                return 0
            if len(values) > 1:
                raise _Refusal(400, "invalid-content-length", "the request has several different Content-Length")
            value = values.pop()
            if not _DIGITS.fullmatch(value):
                raise _Refusal(400, "invalid-content-length", "Content-Length must be a non-negative decimal integer")
            limit = self.limits.max_body
            if len(value) > 15 or int(value) > limit:
                raise _Refusal(413, "too-large", f"the body is over this server's limit of {limit} bytes")
            return int(value)

        def _to_request(self, body: bytes) -> httpx.Request:
            try:
                target = self.path
                if not target.startswith("/"):
                    parts = urlsplit(target)  # the absolute form (RFC 9112 3.2.2) is allowed; nothing else
                    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
                        raise ValueError("not a path")
                    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
                return httpx.Request(self.command, base_url() + target, headers=raw, content=body)
            except Exception:
                raise _Refusal(400, "malformed-target", "the request target is not a valid path") from None

        def _call(self, request: httpx.Request) -> tuple[httpx.Response, bytes]:
            try:
                response = handler(request)
                return response, response.read()
            except Exception:  # a handler bug must show as a 500, not a hung client; the log says why
                log.exception("%s %s: the handler failed", request.method, request.url.path)
                response = httpx.Response(500, json=_HANDLER_FAILED)
                return response, response.read()

        def _respond(self, response: httpx.Response, payload: bytes) -> None:
            self._responding = True
            self.connection.settimeout(self.limits.timeout)  # a client that does not read cannot hold us
            status = response.status_code
            self.send_response(status)
            for key, value in response.headers.multi_items():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            if status >= 200 and status != HTTPStatus.NO_CONTENT:
                self.send_header("content-length", str(len(payload)))
            if self.close_connection:
                self.send_header("connection", "close")
            self.end_headers()
            if self.command != "HEAD" and status not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
                self.wfile.write(payload)

        def _refuse(self, refusal: _Refusal) -> None:
            """Answer with JSON, then half-close and drain before closing (see :func:`_linger`)."""
            self.close_connection = True
            self.request_version = self.protocol_version  # a status line even before the request line was read
            body = error_body(refusal.code, refusal.message)
            try:
                self._responding = True
                self.connection.settimeout(self.limits.timeout)
                self.send_response(refusal.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in refusal.headers.items():
                    self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                _linger(self.connection, self.limits.linger)
            except OSError:
                pass  # the client is gone; nothing left to tell it

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The standard library's refusals as JSON: its HTML page would quote the request line back."""
            status = HTTPStatus(code)
            fallback = (status.phrase.lower().replace(" ", "-"), status.phrase)
            self._refuse(_Refusal(code, *_STDLIB_REFUSALS.get(code, fallback)))

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Quiet: request logs would bury test output (and could echo query-string secrets)."""

        def log_message(self, format: str, *args: object) -> None:
            """Quiet, as :meth:`log_request`."""

    return _Adapter


def _linger(sock: socket.socket, seconds: float) -> None:
    """Half-close, then read until the client closes or ``seconds`` pass.

    Closing a socket with unread request bytes (a refused body) makes the kernel send a reset, which can destroy
    the answer in the client's buffer before it is read: a 413 would show as "connection reset".
    """
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        if not sock.recv(65536):
            return


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``limits.max_connections`` of them; beyond, a 503 from the accept loop."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst waits for accept() instead of being dropped

    def __init__(
        self, address: tuple[str, int], handler_class: type[BaseHTTPRequestHandler], limits: ServerLimits
    ) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._lingering: deque[tuple[socket.socket, float]] = deque()
        super().__init__(address, handler_class)

    def process_request(self, request: _Request, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._turn_away(request if isinstance(request, socket.socket) else request[1])
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: _Request, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _turn_away(self, sock: socket.socket) -> None:
        """503 without a thread: the answer fits the empty send buffer, and the socket drains in service_actions."""
        n = self.limits.max_connections
        body = error_body("busy", f"the server is serving its limit of {n} connections; retry shortly")
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            sock.setblocking(False)
            sock.send(head + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        self._lingering.append((sock, time.monotonic() + self.limits.linger))
        while len(self._lingering) > _MAX_LINGERING:  # a flood: the oldest go early
            oldest = self._lingering.popleft()[0]
            _still_open(oldest)  # drained first: unread bytes at close() would reset the answer away
            oldest.close()

    def service_actions(self) -> None:
        """Between accepts (every poll interval): drain the turned-away sockets, close those done or out of time."""
        now = time.monotonic()
        kept: deque[tuple[socket.socket, float]] = deque()
        for sock, until in self._lingering:
            if now < until and _still_open(sock):
                kept.append((sock, until))
            else:
                sock.close()
        self._lingering = kept

    def server_close(self) -> None:
        while self._lingering:
            self._lingering.popleft()[0].close()
        super().server_close()


def _still_open(sock: socket.socket) -> bool:
    """Read what a non-blocking socket has; False once the client has closed (or the socket failed)."""
    try:
        for _ in range(16):
            if not sock.recv(65536):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    return True


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 serving one handler; ``port=0`` picks a free port."""

    def __init__(
        self, handler: Handler, *, port: int = 0, host: str = "127.0.0.1", limits: ServerLimits | None = None
    ) -> None:
        self.limits = limits or ServerLimits()
        self._server = _BoundedServer((host, port), _request_handler(handler, lambda: self.url), self.limits)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serve(handler: Handler, *, port: int = 0, limits: ServerLimits | None = None) -> Iterator[str]:
    """Serve ``handler`` for the duration of the block; yields the base URL."""
    server = LoopbackServer(handler, port=port, limits=limits).start()
    try:
        yield server.url
    finally:
        server.stop()
