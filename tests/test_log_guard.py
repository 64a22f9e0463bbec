"""The log guard of tests/log_guard.py catches what it is there to catch: a token, a client secret or a configured
secret in a message, in an argument or in exception text, at any level; and nothing else."""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

import httpx

from local.simulators.dataverse.authority import AppRegistration, Authority
from local.simulators.marketo.identity import Identity
from local.simulators.marketo.wire import Params
from local.stack import LocalStack
from tests.log_guard import GUARD

log = logging.getLogger("tests.leaky")
TENANT = "00000000-0000-0000-0000-0000000000aa"


def _dataverse_token() -> str:
    authority = Authority(tenant_id=TENANT, host="https://login.microsoftonline.com", clock=time.monotonic)
    authority.apps["app"] = AppRegistration("app", "user", secret="a-client-secret-made-up-here")
    form = "grant_type=client_credentials&client_id=app&client_secret=a-client-secret-made-up-here&scope=x/.default"
    request = httpx.Request("POST", f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token", content=form)
    return str(authority(request).json()["access_token"])


def test_a_dataverse_token_logged_at_debug_is_caught_and_named() -> None:
    token = _dataverse_token()
    with GUARD.catching() as leaks:
        log.debug("calling with Bearer %s", token)
    assert [(leak.logger, leak.level, leak.what) for leak in leaks] == [
        ("tests.leaky", "DEBUG", "Dataverse access token")
    ]
    assert token not in str(leaks[0])


def test_a_marketo_token_in_exception_text_is_caught() -> None:
    identity = Identity("client-id", "marketo-secret-made-up", clock=time.monotonic, ttl=60)
    params = Params((("client_id", "client-id"), ("client_secret", "marketo-secret-made-up"),
                     ("grant_type", "client_credentials")))  # fmt: skip
    token = identity.token(params).json()["access_token"]
    with GUARD.catching() as leaks:
        try:
            raise RuntimeError(f"GET /rest/v1/leads.json?access_token={quote(token, safe='')}")
        except RuntimeError:
            log.exception("request failed")
    assert {leak.what for leak in leaks} == {"Marketo access token (URL-encoded)"}


def test_a_client_secret_is_caught_and_an_ordinary_record_is_not() -> None:
    _dataverse_token()
    with GUARD.catching() as leaks:
        log.info("client %s signed in with a-client-secret-made", "app")  # a prefix is not the secret
        assert leaks == []
        log.warning("form: client_secret=%s", "a-client-secret-made-up-here")
    assert [leak.what for leak in leaks] == ["Dataverse client secret"]


def test_a_configured_webhook_secret_is_caught(stack: LocalStack) -> None:
    secret = stack.settings.marketo_webhook_secret.get_secret_value()
    with GUARD.catching() as leaks:
        logging.getLogger("shared.pipeline.webhooks").error("header was %r", secret)
    assert [leak.what for leak in leaks] == ["MARKETO_WEBHOOK_SECRET setting"]
