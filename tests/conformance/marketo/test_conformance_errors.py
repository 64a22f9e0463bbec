"""Limits and errors as marketorestpython sees them: ``success: false`` with ``errors[0].code``, retried or not
by the client's own rules (it retries 502, 604, 606, 608, 615, 713, 1016 ... with backoff, nothing else).

Its backoff retry resends the request without the token (``HttpLib`` pops ``access_token`` out of the very dict
it retries with), so a retried call is refused with 601 and recovered by ``execute()``, which calls the method
again on 601/602: the way the client's README tells integrators to call it, and what these tests do too.
"""

from __future__ import annotations

import httpx
import pytest
from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.exceptions import MarketoException  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.http_lib import HttpLib  # type: ignore[import-untyped,unused-ignore]

from local.simulators.marketo.simulator import MarketoSimulator
from tests.conformance.marketo.conftest import ClientFactory, Wiretap
from tests.marketo_harness import FakeClock, Switchboard

DESCRIBE = "/rest/v1/leads/describe.json"


def another_integration_uses_the_window(loopback: tuple[Switchboard, str], mkto: MarketoClient, calls: int) -> None:
    """Calls from another integration of the same instance, back to back: all share the 100 per 20 s."""
    mkto.authenticate()
    with httpx.Client(base_url=loopback[1], headers={"Authorization": f"Bearer {mkto.token}"}) as other:
        for _ in range(calls):
            assert other.get(DESCRIBE).json()["success"] is True


def test_a_client_pacing_itself_at_5_calls_a_second_never_meets_the_rate_limit(
    connect: ClientFactory, sim: MarketoSimulator
) -> None:
    client = connect()
    for _ in range(120):
        client.describe()
    assert sim.rejections["606"] == 0
    assert sim.limits.max_in_any_window() <= 100


def test_the_101st_call_in_20_seconds_is_606(
    mkto: MarketoClient, sim: MarketoSimulator, loopback: tuple[Switchboard, str]
) -> None:
    another_integration_uses_the_window(loopback, mkto, 99)
    mkto.describe()  # the 100th (token requests do not count)
    with pytest.raises(MarketoException) as refused:
        mkto.describe()
    assert refused.value.code == "606"
    assert refused.value.message == "Max rate limit '100' exceeded with in '20' secs"


def test_a_client_backing_off_after_606_gets_through_once_the_window_moves(
    connect: ClientFactory, sim: MarketoSimulator, loopback: tuple[Switchboard, str], clock: FakeClock
) -> None:
    client = connect()
    another_integration_uses_the_window(loopback, client, 100)
    clock.advance(19.5)  # the window frees half a second from now
    assert client.execute(method="describe")
    assert sim.rejections["606"] >= 1
    assert sim.limits.max_in_any_window() == 100


@pytest.mark.parametrize("code", ["615", "608", "713"])
def test_transient_errors_are_retried_by_the_client(connect: ClientFactory, sim: MarketoSimulator, code: str) -> None:
    client = connect()
    client.authenticate()
    sim.faults.inject(code, times=2)
    assert client.execute(method="describe")
    assert sim.faults.fired[code] == 2
    assert sim.rejections["601"] == 2  # each backoff retry went out without its token (see the module docstring)


def test_the_daily_quota_is_607_and_the_client_does_not_retry_it(
    connect: ClientFactory, sim: MarketoSimulator, wire: Wiretap
) -> None:
    client = connect()
    sim.set_daily_quota(2)
    client.describe()
    client.describe()
    with pytest.raises(MarketoException) as refused:
        client.describe()
    assert refused.value.code == "607"
    assert len(wire.to(DESCRIBE)) == 3


def test_an_endpoint_marketo_does_not_have_is_610_and_a_wrong_method_605(
    mkto: MarketoClient, sim: MarketoSimulator
) -> None:
    with pytest.raises(MarketoException) as missing:
        mkto.get_smart_campaign_by_id(1)  # an asset endpoint the simulator does not serve
    assert missing.value.code == "610"
    mkto.authenticate()
    http = HttpLib(max_retry_time_conf=0, requests_timeout=5)
    with pytest.raises(MarketoException) as wrong:
        http.post(mkto.host + DESCRIBE, {"access_token": mkto.token}, data={"input": []})
    assert wrong.value.code == "605"


def test_a_form_body_where_json_is_due_is_612(mkto: MarketoClient) -> None:
    mkto.authenticate()
    http = HttpLib(max_retry_time_conf=0, requests_timeout=5)
    with pytest.raises(MarketoException) as refused:
        http.post(mkto.host + "/rest/v1/leads.json", {"access_token": mkto.token}, {"x": "y"}, mode="nojsondumps")
    assert refused.value.code == "612"


def test_bad_query_parameters_are_1003_and_unknown_fields_1006(mkto: MarketoClient) -> None:
    with pytest.raises(MarketoException) as bad_filter:
        mkto.get_multiple_leads_by_filter_type("notAField", ["x"])
    assert bad_filter.value.code == "1003"
    with pytest.raises(MarketoException) as bad_field:
        mkto.get_multiple_leads_by_filter_type("email", ["x@example.com"], fields=["email", "ghost"])
    assert bad_field.value.code == "1006"
    with pytest.raises(MarketoException) as no_values:
        mkto.get_multiple_leads_by_filter_type("email", [])
    assert no_values.value.code == "701"


def test_record_level_errors_come_back_in_the_result_not_as_an_error(mkto: MarketoClient) -> None:
    results = mkto.create_update_leads([{"email": "ok@example.com"}, {"email": "x@example.com", "ghost": 1}])
    assert results[0]["status"] == "created"
    assert results[1] == {"status": "skipped", "reasons": [{"code": "1006", "message": "Field 'ghost' not found"}]}
