"""The simulator's own behaviour, seen through plain HTTP: limits, tokens, faults, imports and the webhook."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from local.simulators.marketo import WebhookConfig
from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from tests.marketo_harness import Harness

DESCRIBE = "/rest/v1/leads/describe.json"


def token(h: Harness) -> dict[str, str]:
    answer = h.http.post(
        h.base_url + "/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET},
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def code(response: httpx.Response) -> str | None:
    body = response.json()
    return None if body["success"] else str(body["errors"][0]["code"])


def test_identity_rejects_bad_credentials_and_reuses_live_tokens(h: Harness) -> None:
    bad = h.http.get(
        h.base_url + "/identity/oauth/token",
        params={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": "nope"},
    )
    assert bad.status_code == 401
    first = token(h)
    h.clock.advance(1000)
    again = h.http.post(
        h.base_url + "/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET},
    ).json()
    assert f"Bearer {again['access_token']}" == first["Authorization"]
    assert again["expires_in"] == 2599


def test_tokens_expire_after_an_hour(h: Harness) -> None:
    headers = token(h)
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) is None
    h.clock.advance(3600)
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) == "602"
    assert code(h.http.get(h.base_url + DESCRIBE, headers={"Authorization": "Bearer made-up"})) == "601"
    assert code(h.http.get(h.base_url + DESCRIBE)) == "601"


def test_more_than_100_calls_in_20_seconds_get_606(h: Harness) -> None:
    headers = token(h)
    answers = [code(h.http.get(h.base_url + DESCRIBE, headers=headers)) for _ in range(101)]
    assert answers[:100] == [None] * 100
    assert answers[100] == "606"
    assert h.http.get(h.base_url + DESCRIBE, headers=headers).status_code == 200  # HTTP 200 all the same
    h.clock.advance(20.001)
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) is None
    assert h.sim.calls[f"GET {DESCRIBE}"] == 103
    assert h.sim.limits.max_in_any_window() == 100


def test_daily_quota_resets_at_central_midnight(h: Harness) -> None:
    headers = token(h)
    h.sim.set_daily_quota(2)
    assert [code(h.http.get(h.base_url + DESCRIBE, headers=headers)) for _ in range(3)] == [None, None, "607"]
    h.clock.advance(6 * 3600)  # 18:00 CST + 6 h = midnight in Chicago
    h.clock.advance(1)
    headers = token(h)
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) is None


def test_uri_over_8kb_is_414_and_body_over_1mb_is_413(h: Harness) -> None:
    headers = token(h)
    long = h.http.get(
        h.base_url + "/rest/v1/leads.json", params={"filterType": "email", "filterValues": "x" * 9000}, headers=headers
    )
    assert long.status_code == 414
    big = h.http.post(
        h.base_url + "/rest/v1/leads.json",
        json={"input": [{"email": "a@x.com", "address": "y" * 1_100_000}]},
        headers=headers,
    )
    assert big.status_code == 413
    assert (h.sim.rejections["414"], h.sim.rejections["413"]) == (1, 1)


def test_faults_answer_as_marketo_does(h: Harness) -> None:
    headers = token(h)
    h.sim.faults.inject("502", path=DESCRIBE)
    h.sim.faults.inject("713", path=DESCRIBE)
    assert h.http.get(h.base_url + DESCRIBE, headers=headers).status_code == 502
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) == "713"
    assert code(h.http.get(h.base_url + DESCRIBE, headers=headers)) is None
    assert h.sim.faults.pending == 0
    with pytest.raises(ValueError, match="unknown fault"):
        h.sim.faults.inject("999")


def test_timeout_fault_raises_in_process(clock: Any) -> None:
    from local.simulators.marketo import MarketoSimulator

    sim = MarketoSimulator(clock=clock.time)
    sim.faults.inject("timeout")
    with httpx.Client(transport=httpx.MockTransport(sim)) as http:
        answer = http.post(
            "https://x.mktorest.com/identity/oauth/token",
            data={"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET},
        ).json()
        with pytest.raises(httpx.ReadTimeout):
            http.get("https://x.mktorest.com" + DESCRIBE, headers={"Authorization": f"Bearer {answer['access_token']}"})


def test_import_jobs_queue_two_at_a_time_and_refuse_past_ten(h: Harness) -> None:
    headers = token(h)

    def submit() -> httpx.Response:
        return h.http.post(
            h.base_url + "/bulk/v1/leads.json",
            data={"format": "csv"},
            files={"file": ("l.csv", b"email\na@x.com\n", "text/csv")},
            headers=headers,
        )

    ids = [submit().json()["result"][0]["batchId"] for _ in range(10)]
    assert code(submit()) == "1016"

    def states() -> list[str]:
        return [
            h.http.get(f"{h.base_url}/bulk/v1/leads/batch/{i}.json", headers=headers).json()["result"][0]["status"]
            for i in ids
        ]

    assert states() == ["Importing"] * 2 + ["Queued"] * 8
    h.clock.advance(1.0)
    assert states() == ["Complete"] * 2 + ["Importing"] * 2 + ["Queued"] * 6
    assert h.sim.imports.peak_importing == 2


def test_webhook_sends_changes_with_the_shared_secret(h: Harness) -> None:
    sent: list[tuple[str, Mapping[str, str], bytes]] = []
    config = WebhookConfig(
        url="https://func.example/api/marketo", secret=SecretStr("hook-secret"), fields=frozenset({"title"})
    )
    h.sim.configure_webhook(config, lambda url, headers, body: sent.append((url, headers, body)))
    lead = h.sim.add_lead(email="w@x.com", title="Dev")
    h.sim.change_lead(lead, city="Rome")  # not a watched field: no call
    h.client.sync_leads([{"email": "w@x.com", "title": "Lead Dev"}])
    assert len(sent) == 2
    url, headers, body = sent[1]
    assert url == config.url
    assert headers["x-sync-secret"] == "hook-secret"
    payload = json.loads(body)
    assert payload["leadId"] == lead
    assert payload["changes"] == [{"field": "title", "newValue": "Lead Dev", "oldValue": "Dev"}]
    assert payload["source"] == "Web service API"


def test_failing_webhook_receiver_is_only_counted(h: Harness) -> None:
    def broken(url: str, headers: Mapping[str, str], body: bytes) -> None:
        raise httpx.ConnectError("down")

    h.sim.configure_webhook(WebhookConfig(url="https://down.example", secret=SecretStr("s")), broken)
    assert h.client.sync_leads([{"email": "z@x.com"}])[0].ok
    assert h.sim.webhook_failures == 1
