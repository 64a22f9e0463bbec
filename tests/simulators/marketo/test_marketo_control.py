"""The control surface under ``/_simulator``: faults, outages, tokens, quota and webhooks driven over HTTP.

Each test drives the control over HTTP (in-process through ``httpx.MockTransport`` and over loopback: the ``h``
fixture runs both) and then shows the product's own client (``shared/marketo/client.py``) meeting the fault.
Every wait is on the fake clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from local.loopback import serve
from local.simulators.marketo import LimitConfig, MarketoSimulator, WebhookConfig
from local.simulators.marketo.control import CONTROLS
from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from shared.errors import RetryLater
from shared.http.backoff import Backoff
from tests.marketo_harness import FakeClock, Harness, Mode, Switchboard, marketo_harness

DESCRIBE = "/rest/v1/leads/describe.json"
IDENTITY = "/identity/oauth/token"


def control(h: Harness, method: str, path: str = "", body: object = None) -> httpx.Response:
    """A control call as curl sends it: a JSON body with no particular content type, and no token."""
    content = b"" if body is None else json.dumps(body).encode()
    return h.http.request(method, h.base_url + "/_simulator" + path, content=content)


def token(h: Harness) -> dict[str, str]:
    answer = h.http.post(
        h.base_url + IDENTITY,
        data={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET},
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def code(response: httpx.Response) -> str | None:
    body = response.json()
    return None if body["success"] else str(body["errors"][0]["code"])


def test_the_index_names_every_control_with_an_example_for_each_post(h: Harness) -> None:
    index = control(h, "GET")
    assert index.status_code == 200
    assert index.headers["content-type"] == "application/json"
    listed = {(c["method"], c["path"]) for c in index.json()["controls"]}
    assert listed == {(str(c["method"]), str(c["path"])) for c in CONTROLS}
    for route in ("/faults", "/outage", "/tokens/expire", "/tokens/revoke", "/quota", "/webhooks", "/calls"):
        assert any(path == "/_simulator" + route for _, path in listed), route
    bodies = [c for c in index.json()["controls"] if c["method"] == "POST" and "tokens" not in c["path"]]
    assert all(c.get("examples") for c in bodies)


def test_a_planned_error_code_is_retried_by_the_product_client(h: Harness) -> None:
    planned = control(h, "POST", "/faults", {"code": "606", "times": 2})
    assert planned.status_code == 201
    assert planned.json()["fault"]["times_left"] == 2
    assert [f["fault"] for f in control(h, "GET", "/faults").json()["faults"]] == ["606"]
    assert h.client.describe_leads()
    assert h.client.retries["606"] == 2
    assert control(h, "GET", "/faults").json()["faults"] == []


def test_a_planned_http_status_is_the_gateways_page(h: Harness) -> None:
    control(h, "POST", "/faults", {"status": 502, "times": 1})
    assert h.client.describe_leads()
    assert h.client.retries["502"] == 1
    assert h.sim.faults.fired["502"] == 1


def test_a_planned_1029_comes_back_as_marketos_envelope(h: Harness) -> None:
    headers = token(h)
    control(h, "POST", "/faults", {"code": 1029, "path": "/bulk/*"})
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) is None  # not a bulk path
    answer = h.http.get(h.base_url + "/bulk/v1/leads/batch/1.json", headers=headers)
    assert answer.status_code == 200
    assert answer.json()["errors"] == [{"code": "1029", "message": "Too many jobs in queue"}]


def test_a_fault_for_seconds_answers_every_matching_call_until_the_time_passes(h: Harness) -> None:
    control(h, "POST", "/faults", {"code": "611", "path": "/rest/v1/leads.json", "for_seconds": 30})
    assert h.client.describe_leads()  # another path: untouched
    with pytest.raises(RetryLater) as failed:
        h.client.sync_leads([{"email": "a@example.com"}])  # the client's backoff spends 15.5 s, all answered 611
    assert failed.value.code == "611"
    h.clock.advance(30)
    assert h.client.sync_leads([{"email": "a@example.com"}])[0].ok
    assert control(h, "GET", "/faults").json()["faults"] == []


def test_a_planned_timeout_reaches_the_client_as_a_timeout() -> None:
    # In-process the timeout is raised (no real wait); over loopback it would hold the answer in real time.
    with marketo_harness("mock") as h:
        h.client.describe_leads()
        control(h, "POST", "/faults", {"timeout": True, "path": "/rest/v1/leads.json"})
        assert h.client.sync_leads([{"email": "slow@example.com"}])[0].ok
        assert h.client.retries["timeout"] == 1
        assert control(h, "GET", "/calls").json()["recent_errors"][-1]["code"] == "timeout"


def test_faults_can_be_dropped_one_by_one_or_all_at_once(h: Harness) -> None:
    first = control(h, "POST", "/faults", {"code": "608", "times": 5}).json()["fault"]["id"]
    control(h, "POST", "/faults", {"code": "713", "times": 5})
    control(h, "POST", "/outage", {"seconds": 60})
    assert control(h, "DELETE", f"/faults/{first}").json() == {"cleared": 1}
    assert control(h, "DELETE", f"/faults/{first}").status_code == 404
    assert [f["fault"] for f in control(h, "GET", "/faults").json()["faults"]] == ["713", "503"]
    assert control(h, "DELETE", "/faults").json() == {"cleared": 2}
    assert h.client.describe_leads()
    assert h.client.retries == {}


def test_an_outage_answers_every_call_identity_included_until_150_seconds_pass(h: Harness) -> None:
    headers = token(h)
    started = control(h, "POST", "/outage", {"seconds": 150, "status": 503})
    assert started.status_code == 201
    assert started.json()["outage"]["ends_at"] == "2026-01-01T00:02:30Z"
    assert h.http.get(h.base_url + DESCRIBE, headers=headers).status_code == 503
    assert h.http.get(h.base_url + DESCRIBE).status_code == 503  # before any token check
    assert h.http.post(h.base_url + IDENTITY, data={"grant_type": "client_credentials"}).status_code == 503
    with pytest.raises(RetryLater) as down:
        h.client.describe_leads()  # the harness client backs off 15.5 s on the fake clock, then gives up
    assert down.value.code == "identity-503"
    assert control(h, "GET", "/outage").json()["outage"]["seconds_left"] == pytest.approx(150 - h.clock.slept)
    h.clock.advance(150 - h.clock.slept)
    assert control(h, "GET", "/outage").json() == {"outage": None}
    assert h.client.describe_leads()  # recovered: a token, then the call
    recent = control(h, "GET", "/calls").json()["recent_errors"]
    assert {(e["status"], e["code"]) for e in recent} == {(503, None)}


def test_a_patient_client_rides_out_the_outage_in_one_call(mode: Mode, loopback: tuple[Switchboard, str]) -> None:
    patient = Backoff(base=0.5, cap=20.0, budget=600.0, max_attempts=20)
    with marketo_harness(mode, loopback=loopback, backoff=patient) as h:
        h.client.describe_leads()
        control(h, "POST", "/outage", {"seconds": 150})
        assert h.client.describe_leads()
        assert h.clock.slept >= 150  # all of it waited on the fake clock
        assert h.client.retries["503"] >= 5


def test_an_outage_can_be_ended_early(h: Harness) -> None:
    control(h, "POST", "/outage", {"seconds": 3600, "status": 502})
    assert h.http.get(h.base_url + DESCRIBE).status_code == 502
    assert control(h, "DELETE", "/outage").json() == {"cleared": 1}
    assert h.client.describe_leads()


@pytest.mark.parametrize(("control_path", "rejection"), [("/tokens/expire", "602"), ("/tokens/revoke", "601")])
def test_broken_tokens_make_the_client_authenticate_again(h: Harness, control_path: str, rejection: str) -> None:
    headers = token(h)
    h.client.describe_leads()
    assert control(h, "POST", control_path).json()["next_call_gets"] == rejection
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) == rejection
    assert h.client.describe_leads()
    assert h.client.retries[rejection] == 1
    assert h.sim.calls["POST " + IDENTITY] == 3


def _lead_changes(h: Harness, count: int) -> None:
    lead = h.sim.add_lead(email="hook@example.com", title="t0")
    for n in range(count):
        h.sim.change_lead(lead, title=f"t{n + 1}")


def _collect(h: Harness) -> list[bytes]:
    sent: list[bytes] = []

    def sender(url: str, headers: Mapping[str, str], body: bytes) -> None:
        sent.append(body)

    h.sim.configure_webhook(
        WebhookConfig(url="https://func.example/api/marketo/webhook", secret=SecretStr("s")), sender
    )
    return sent


def test_webhooks_can_be_switched_off_and_on(h: Harness) -> None:
    sent = _collect(h)
    state = control(h, "POST", "/webhooks", {"enabled": False}).json()
    assert (state["enabled"], state["url"]) == (False, "https://func.example/api/marketo/webhook")
    _lead_changes(h, 2)  # a new lead and two changes: three calls Marketo would have made
    assert sent == []
    control(h, "POST", "/webhooks", {"enabled": True})
    _lead_changes(h, 0)
    assert len(sent) == 1
    state = control(h, "GET", "/webhooks").json()
    assert (state["sent"], state["suppressed"], state["dropped"]) == (1, 3, 0)


def test_a_seeded_share_of_webhooks_is_dropped_the_same_way_every_run(h: Harness) -> None:
    runs = []
    for _ in range(2):
        sent = _collect(h)
        control(h, "POST", "/webhooks", {"enabled": True, "drop": 0.3, "seed": 7})
        _lead_changes(h, 39)
        runs.append(
            [json.loads(body)["changes"][0]["newValue"] if json.loads(body)["changes"] else "new" for body in sent]
        )
    assert runs[0] == runs[1]
    assert 15 < len(runs[0]) < 40  # about 70 % of the 40 calls go out
    state = control(h, "GET", "/webhooks").json()
    assert state["sent"] + state["dropped"] == 80


def test_calls_shows_endpoints_in_flight_quota_and_recent_errors(h: Harness) -> None:
    h.client.describe_leads()
    control(h, "POST", "/faults", {"code": "615"})
    h.client.describe_leads()
    seen = control(h, "GET", "/calls").json()
    assert seen["calls"] == {"GET /rest/v1/leads/describe.json": 3, "POST /identity/oauth/token": 1}
    assert (seen["total"], seen["in_flight"]) == (4, 0)
    assert (seen["quota"]["used"], seen["quota"]["limit"]) == (2, 50_000)
    assert seen["faults_fired"] == {"615": 1}
    assert seen["recent_errors"] == [
        {"at": "2026-01-01T00:00:00Z", "method": "GET", "path": DESCRIBE, "status": 200, "code": "615"}
    ]


def test_the_control_surface_needs_no_token_and_is_charged_to_no_limit() -> None:
    clock = FakeClock()
    sim = MarketoSimulator(clock=clock.time, limits=LimitConfig(calls_per_window=1, max_concurrency=1, daily_quota=1))
    with marketo_harness("mock", sim=sim, clock=clock) as h:
        for _ in range(20):
            assert control(h, "GET", "/calls").status_code == 200
            assert control(h, "GET", "/quota").status_code == 200
        assert h.client.describe_leads()  # the one call the quota allows is still there
        assert control(h, "GET", "/quota").json()["used"] == 1
        assert all(not key.split()[1].startswith("/_simulator") for key in h.sim.calls)


@pytest.mark.parametrize(
    ("method", "path", "body", "names"),
    [
        ("POST", "/faults", "{not json", "not JSON"),
        ("POST", "/faults", ["606"], "JSON object"),
        ("POST", "/faults", {"code": "606", "tims": 2}, "'tims'"),
        ("POST", "/faults", {"code": "606", "status": 502}, "exactly one of code"),
        ("POST", "/faults", {}, "exactly one of code"),
        ("POST", "/faults", {"code": "999"}, "code '999'"),
        ("POST", "/faults", {"status": 200}, "status must be between 400 and 599"),
        ("POST", "/faults", {"code": "606", "times": 0}, "times must be at least 1"),
        ("POST", "/faults", {"code": "606", "for_seconds": -5}, "for_seconds must be a positive number"),
        ("POST", "/faults", {"code": "606", "path": "rest/v1/leads.json"}, "path must be a URL path"),
        ("POST", "/faults", {"code": "606", "delay": 3}, "delay goes with timeout only"),
        ("POST", "/outage", {"status": 503}, "seconds is required"),
        ("POST", "/outage", {"seconds": "150"}, "seconds must be a positive number"),
        ("POST", "/outage", {"seconds": 150, "status": 404}, "status must be between 500 and 599"),
        ("POST", "/quota", {"remaining": 0, "used": 3}, "not both"),
        ("POST", "/quota", {"remaining": 60_000}, "more than the daily quota"),
        ("POST", "/quota", {"used": -1}, "used must be at least 0"),
        ("POST", "/quota", {}, "give remaining or used"),
        ("POST", "/webhooks", {"drop": 2}, "drop must be a share between 0 and 1"),
        ("POST", "/webhooks", {"enabled": "no"}, "enabled must be true or false"),
        ("POST", "/tokens/expire", {"all": True}, "'all'"),
    ],
)
def test_bad_input_answers_400_naming_the_problem(h: Harness, method: str, path: str, body: Any, names: str) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    answer = h.http.request(method, h.base_url + "/_simulator" + path, content=content)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "bad-request"
    assert names in error["message"]
    assert h.sim.faults.active() == []


def test_unknown_controls_are_404_and_wrong_methods_405(h: Harness) -> None:
    missing = control(h, "POST", "/explode")
    assert missing.status_code == 404
    assert "/_simulator/outage" in missing.json()["error"]["message"]
    wrong = control(h, "PUT", "/quota")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, POST")


def test_served_on_loopback_the_walk_a_user_takes_with_curl() -> None:
    clock = FakeClock()
    sim = MarketoSimulator(clock=clock.time, sleep=clock.sleep)
    with serve(sim) as mk, httpx.Client(base_url=mk) as curl:
        assert curl.post("/_simulator/outage", content=b'{"seconds": 150, "status": 503}').status_code == 201
        assert curl.get(IDENTITY).status_code == 503
        clock.advance(150)
        grant = {"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET}
        headers = {"Authorization": f"Bearer {curl.get(IDENTITY, params=grant).json()['access_token']}"}
        assert curl.get(DESCRIBE, headers=headers).json()["success"] is True
        curl.post("/_simulator/quota", content=b'{"remaining": 0}')
        assert curl.get(DESCRIBE, headers=headers).json()["errors"][0]["code"] == "607"
        seen = curl.get("/_simulator/calls").json()
        assert seen["quota"]["remaining"] == 0
        assert [(e["status"], e["code"]) for e in seen["recent_errors"]] == [(503, None), (200, "607")]
