"""An Entra-like authority: OpenID configuration, instance discovery and the client-credentials token endpoint.

Enough for real MSAL to run offline: it fetches ``/{tenant}/v2.0/.well-known/openid-configuration`` when the app
is built, then POSTs ``grant_type=client_credentials`` with a secret or a signed client assertion (certificate).
Other OAuth clients send the secret as HTTP Basic (``client_secret_basic``), which Entra accepts as well.
Error bodies follow Entra's (``error``, ``error_description`` with an AADSTS code, ``error_codes``).
"""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx
import jwt  # PyJWT: MSAL depends on it for certificate credentials

Witness = Callable[[str, str], None]
"""Told ``(what, value)`` of every credential: ``("client secret", ...)``, ``("access token", ...)``."""

_witnesses: list[Witness] = []


def witness_credentials(witness: Witness) -> None:
    """Tell ``witness`` every client secret registered and every access token issued from now on, by any
    authority in this process: the tests' log guard checks that none of them reaches a log record."""
    _witnesses.append(witness)


def _witness(what: str, value: str) -> None:
    for witness in tuple(_witnesses):
        witness(what, value)


@dataclass(slots=True)
class AppRegistration:
    client_id: str
    user_id: str  # the Dataverse application user this app signs in as
    secret: str | None = None
    certificate_public_key: str | None = None  # PEM; client assertions must verify with it

    def __post_init__(self) -> None:
        if self.secret:
            _witness("Dataverse client secret", self.secret)

    def __repr__(self) -> str:
        return f"AppRegistration(client_id={self.client_id!r}, user_id={self.user_id!r})"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    client_id: str
    user_id: str
    audience: str
    expires_at: float


def _error(status: int, error: str, code: int, description: str) -> httpx.Response:
    trace = str(uuid.uuid4())
    return httpx.Response(
        status,
        json={
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {trace}",
            "error_codes": [code],
            "timestamp": "2024-01-01 00:00:00Z",
            "trace_id": trace,
            "correlation_id": trace,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def _basic_credentials(header: str) -> dict[str, str]:
    """client_secret_basic (RFC 6749 2.3.1): ``Basic base64(urlencoded id ":" urlencoded secret)``."""
    if not header.lower().startswith("basic "):
        return {}
    try:
        decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
    except ValueError:
        return {}
    client_id, colon, secret = decoded.partition(":")
    return {"client_id": unquote_plus(client_id), "client_secret": unquote_plus(secret)} if colon else {}


class Authority:
    def __init__(self, *, tenant_id: str, host: str, clock: Callable[[], float], token_lifetime: float = 3599) -> None:
        self.tenant_id = tenant_id
        self.host = host.rstrip("/")
        self._clock = clock
        self.token_lifetime = token_lifetime
        self.apps: dict[str, AppRegistration] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.issued = 0
        self.unavailable = 0  # answer this many token requests with 503 (fault injection)
        self._lock = threading.Lock()

    def handles(self, path: str) -> bool:
        return (
            path.startswith(f"/{self.tenant_id}/")
            or path.startswith("/common/")
            or path.endswith("/.well-known/openid-configuration")
            or path.endswith("/oauth2/v2.0/token")
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        tenant = path.strip("/").split("/", 1)[0]
        if path.startswith("/common/discovery/instance"):
            return self._instance_discovery()
        if tenant != self.tenant_id:
            return _error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        if path.endswith("/v2.0/.well-known/openid-configuration") and request.method == "GET":
            return httpx.Response(200, json=self.openid_configuration())
        if path.endswith("/oauth2/v2.0/token") and request.method == "POST":
            return self._token(request)
        return _error(404, "invalid_request", 900561, "The endpoint only accepts POST requests.")

    def openid_configuration(self) -> dict[str, Any]:
        base = f"{self.host}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _instance_discovery(self) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "tenant_discovery_endpoint": f"{self.host}/{self.tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [],
            },
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if self.unavailable > 0:
                self.unavailable -= 1
                return _error(503, "temporarily_unavailable", 50196, "The server is temporarily unavailable.")
        form = {k: v[0] for k, v in parse_qs(request.content.decode("utf-8")).items()}
        form |= _basic_credentials(request.headers.get("authorization", ""))
        if form.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            return _error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_id}'.",
            )
        if not self._credential_ok(app, form):
            return _error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        scope = form.get("scope", "")
        audience = next((s for s in scope.split() if s.endswith("/.default")), None)
        if audience is None:
            return _error(
                400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. Use /.default."
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.tokens[token] = IssuedToken(
                client_id, app.user_id, audience.removesuffix("/.default"), self._clock() + self.token_lifetime
            )
            self.issued += 1
        _witness("Dataverse access token", token)
        lifetime = int(self.token_lifetime)
        return httpx.Response(
            200,
            json={"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token},
        )

    def _credential_ok(self, app: AppRegistration, form: dict[str, str]) -> bool:
        if "client_secret" in form:
            return app.secret is not None and secrets.compare_digest(form["client_secret"], app.secret)
        assertion = form.get("client_assertion")
        if assertion and app.certificate_public_key:
            try:
                claims = jwt.decode(
                    assertion,
                    app.certificate_public_key,
                    algorithms=["RS256", "PS256"],
                    audience=f"{self.host}/{self.tenant_id}/oauth2/v2.0/token",
                )
            except jwt.PyJWTError:
                return False
            return bool(claims.get("iss") == app.client_id and claims.get("sub") == app.client_id)
        return False

    def token_info(self, token: str) -> IssuedToken | None:
        with self._lock:
            issued = self.tokens.get(token)
        if issued is None or issued.expires_at <= self._clock():
            return None
        return issued

    def revoke_all(self) -> None:
        """Every token issued so far stops working (like expiry or a revoked grant)."""
        with self._lock:
            self.tokens.clear()
