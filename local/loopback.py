"""Serve an ``httpx``-style handler (``Request -> Response``) over real HTTP on loopback.

The simulators are written once, as handlers. In-process tests hand them to ``httpx.MockTransport``; the local
host and the over-HTTP tests serve the very same handler here, so both paths run the same code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Handler = Callable[[httpx.Request], httpx.Response]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def _request_handler(handler: Handler, base_url: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class _Adapter(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are written separately: without TCP_NODELAY every answer waits ~40 ms for a delayed ACK.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command,
                base_url() + self.path,
                headers=[(k, v) for k, v in self.headers.items()],
                content=body,
            )
            try:
                response = handler(request)
                payload = response.read()
            except Exception as exc:  # a simulator bug must show as a 500, not a hung client
                response = httpx.Response(500, json={"error": {"code": "0x80040216", "message": repr(exc)}})
                payload = response.read()
            self.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: request logs would bury test output (and could echo query-string secrets)."""

    return _Adapter


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 serving one handler; ``port=0`` picks a free port."""

    def __init__(self, handler: Handler, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self._server = ThreadingHTTPServer((host, port), _request_handler(handler, lambda: self.url))
        self._server.daemon_threads = True
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
def serve(handler: Handler, *, port: int = 0) -> Iterator[str]:
    """Serve ``handler`` for the duration of the block; yields the base URL."""
    server = LoopbackServer(handler, port=port).start()
    try:
        yield server.url
    finally:
        server.stop()
