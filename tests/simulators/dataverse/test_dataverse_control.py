"""The control surface under ``/_simulator``: faults, outages, token expiry and plug-in step switches over HTTP.

Each test drives the control over HTTP (in-process through ``httpx.MockTransport`` and over loopback: the ``env``
fixture runs both) and then shows the product's own Dataverse client (``shared/dataverse/client.py``) meeting the
fault and recovering. Every wait is on the fake clock the simulator and the client share.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from local.loopback import serve
from local.simulators.dataverse import CapturedWebhooks, DataverseSimulator
from local.simulators.dataverse.control import CONTROLS
from shared.errors import RetryLater
from tests.dataverse import conftest as dv

Env = dv.Env


@pytest.fixture(scope="module")
def switch() -> Iterator[tuple[dv._Switch, str]]:
    board = dv._Switch()
    with serve(board) as base:
        yield board, base


@pytest.fixture(params=["in-process", "loopback"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    clock = dv.FakeClock()
    hooks = CapturedWebhooks()
    sim = DataverseSimulator(clock=clock, sender=hooks, webhook_urls=["https://func.example/api/dataverse/webhook"])
    if request.param == "in-process":
        built = dv._build("in-process", sim, clock, hooks, None)
    else:
        board, base = request.getfixturevalue("switch")
        board.target = sim
        built = dv._build("loopback", sim, clock, hooks, base)
    yield built
    built.http.close()


def control(env: Env, method: str, path: str = "", body: object = None) -> httpx.Response:
    """A control call as curl sends it: a JSON body with no particular content type, and no token."""
    content = b"" if body is None else json.dumps(body).encode()
    with httpx.Client(transport=env.api_transport) as http:
        return http.request(method, env.org_url + "/_simulator" + path, content=content)


def calls(env: Env) -> dict[str, object]:
    answer = control(env, "GET", "/calls")
    assert answer.status_code == 200
    body: dict[str, object] = answer.json()
    return body


def test_the_index_names_every_control_with_an_example_for_each_post(env: Env) -> None:
    index = control(env, "GET")
    assert index.status_code == 200
    assert index.headers["content-type"] == "application/json"
    listed = {(c["method"], c["path"]) for c in index.json()["controls"]}
    assert listed == {(str(c["method"]), str(c["path"])) for c in CONTROLS}
    for route in ("/faults", "/outage", "/tokens/expire", "/webhooks", "/calls"):
        assert any(path == "/_simulator" + route for _, path in listed), route
    posts = [c for c in index.json()["controls"] if c["method"] == "POST" and "tokens" not in c["path"]]
    assert all(c.get("examples") for c in posts)


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/faults", {}, "exactly one of status"),
        ("/faults", {"status": 429, "timeout": True}, "exactly one of status"),
        ("/faults", {"status": 200}, "status must be between 400 and 599"),
        ("/faults", {"status": 429, "code": "throttled"}, "code must be a Dataverse error code"),
        ("/faults", {"status": 503, "times": 0}, "times must be at least 1"),
        ("/faults", {"status": 503, "for_seconds": -1}, "for_seconds must be"),
        ("/faults", {"timeout": True, "retry_after": 3}, "go with status only"),
        ("/faults", {"status": 503, "delay": 3}, "delay goes with timeout only"),
        ("/faults", {"status": 503, "method": "BREW"}, "method must be"),
        ("/faults", {"status": 503, "colour": "red"}, "unknown field 'colour'"),
        ("/outage", {"status": 503}, "seconds is required"),
        ("/outage", {"seconds": 60, "status": 404}, "status must be between 500 and 599"),
        ("/outage", {"seconds": 60, "authority": "yes"}, "authority must be true or false"),
        ("/webhooks", {"drop": 1.5}, "drop must be a share between 0 and 1"),
        ("/webhooks", {}, "give enabled, drop and/or seed"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(env: Env, path: str, body: object, named: str) -> None:
    answer = control(env, "POST", path, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad-request"
    assert named in answer.json()["error"]["message"]
    assert control(env, "GET", "/faults").json() == {"faults": []}


def test_a_body_that_is_not_a_json_object_an_unknown_control_and_a_wrong_method_are_named(env: Env) -> None:
    with httpx.Client(transport=env.api_transport) as http:
        not_json = http.post(env.org_url + "/_simulator/faults", content=b"status=503")
    assert (not_json.status_code, not_json.json()["error"]["message"]) == (400, "the body is not JSON")
    assert control(env, "POST", "/faults", [1]).json()["error"]["message"] == "the body must be a JSON object"
    unknown = control(env, "GET", "/quota")
    assert unknown.status_code == 404
    assert "/_simulator/faults" in unknown.json()["error"]["message"]
    wrong = control(env, "PUT", "/outage")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET, POST, DELETE"


def test_a_429_with_its_code_and_retry_after_is_waited_out_by_the_client(env: Env) -> None:
    planned = control(env, "POST", "/faults", {"status": 429, "code": "0x80072322", "retry_after": 30})
    assert planned.status_code == 201
    assert planned.json()["fault"] | {"id": 0} == {
        "id": 0,
        "fault": 429,
        "code": "0x80072322",
        "retry_after": 30.0,
        "times_left": 1,
        "path": None,
        "method": None,
        "seconds_left": None,
        "outage": False,
        "authority": False,
        "delay": None,
    }
    assert env.client.whoami().user_id == env.app_user
    assert env.clock.sleeps == [30.0]
    seen = calls(env)
    assert seen["throttled"] == {"total": 1, "by_code": {"0x80072322": 1}}
    assert seen["faults_fired"] == {"429": 1}
    assert seen["calls"] == {"GET WhoAmI": 1, "GET openid-configuration": 1, "POST token": 1}  # the 429 not counted


def test_a_429_without_retry_after_gets_the_default_one_and_the_throttle_message(env: Env) -> None:
    control(env, "POST", "/faults", {"status": 429, "times": 2})
    answer = env.http.get(env.org_url + "/api/data/v9.2/WhoAmI")
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "5")
    assert answer.json()["error"]["code"] == "0x80072322"
    assert "6000" in answer.json()["error"]["message"]


def test_a_fault_for_seconds_lasts_that_long_on_the_simulators_clock(env: Env) -> None:
    control(env, "POST", "/faults", {"status": 503, "for_seconds": 5})
    assert control(env, "GET", "/faults").json()["faults"][0]["seconds_left"] == 5.0
    assert env.client.whoami().user_id == env.app_user
    assert sum(env.clock.sleeps[:-1]) < 5 <= sum(env.clock.sleeps)  # retried until the fault ran out, no longer
    assert control(env, "GET", "/faults").json() == {"faults": []}


def test_a_path_filter_leaves_other_calls_alone(env: Env) -> None:
    control(env, "POST", "/faults", {"status": 503, "path": "/contacts", "times": 3})
    assert env.client.whoami().user_id == env.app_user
    assert env.clock.sleeps == []
    assert control(env, "GET", "/faults").json()["faults"][0]["times_left"] == 3


def test_an_injected_timeout_is_retried(env: Env) -> None:
    control(env, "POST", "/faults", {"timeout": True, "delay": env.timeout_delay, "path": "WhoAmI"})
    assert env.impatient_client().whoami().user_id == env.app_user
    assert len(env.clock.sleeps) == 1
    assert calls(env)["faults_fired"] == {"timeout": 1}


def test_faults_are_dropped_one_by_one_or_all_at_once(env: Env) -> None:
    first = control(env, "POST", "/faults", {"status": 500, "times": 5}).json()["fault"]["id"]
    control(env, "POST", "/faults", {"status": 502})
    assert control(env, "DELETE", f"/faults/{first}").json() == {"cleared": 1}
    assert control(env, "DELETE", f"/faults/{first}").status_code == 404
    assert control(env, "DELETE", "/faults/x").status_code == 400
    assert control(env, "DELETE", "/faults").json() == {"cleared": 1}
    assert env.client.whoami().user_id == env.app_user
    assert env.clock.sleeps == []


def test_an_outage_is_ridden_out_once_its_time_has_passed_and_the_control_stays_up(env: Env) -> None:
    started = control(env, "POST", "/outage", {"seconds": 150, "status": 503})
    assert started.status_code == 201
    assert started.json()["outage"] | {"id": 0} == {"id": 0, "status": 503, "seconds_left": 150.0, "authority": False}
    with pytest.raises(RetryLater):
        env.client.whoami()  # the client's budget (60 s) is shorter than the outage
    assert control(env, "GET", "/outage").json()["outage"]["seconds_left"] == pytest.approx(150 - env.clock.now + 1000)
    env.clock.now += 150
    assert env.client.whoami().user_id == env.app_user
    assert control(env, "GET", "/outage").json() == {"outage": None}


def test_an_outage_answers_before_the_token_check_and_leaves_entra_up_unless_asked(env: Env) -> None:
    control(env, "POST", "/outage", {"seconds": 60})
    unauthenticated = httpx.Client(transport=env.api_transport).get(env.org_url + "/api/data/v9.2/WhoAmI")
    assert unauthenticated.status_code == 503
    assert env.tokens.token()  # Entra is another service: it still issues tokens
    control(env, "POST", "/outage", {"seconds": 60, "authority": True})
    token_url = f"https://login.microsoftonline.com/{env.sim.tenant_id}/oauth2/v2.0/token"
    with httpx.Client(transport=env.authority_transport) as http:
        refused = http.post(token_url, data={"grant_type": "client_credentials"})
    assert (refused.status_code, refused.json()["error"]) == (503, "temporarily_unavailable")
    assert control(env, "DELETE", "/outage").json() == {"cleared": 1}
    assert env.client.whoami().user_id == env.app_user


def test_expired_tokens_make_the_next_call_401_and_the_client_signs_in_again(env: Env) -> None:
    assert env.client.whoami().user_id == env.app_user
    assert control(env, "POST", "/tokens/expire").json() == {"expired": 1, "next_call_gets": 401}
    assert env.client.whoami().user_id == env.app_user
    assert calls(env)["tokens_issued"] == 2


def test_switched_off_plug_in_steps_post_nothing_and_the_counters_say_so(env: Env) -> None:
    env.client.create("lead", {"lastname": "Before"})
    switched = control(env, "POST", "/webhooks", {"enabled": False})
    assert switched.json()["enabled"] is False
    env.client.create("lead", {"lastname": "During"})
    assert len(env.webhooks.received) == 1
    control(env, "POST", "/webhooks", {"enabled": True})
    env.webhooks.statuses = [500]
    env.client.create("lead", {"lastname": "After"})
    hooks = calls(env)["webhooks"]
    assert isinstance(hooks, dict)
    assert {k: hooks[k] for k in ("sent", "failed", "dropped", "suppressed")} == {
        "sent": 2,
        "failed": 1,
        "dropped": 0,
        "suppressed": 1,
    }
    assert hooks["endpoints"] == ["https://func.example/api/dataverse/webhook"]


def test_a_dropped_share_is_seeded_so_the_same_posts_are_lost_every_run(env: Env) -> None:
    def lost(sim: DataverseSimulator, hooks: CapturedWebhooks, create: object) -> list[bool]:
        pattern = []
        for n in range(20):
            before = len(hooks.received)
            create(n)  # type: ignore[operator]
            pattern.append(len(hooks.received) == before)
        return pattern

    control(env, "POST", "/webhooks", {"drop": 0.3, "seed": 7})
    first = lost(env.sim, env.webhooks, lambda n: env.client.create("lead", {"lastname": f"L{n}"}))
    other_hooks = CapturedWebhooks()
    other = DataverseSimulator(sender=other_hooks, webhook_urls=["https://func.example/api/dataverse/webhook"])
    other.plugins.switch.configure(drop=0.3, seed=7)
    user = other.add_user("Dana Admin")
    second = lost(other, other_hooks, lambda n: other.user_create("lead", {"lastname": f"L{n}"}, user_id=user))
    assert first == second
    assert 0 < sum(first) < 20
    hooks = calls(env)["webhooks"]
    assert isinstance(hooks, dict)
    assert hooks["dropped"] == sum(first)


def test_control_calls_need_no_token_and_count_against_no_limit(env: Env) -> None:
    env.sim.request_limit = 2
    for _ in range(5):
        assert control(env, "GET", "/calls").status_code == 200
    assert env.client.whoami().user_id == env.app_user
    assert calls(env)["calls"] == {"GET WhoAmI": 1, "GET openid-configuration": 1, "POST token": 1}
