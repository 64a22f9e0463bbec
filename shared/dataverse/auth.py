"""Entra ID client-credentials tokens for the Dataverse Web API, through MSAL, as an ``httpx.Auth`` flow.

One ``ConfidentialClientApplication`` per process (:func:`confidential_client` keeps it): MSAL caches tokens itself
and refreshes them when they near expiry. MSAL speaks ``requests``; :class:`MsalHttpAdapter` gives it the small
duck type it documents (``msal.oauth2cli.http.HttpClient``: ``get``/``post``/``close`` returning objects with
``status_code``, ``text``, ``headers`` and ``raise_for_status``) on top of an ``httpx.Client``, so the very same code
runs against Entra, the simulator over loopback, or the simulator in-process.

MSAL reports failures as dicts with ``error``/``error_description``: they become :class:`AuthenticationFailed`
(a :class:`StopSync`: a human must fix the credential) or :class:`AuthorityUnavailable` (a :class:`RetryLater`).
Neither message ever includes the secret.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import msal  # type: ignore[import-untyped]  # MSAL ships no type information

from shared.errors import RetryLater, StopSync

_TRANSIENT_ERRORS = {"temporarily_unavailable", "server_error"}


class AuthenticationFailed(StopSync):
    """Entra refused the app's credential or configuration (wrong secret, tenant, client id or scope)."""


class AuthorityUnavailable(RetryLater):
    """The identity provider could not be reached or answered 5xx; try again later."""


@dataclass(slots=True)
class MsalResponse:
    """What MSAL reads from a response (see ``msal.oauth2cli.http.Response``)."""

    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    def raise_for_status(self) -> None:
        if self.status_code >= 500:
            raise AuthorityUnavailable(f"identity provider answered HTTP {self.status_code}", code="authority")
        if self.status_code >= 400:
            raise AuthenticationFailed(f"identity provider answered HTTP {self.status_code}", code="authority")


