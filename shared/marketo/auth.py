"""Marketo identity: one cached bearer token per client, renewed before it expires and when Marketo says 601/602.

Implemented as an ``httpx.Auth`` flow so the token request travels through the same ``httpx.Client`` (and so the
same transport: real, loopback or ``MockTransport``) as every other call.

Marketo documents ``GET {identity}/oauth/token?grant_type=client_credentials&client_id=..&client_secret=..`` and
says the same call may be a POST. httpx logs every request URL at INFO ("HTTP Request: GET https://...?..."), so a
GET would write the secret into the Functions host's logs: the default is therefore POST with the same parameters
in a form body, and ``identity_method="GET"`` is there for an identity service that refuses POST; for that form,
:mod:`shared.http.redaction` masks the secret in httpx's log lines. Either way the secret never reaches an
exception message or a repr, and only the identity request carries it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import SecretStr

from shared.errors import RetryLater, StopSync
from shared.http.redaction import guard

log = logging.getLogger(__name__)
guard("httpx")  # httpx logs request URLs at INFO; the GET identity form carries the secret in its query


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    fresh_until: float


class MarketoAuth(httpx.Auth):
    """Sends ``Authorization: Bearer <token>``; fetches a token only when the cached one is stale.

    ``margin`` seconds before expiry the token counts as stale. Marketo answers an early request with the *same*
    token and its remaining life, so when that happens the token is used until it really expires (and a 602
    then forces a new one) instead of asking again on every call of its last minute.
    """

    requires_response_body = True

    def __init__(
        self,
        identity_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        *,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        identity_method: Literal["POST", "GET"] = "POST",
    ) -> None:
        self._token_url = identity_url.rstrip("/") + "/oauth/token"
        self._client_id = client_id
        self._secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        self._margin = margin
        self._clock = clock
        self._identity_method = identity_method
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"MarketoAuth(identity={self._token_url!r}, client_id={self._client_id!r}, client_secret='**********')"

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (Marketo said 601/602). With ``token``, only if it is still the cached one."""
        with self._lock:
            if token is None or (self._token is not None and self._token.value == token):
                self._token = None

    def current(self) -> str | None:
        token = self._token
        return token.value if token else None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # One token request in flight at a time: the lock is held across the yield, and other threads wait
        # for the result instead of asking the identity service themselves.
        with self._lock:
            token = self._token
            if token is None or self._clock() >= token.fresh_until:
                response = yield self._token_request()
                token = self._accept(response, previous=token)
                self._token = token
        request.headers["Authorization"] = f"Bearer {token.value}"
        yield request

    def _token_request(self) -> httpx.Request:
        params = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        headers = {"Accept": "application/json"}
        if self._identity_method == "GET":
            return httpx.Request("GET", self._token_url, params=params, headers=headers)
        return httpx.Request("POST", self._token_url, data=params, headers=headers)

    def _accept(self, response: httpx.Response, *, previous: _Token | None) -> _Token:
        self.fetches += 1
        if response.status_code in (400, 401, 403):
            raise StopSync("Marketo identity refused the client credentials", code=f"identity-{response.status_code}")
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryLater("Marketo identity service unavailable", code=f"identity-{response.status_code}")
        try:
            body = response.json()
            value = str(body["access_token"])
            expires_in = float(body["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise RetryLater("Marketo identity answered without a token", code="identity-payload") from None
        now = self._clock()
        reused = previous is not None and previous.value == value
        fresh_until = now + expires_in if reused else now + expires_in - self._margin
        log.info("marketo token %s, valid %.0f s", "reused" if reused else "issued", expires_in)
        return _Token(value=value, fresh_until=max(fresh_until, now))
