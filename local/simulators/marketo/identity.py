"""The identity service: ``{identity}/oauth/token`` with ``grant_type=client_credentials``, and token checks.

Per the authentication page the token is asked for with GET (parameters in the query) or POST (query or form
body), lives 3600 s, and asking again while it lives returns the same token with its remaining life
(``expires_in`` counts down). Refusals are the OAuth answers of Marketo's (Spring) token endpoint, which
marketorestpython's ``authenticate()`` reads (``error`` ``unauthorized``/``invalid_client`` and
``error_description`` such as "Bad client credentials" or "No client with requested id"): HTTP 401 for the
client, 400 for the grant type. A REST call then gets 601 for an unknown token and 602 for an expired one.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable

import httpx

from local.simulators.marketo.envelope import json_response
from local.simulators.marketo.wire import Params

IDENTITY_PATH = "/identity/oauth/token"
API_USER = "apis@sim.example"  # the custom service's API-only user: the token's scope and the stats' userId


Witness = Callable[[str, str], None]
"""Told ``(what, value)`` of every credential: ``("Marketo client secret", ...)``, ``("Marketo access token", ...)``."""

_witnesses: list[Witness] = []


def witness_credentials(witness: Witness) -> None:
    """Tell ``witness`` every client secret an identity service is given and every token it issues from now on:
    the tests' log guard checks that none of them reaches a log record."""
    _witnesses.append(witness)


def _witness(what: str, value: str) -> None:
    for witness in tuple(_witnesses):
        witness(what, value)


class Identity:
    """Issues and checks access tokens for one API-only user's client id and secret."""

    def __init__(
        self, client_id: str, client_secret: str, *, clock: Callable[[], float], ttl: float, user: str = API_USER
    ) -> None:
        self.user = user
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._current: str | None = None
        _witness("Marketo client secret", client_secret)

    def token(self, params: Params) -> httpx.Response:
        client_id, secret = params.get("client_id") or "", params.get("client_secret") or ""
        if not client_id or not secret:
            return _refusal(401, "unauthorized", "Full authentication is required to access this resource")
        if client_id != self._client_id:
            return _refusal(401, "unauthorized", f"No client with requested id: {client_id}")
        if secret != self._client_secret:
            return _refusal(401, "unauthorized", "Bad client credentials")
        grant = params.get("grant_type")
        if not grant:
            return _refusal(400, "invalid_request", "Missing grant type")
        if grant != "client_credentials":
            return _refusal(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
        with self._lock:
            now = self._clock()
            token = self._current
            if token is None or self._tokens.get(token, 0.0) <= now:
                token = f"{uuid.uuid4()}:sim"
                self._tokens[token] = now + self.ttl
                self._current = token
                _witness("Marketo access token", token)
            remaining = self._tokens[token] - now
        body = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": max(0, math.ceil(remaining) - 1),
            "scope": self.user,
        }
        return json_response(200, body)

    def check(self, token: str) -> str | None:
        """None for a live token, else the Marketo code: 601 unknown (or none given), 602 expired."""
        with self._lock:
            expires_at = self._tokens.get(token)
        if expires_at is None:
            return "601"
        if expires_at <= self._clock():
            return "602"
        return None

    def expire_all(self) -> int:
        """Every issued token expires now; how many were still live."""
        with self._lock:
            now = self._clock()
            live = sum(1 for expiry in self._tokens.values() if expiry > now)
            self._tokens = dict.fromkeys(self._tokens, now)
            return live

    def revoke_all(self) -> int:
        """Forget every issued token; how many were still live."""
        with self._lock:
            now = self._clock()
            live = sum(1 for expiry in self._tokens.values() if expiry > now)
            self._tokens.clear()
            self._current = None
            return live


def _refusal(status: int, error: str, description: str) -> httpx.Response:
    return json_response(status, {"error": error, "error_description": description})