class MsalHttpAdapter:
    """MSAL's ``http_client`` over an ``httpx.Client`` (MSAL itself would use ``requests``)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def get(
        self, url: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None, **_: Any
    ) -> MsalResponse:
        return self._send("GET", url, params=params, headers=headers)

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **_: Any,
    ) -> MsalResponse:
        return self._send("POST", url, params=params, headers=headers, data=data)

    def close(self) -> None:
        self._client.close()

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        data: Mapping[str, Any] | str | bytes | None = None,
    ) -> MsalResponse:
        clean_headers = {k: str(v) for k, v in (headers or {}).items() if v is not None}
        kwargs: dict[str, Any] = {}
        if isinstance(data, Mapping):
            # MSAL hands the client assertion over as bytes; httpx would form-encode that as "b'...'".
            kwargs["data"] = {
                k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in data.items() if v is not None
            }
        elif data is not None:
            kwargs["content"] = data
        try:
            response = self._client.request(method, url, params=dict(params or {}), headers=clean_headers, **kwargs)
        except httpx.TransportError as exc:
            raise AuthorityUnavailable(
                f"identity provider unreachable: {type(exc).__name__}", code="authority"
            ) from None
        return MsalResponse(response.status_code, response.text, dict(response.headers.items()))


def _describe(result: Mapping[str, Any]) -> str:
    description = str(result.get("error_description") or "").strip().splitlines()
    first = description[0] if description else ""
    # AADSTS descriptions run on with trace ids; the first sentence says what is wrong.
    first = first.split(". ")[0][:160]
    return f"{result.get('error')}: {first}" if first else str(result.get("error"))


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class TokenSource(Protocol):
    def token(self) -> str: ...

    def invalidate(self) -> None: ...


class MsalTokenSource:
    """Access tokens for one resource from one confidential client; thread-safe."""

    def __init__(self, app: msal.ConfidentialClientApplication, org_url: str, *, secret: str | None = None) -> None:
        self._app = app
        self._scopes = [f"{org_url.rstrip('/')}/.default"]
        self._secret = secret
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MsalTokenSource(client_id={self._app.client_id!r}, scopes={self._scopes!r})"

    def token(self) -> str:
        with self._lock:
            try:
                result = self._app.acquire_token_for_client(scopes=self._scopes)
            except (AuthenticationFailed, AuthorityUnavailable):
                raise
            except msal.exceptions.MsalServiceError as exc:  # raised on 5xx by MSAL's own response wrapper
                raise AuthorityUnavailable(
                    f"identity provider error: {_redact(str(exc), self._secret)[:160]}", code="authority"
                ) from None
        if not isinstance(result, dict):
            raise AuthenticationFailed("MSAL returned no result", code="msal")
        if "access_token" in result:
            return str(result["access_token"])
        message = _redact(_describe(result), self._secret)
        if result.get("error") in _TRANSIENT_ERRORS:
            raise AuthorityUnavailable(f"token request failed: {message}", code=str(result.get("error")))
        raise AuthenticationFailed(f"token request failed: {message}", code=str(result.get("error")))

    def invalidate(self) -> None:
        """Forget cached tokens (the resource said 401: the token was revoked or expired early)."""
        with self._lock:
            self._app.remove_tokens_for_client()


class BearerAuth(httpx.Auth):
    """Adds the bearer token; on a 401 drops the cached token and retries once with a fresh one."""

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._tokens.token()}"
        response = yield request
        if response.status_code == 401:
            self._tokens.invalidate()
            request.headers["Authorization"] = f"Bearer {self._tokens.token()}"
            yield request


def build_confidential_client(
    *,
    tenant_id: str,
    client_id: str,
    client_secret: str | None = None,
    certificate: Mapping[str, str] | None = None,
    authority_host: str = "https://login.microsoftonline.com",
    http_client: httpx.Client | None = None,
) -> msal.ConfidentialClientApplication:
    """A new MSAL app. ``certificate`` is MSAL's ``{"private_key": PEM, "thumbprint": hex}`` form.

    Instance discovery is off: the authority host is configured, not guessed, and discovery would be one more
    network call to a Microsoft endpoint the simulator (and sovereign clouds) need not serve.
    """
    if bool(client_secret) == bool(certificate):
        raise AuthenticationFailed("configure exactly one of a client secret or a certificate", code="config")
    credential: str | dict[str, str] = client_secret if client_secret else dict(certificate or {})
    try:
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=credential,
            authority=f"{authority_host.rstrip('/')}/{tenant_id}",
            http_client=MsalHttpAdapter(http_client or httpx.Client(timeout=30.0)),
            instance_discovery=False,
            validate_authority=True,
        )
    except (AuthenticationFailed, AuthorityUnavailable):
        raise
    except ValueError as exc:  # MSAL: the authority's OpenID configuration could not be read
        raise AuthenticationFailed(
            f"authority {authority_host}/{tenant_id} rejected: {_redact(str(exc), client_secret)[:200]}",
            code="authority",
        ) from None


_APPS: dict[tuple[str, str, str, str], msal.ConfidentialClientApplication] = {}
_APPS_LOCK = threading.Lock()


def confidential_client(
    *,
    tenant_id: str,
    client_id: str,
    client_secret: str | None = None,
    certificate: Mapping[str, str] | None = None,
    authority_host: str = "https://login.microsoftonline.com",
    http_client: httpx.Client | None = None,
) -> msal.ConfidentialClientApplication:
    """The process's one MSAL app for this credential (its token cache lives as long as the process)."""
    fingerprint = hashlib.sha256(
        (client_secret or "").encode() + str(sorted((certificate or {}).items())).encode()
    ).hexdigest()
    key = (authority_host.rstrip("/"), tenant_id, client_id, fingerprint)
    with _APPS_LOCK:
        app = _APPS.get(key)
        if app is None:
            app = build_confidential_client(
                tenant_id=tenant_id,
                client_id=client_id,
                client_secret=client_secret,
                certificate=certificate,
                authority_host=authority_host,
                http_client=http_client,
            )
            _APPS[key] = app
        return app


def forget_confidential_clients() -> None:
    """Drop the process's MSAL apps (a test harness that builds a fresh simulated tenant per run calls this; each
    app would otherwise keep the HTTP client, and so the tenant, it was built with)."""
    with _APPS_LOCK:
        _APPS.clear()
