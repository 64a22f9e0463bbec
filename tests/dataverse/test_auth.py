from __future__ import annotations

import datetime as dt

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from local.simulators.dataverse import DataverseSimulator
from shared.dataverse.auth import (
    AuthenticationFailed,
    AuthorityUnavailable,
    BearerAuth,
    MsalHttpAdapter,
    MsalTokenSource,
    build_confidential_client,
    confidential_client,
)
from shared.dataverse.client import DataverseClient
from tests.dataverse.conftest import CLIENT_ID, SECRET, Env

ORG = "https://contoso.crm.dynamics.com"


def _app(env: Env, secret: str) -> MsalTokenSource:
    app = build_confidential_client(
        tenant_id=env.sim.tenant_id,
        client_id=CLIENT_ID,
        client_secret=secret,
        http_client=httpx.Client(transport=env.authority_transport),
    )
    return MsalTokenSource(app, env.org_url, secret=secret)


def test_wrong_secret_is_a_stop_naming_the_msal_error_never_the_secret(env: Env) -> None:
    wrong = "Wr0ng~Secret.Value_that-must-not-leak"
    tokens = _app(env, wrong)
    with pytest.raises(AuthenticationFailed) as info:
        tokens.token()
    text = f"{info.value} {info.value!r} {tokens!r}"
    assert "invalid_client" in text
    assert "AADSTS7000215" in text
    assert wrong not in text
    assert SECRET not in text


def test_unknown_tenant_fails_when_the_app_is_built(env: Env) -> None:
    with pytest.raises(AuthenticationFailed, match="rejected"):
        build_confidential_client(
            tenant_id="not-my-tenant",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            http_client=httpx.Client(transport=env.authority_transport),
        )


def test_authority_outage_is_retry_later(env: Env) -> None:
    tokens = _app(env, SECRET)
    env.sim.authority.unavailable = 1
    with pytest.raises(AuthorityUnavailable):
        tokens.token()


def test_unreachable_authority_is_retry_later() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(AuthorityUnavailable):
        build_confidential_client(
            tenant_id="t",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            http_client=httpx.Client(transport=httpx.MockTransport(refuse)),
        )


def test_exactly_one_credential_is_required() -> None:
    with pytest.raises(AuthenticationFailed):
        build_confidential_client(tenant_id="t", client_id="c")


def test_certificate_credential_signs_a_client_assertion() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sync")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sim = DataverseSimulator()
    user = sim.add_app(CLIENT_ID, certificate_public_key=public)
    app = build_confidential_client(
        tenant_id=sim.tenant_id,
        client_id=CLIENT_ID,
        certificate={"private_key": pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()},  # noqa: S303
        http_client=httpx.Client(transport=httpx.MockTransport(sim)),
    )
    http = httpx.Client(transport=httpx.MockTransport(sim), auth=BearerAuth(MsalTokenSource(app, ORG)))
    assert DataverseClient(http, ORG).whoami().user_id == user


def test_one_msal_app_per_process_for_the_same_credential() -> None:
    sim = DataverseSimulator()
    sim.add_app(CLIENT_ID, secret=SECRET)
    http = httpx.Client(transport=httpx.MockTransport(sim))

    def get() -> object:
        return confidential_client(tenant_id=sim.tenant_id, client_id=CLIENT_ID, client_secret=SECRET, http_client=http)

    first = get()
    assert get() is first
    assert repr(MsalTokenSource(first, ORG)).count(SECRET) == 0


def test_adapter_speaks_msals_duck_type() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True}, headers={"X-Test": "1"})

    adapter = MsalHttpAdapter(httpx.Client(transport=httpx.MockTransport(handler)))
    response = adapter.post(
        "https://login.example/t/token",
        params={"a": "1"},
        data={"grant_type": "x", "skip": None},
        headers={"h": "v"},
        timeout=3,
    )
    assert response.status_code == 200
    assert response.text == '{"ok":true}'
    assert response.headers["x-test"] == "1"
    response.raise_for_status()
    assert seen[0].url.params["a"] == "1"
    assert seen[0].content == b"grant_type=x"
    assert adapter.get("https://login.example/x").status_code == 200
    adapter.close()
