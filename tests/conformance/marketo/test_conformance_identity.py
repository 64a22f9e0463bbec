"""Identity and tokens, as marketorestpython sees them: a GET for the token, the token in a Bearer header."""

from __future__ import annotations

import pytest
from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.exceptions import MarketoException  # type: ignore[import-untyped,unused-ignore]

from local.simulators.marketo.simulator import SIM_CLIENT_ID, MarketoSimulator
from tests.conformance.marketo.conftest import ClientFactory, Wiretap
from tests.marketo_harness import FakeClock

TOKEN = "/identity/oauth/token"


def test_the_client_gets_a_client_credentials_token_by_get_and_sends_it_as_bearer(
    mkto: MarketoClient, wire: Wiretap
) -> None:
    assert mkto.describe()
    (asked,) = wire.to(TOKEN)
    assert asked.method == "GET"
    assert asked.url.params["grant_type"] == "client_credentials"
    assert asked.url.params["client_id"] == SIM_CLIENT_ID
    assert (mkto.token_type, mkto.expires_in) == ("bearer", 3599)
    (described,) = wire.to("/rest/v1/leads/describe.json")
    assert described.headers["authorization"] == f"Bearer {mkto.token}"
    assert "access_token" not in described.url.params


def test_a_live_token_is_handed_out_again_with_its_remaining_life(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock
) -> None:
    mkto.describe()
    first = mkto.token
    clock.advance(3600 - 50)  # the client renews once fewer than 60 s are left
    mkto.describe()
    assert mkto.token == first
    assert mkto.expires_in == 49
    clock.advance(50)
    mkto.describe()
    assert mkto.token != first
    assert sim.rejections["602"] == 0


@pytest.mark.parametrize(("break_tokens", "code"), [("expire_tokens", "602"), ("revoke_tokens", "601")])
def test_an_expired_or_unknown_token_is_refused_with_602_or_601(
    mkto: MarketoClient, sim: MarketoSimulator, break_tokens: str, code: str
) -> None:
    mkto.describe()
    getattr(sim, break_tokens)()
    with pytest.raises(MarketoException) as refused:
        mkto.describe()
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("secret", "client_id", "says"),
    [("wrong", SIM_CLIENT_ID, "Bad client credentials"), ("wrong", "someone-else", "No client with requested id")],
)
def test_bad_client_credentials_are_refused_with_the_oauth_error_the_client_reports(
    connect: ClientFactory, secret: str, client_id: str, says: str
) -> None:
    client = connect(client_secret=secret, client_id=client_id)
    with pytest.raises(Exception, match=says):
        client.describe()
