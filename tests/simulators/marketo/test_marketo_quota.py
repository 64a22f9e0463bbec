"""The daily quota and the Usage endpoints that report it: one ledger, reset at midnight in Chicago.

Sources: the REST API page ("50,000 API calls per day (which resets daily at 12:00AM CST)"), error 607 on the
error-codes page ("Daily quota reached"), its note that a call answered with a response-level error "is not
counted against your daily quota, or your rate limit", and the Usage page (``stats/usage.json`` and friends).
The fake clock starts 2026-01-01T00:00Z, which is 2025-12-31 18:00 in Chicago.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import marketorestpython.client  # type: ignore[import-untyped,unused-ignore]
import marketorestpython.helper.http_lib  # type: ignore[import-untyped,unused-ignore]
import pytest
from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.exceptions import MarketoException  # type: ignore[import-untyped,unused-ignore]

from local.loopback import serve
from local.simulators.marketo import LimitConfig, MarketoSimulator
from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from shared.errors import QuotaExhausted
from tests.marketo_harness import FakeClock, Harness

FIXTURES = Path(__file__).parents[2] / "fixtures" / "marketo"
USAGE = "/rest/v1/stats/usage.json"
ERRORS = "/rest/v1/stats/errors.json"
DESCRIBE = "/rest/v1/leads/describe.json"
API_USER = "apis@sim.example"
CHICAGO_MIDNIGHT = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)  # 2026-01-01 00:00 CST


def token(h: Harness) -> dict[str, str]:
    answer = h.http.post(
        h.base_url + "/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET},
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def get(h: Harness, path: str, headers: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = h.http.get(h.base_url + path, headers=headers).json()
    return body


def control(h: Harness, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return h.http.request(method, h.base_url + "/_simulator" + path, content=content)


def documented(name: str) -> Any:
    recorded = json.loads((FIXTURES / name).read_text())
    assert recorded["_source"].startswith("https://experienceleague.adobe.com/")
    return recorded["response"]


def same_shape(documented: Any, simulated: Any, where: str = "$") -> None:
    """Same keys and JSON types all the way down (every simulated list item against the first documented)."""
    assert type(simulated) is type(documented), f"{where}: {type(simulated).__name__} != {type(documented).__name__}"
    if isinstance(documented, dict):
        assert set(simulated) == set(documented), f"{where}: keys {sorted(simulated)} != {sorted(documented)}"
        for key, value in documented.items():
            same_shape(value, simulated[key], f"{where}.{key}")
    elif isinstance(documented, list) and documented:
        for index, item in enumerate(simulated):
            same_shape(documented[0], item, f"{where}[{index}]")


def test_the_default_daily_quota_is_50000_reset_at_midnight_chicago() -> None:
    config = LimitConfig()
    assert (config.daily_quota, config.quota_timezone, config.quota_reset_hour) == (50_000, "America/Chicago", 0)


def test_stats_usage_counts_each_charged_call_per_api_user_itself_included(h: Harness) -> None:
    headers = token(h)
    for _ in range(3):
        h.http.get(h.base_url + DESCRIBE, headers=headers)
    usage = get(h, USAGE, headers)
    assert usage["success"] is True
    assert usage["result"] == [{"date": "2025-12-31", "total": 4, "users": [{"userId": API_USER, "count": 4}]}]
    assert get(h, USAGE, headers)["result"][0]["total"] == 5  # the stats endpoints are REST calls: charged too


def test_the_stats_answers_have_the_documented_shapes(h: Harness) -> None:
    headers = token(h)
    h.http.get(h.base_url + "/rest/v1/nothing.json", headers=headers)  # 610: one error to report
    same_shape(documented("stats_usage.json"), get(h, USAGE, headers))
    same_shape(documented("stats_errors.json"), get(h, ERRORS, headers))
    same_shape(documented("stats_usage.json"), get(h, "/rest/v1/stats/usage/last7days.json", headers))
    same_shape(documented("stats_errors.json"), get(h, "/rest/v1/stats/errors/last7days.json", headers))


def test_identity_calls_are_not_charged(h: Harness) -> None:
    for _ in range(5):
        headers = token(h)
    assert get(h, USAGE, headers)["result"][0]["total"] == 1
    assert h.sim.limits.usage.used(h.clock.time()) == 1


def test_error_answers_are_not_charged_but_are_reported_by_code(h: Harness) -> None:
    headers = token(h)
    h.http.get(h.base_url + "/rest/v1/nothing.json", headers=headers)  # 610
    h.http.get(h.base_url + DESCRIBE, headers={"Authorization": "Bearer made-up"})  # 601
    h.sim.faults.inject("611")
    h.http.get(h.base_url + DESCRIBE, headers=headers)
    h.http.post(
        h.base_url + "/rest/v1/leads.json", content=b"{", headers={**headers, "content-type": "application/json"}
    )
    assert get(h, USAGE, headers)["result"][0]["total"] == 1  # only this call
    errors = get(h, ERRORS, headers)["result"][0]
    assert errors["total"] == 4
    assert sorted((e["errorCode"], e["count"]) for e in errors["errors"]) == [
        ("601", 1),
        ("609", 1),
        ("610", 1),
        ("611", 1),
    ]
    assert h.sim.limits.max_in_any_window() == 2  # nor against the rate limit


def test_last7days_lists_the_seven_days_ending_today_newest_first(h: Harness) -> None:
    headers = token(h)
    h.http.get(h.base_url + DESCRIBE, headers=headers)
    h.http.get(h.base_url + DESCRIBE, headers=headers)
    h.clock.advance(2 * 86_400)
    headers = token(h)
    days = get(h, "/rest/v1/stats/usage/last7days.json", headers)["result"]
    assert [day["date"] for day in days] == [f"2026-01-0{n}" for n in (2, 1)] + [
        f"2025-12-{n}" for n in range(31, 26, -1)
    ]
    assert [day["total"] for day in days] == [1, 0, 2, 0, 0, 0, 0]
    assert days[1]["users"] == []


def test_607_once_the_quota_is_spent_until_midnight_in_chicago(h: Harness) -> None:
    h.client.describe_leads()
    assert control(h, "POST", "/quota", {"remaining": 0}).json()["remaining"] == 0
    with pytest.raises(QuotaExhausted) as spent:
        h.client.describe_leads()
    assert spent.value.code == "607"
    assert spent.value.resets_at == CHICAGO_MIDNIGHT  # the product's idea of the reset and the simulator's agree
    quota = control(h, "GET", "/quota").json()
    assert (quota["date"], quota["resets_at"], quota["used"]) == ("2025-12-31", "2026-01-01T06:00:00Z", 50_000)
    h.clock.advance(6 * 3600 - 1)  # 23:59:59 in Chicago: still spent
    with pytest.raises(QuotaExhausted):
        h.client.describe_leads()
    h.clock.advance(1)
    assert h.client.describe_leads()
    assert control(h, "GET", "/quota").json()["used"] == 1
    usage = get(h, USAGE, {"Authorization": f"Bearer {h.client.auth.current()}"})["result"][0]
    assert (usage["date"], usage["total"]) == ("2026-01-01", 2)


def test_quota_used_puts_stats_usage_in_step_and_607_follows(h: Harness) -> None:
    headers = token(h)
    control(h, "POST", "/quota", {"used": 49_997})
    assert get(h, USAGE, headers)["result"][0] == {
        "date": "2025-12-31",
        "total": 49_998,
        "users": [{"userId": API_USER, "count": 49_998}],
    }
    answers = [h.http.get(h.base_url + DESCRIBE, headers=headers).json() for _ in range(3)]
    assert [a["success"] for a in answers] == [True, True, False]
    assert answers[2]["errors"] == [{"code": "607", "message": "Daily quota reached"}]
    assert h.sim.rejections["607"] == 1


def test_a_smaller_quota_can_be_set_over_http(h: Harness) -> None:
    headers = token(h)
    assert control(h, "POST", "/quota", {"limit": 2}).json()["limit"] == 2
    answers = [h.http.get(h.base_url + DESCRIBE, headers=headers).json()["success"] for _ in range(3)]
    assert answers == [True, True, False]


@pytest.mark.parametrize(
    ("start", "last_spent", "zone"),
    [
        # Summer: Chicago keeps daylight time (UTC-5), so the day turns at 05:00Z.
        (datetime(2026, 7, 1, 4, 0, tzinfo=UTC), datetime(2026, 7, 1, 4, 59, 59, tzinfo=UTC), "America/Chicago"),
        (datetime(2026, 1, 1, 23, 0, tzinfo=UTC), datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC), "UTC"),
    ],
)
def test_the_reset_is_midnight_in_the_configured_zone_on_the_injected_clock(
    start: datetime, last_spent: datetime, zone: str
) -> None:
    clock = FakeClock(start.timestamp())
    sim = MarketoSimulator(clock=clock.time, sleep=clock.sleep, limits=LimitConfig(daily_quota=1, quota_timezone=zone))
    with httpx.Client(transport=httpx.MockTransport(sim), base_url="https://x.mktorest.com") as http:

        def describe() -> bool:
            answer = http.post(
                "/identity/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": SIM_CLIENT_ID,
                    "client_secret": SIM_CLIENT_SECRET,
                },
            ).json()
            reply = http.get(DESCRIBE, headers={"Authorization": f"Bearer {answer['access_token']}"}).json()
            return bool(reply["success"])

        assert describe()
        clock.advance(last_spent.timestamp() - clock.time())
        assert not describe()
        clock.advance(1)
        assert describe()


def test_the_reset_hour_is_configurable() -> None:
    clock = FakeClock()  # 2025-12-31 18:00 in Chicago
    sim = MarketoSimulator(clock=clock.time, limits=LimitConfig(quota_reset_hour=20))
    assert datetime.fromtimestamp(sim.limits.usage.resets_at(clock.time()), UTC) == datetime(
        2026, 1, 1, 2, 0, tzinfo=UTC
    )


class _SimulatedTime:
    """marketorestpython paces itself with the ``time`` module: let it pace on the fake clock instead."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def time(self) -> float:
        return self.clock.time()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MarketoSimulator, MarketoClient]]:
    clock = FakeClock()
    for module in (marketorestpython.client, marketorestpython.helper.http_lib):
        monkeypatch.setattr(module, "time", _SimulatedTime(clock))
    sim = MarketoSimulator(clock=clock.time, sleep=clock.sleep)
    with serve(sim) as url:
        client = MarketoClient("123-ABC-456", SIM_CLIENT_ID, SIM_CLIENT_SECRET, max_retry_time=0, requests_timeout=5)
        client.host = url
        yield sim, client


def test_marketorestpython_reads_the_usage_and_gets_607_once_it_is_spent(
    served: tuple[MarketoSimulator, MarketoClient],
) -> None:
    sim, client = served
    client.describe()
    assert client.get_daily_usage() == [{"date": "2025-12-31", "total": 2, "users": [{"userId": API_USER, "count": 2}]}]
    week = client.get_last_7_days_usage()
    assert (len(week), week[0]["total"]) == (7, 3)
    assert client.get_daily_errors() == [{"date": "2025-12-31", "total": 0, "errors": []}]
    with httpx.Client() as http:
        assert http.post(client.host + "/_simulator/quota", content=b'{"remaining": 0}').status_code == 200
    for call in (client.describe, client.get_daily_usage):  # the stats calls are refused with 607 as well
        with pytest.raises(MarketoException) as refused:
            call()
        assert refused.value.code == "607"
    assert sim.rejections["607"] == 2
