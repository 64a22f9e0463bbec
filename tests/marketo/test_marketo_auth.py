from __future__ import annotations

import logging
import threading

import pytest

from local.simulators.marketo.simulator import SIM_CLIENT_SECRET
from shared.errors import StopSync
from tests.marketo_harness import Harness, Mode, Switchboard, marketo_harness

IDENTITY = "POST /identity/oauth/token"


def test_token_is_fetched_once_and_sent_as_bearer(h: Harness) -> None:
    for _ in range(5):
        h.client.describe_leads()
    assert h.sim.calls[IDENTITY] == 1
    assert h.sim.calls["GET /rest/v1/leads/describe.json"] == 5
    assert h.client.auth.current() is not None


def test_token_is_renewed_before_expiry_without_a_refetch_storm(h: Harness) -> None:
    h.client.describe_leads()
    first = h.client.auth.current()
    h.clock.advance(3600 - 30)  # inside the 60 s margin: renew now
    for _ in range(4):
        h.client.describe_leads()
    # Marketo answers an early request with the same token and its remaining life: one refetch, not four.
    assert h.sim.calls[IDENTITY] == 2
    assert h.client.auth.current() == first
    h.clock.advance(31)  # now really expired: a new token, still no 602 seen by the caller
    h.client.describe_leads()
    assert h.client.auth.current() != first
    assert h.sim.rejections["602"] == 0


@pytest.mark.parametrize(("break_tokens", "code"), [("expire_tokens", "602"), ("revoke_tokens", "601")])
def test_rejected_token_reauthenticates_once_and_retries(h: Harness, break_tokens: str, code: str) -> None:
    h.client.describe_leads()
    getattr(h.sim, break_tokens)()
    fields = h.client.describe_leads()
    assert fields
    assert h.sim.rejections[code] == 1
    assert h.sim.calls[IDENTITY] == 2
    assert h.client.retries[code] == 1


def test_a_token_rejected_twice_stops(h: Harness) -> None:
    h.client.describe_leads()
    h.sim.faults.inject("601", times=2)
    with pytest.raises(StopSync) as caught:
        h.client.describe_leads()
    assert caught.value.code == "601"


def test_one_token_request_in_flight_for_many_threads(h: Harness) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            h.client.describe_leads()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert h.sim.calls[IDENTITY] == 1


def test_wrong_secret_stops_and_never_shows_the_secret(
    mode: Mode, loopback: tuple[Switchboard, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-S3cret-value"
    with marketo_harness(mode, client_secret=wrong, loopback=loopback) as h:
        with pytest.raises(StopSync) as caught:
            h.client.describe_leads()
        assert wrong not in str(caught.value)
        assert wrong not in repr(h.client)
        assert wrong not in repr(h.client.auth)
        assert "**" in repr(h.client.auth)
    assert wrong not in caplog.text


def test_secret_stays_out_of_logs_on_success(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every request URL at INFO
    h.client.describe_leads()
    h.sim.expire_tokens()
    h.client.describe_leads()
    assert "HTTP Request" in caplog.text
    assert SIM_CLIENT_SECRET not in caplog.text


def test_get_identity_method_still_works(mode: Mode, loopback: tuple[Switchboard, str]) -> None:
    with marketo_harness(mode, identity_method="GET", loopback=loopback) as h:
        h.client.describe_leads()
        assert h.sim.calls["GET /identity/oauth/token"] == 1
