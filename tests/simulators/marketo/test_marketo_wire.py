"""How the simulator reads requests and labels answers, seen through plain HTTP: parameter placement, list
parameters, the access token's two places, content types, methods, identity refusals and paging marks."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from local.simulators.marketo.simulator import SIM_CLIENT_ID, SIM_CLIENT_SECRET
from tests.marketo_harness import Harness

LEADS = "/rest/v1/leads.json"
CREDENTIALS = {"grant_type": "client_credentials", "client_id": SIM_CLIENT_ID, "client_secret": SIM_CLIENT_SECRET}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def token(h: Harness) -> str:
    return str(h.http.get(h.base_url + "/identity/oauth/token", params=CREDENTIALS).json()["access_token"])


def bearer(h: Harness) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(h)}"}


def code(response: httpx.Response) -> str | None:
    body = response.json()
    return None if body["success"] else str(body["errors"][0]["code"])


def people(h: Harness, *emails: str, **values: Any) -> list[int]:
    return [h.sim.add_lead(email=email, firstName=email[0].upper(), **values) for email in emails]


def test_json_answers_are_labelled_application_json_charset_utf_8(h: Harness) -> None:
    issued = h.http.post(h.base_url + "/identity/oauth/token", data=CREDENTIALS)
    described = h.http.get(h.base_url + "/rest/v1/leads/describe.json", headers=bearer(h))
    refused = h.http.get(h.base_url + "/rest/v1/leads/describe.json")
    for answer in (issued, described, refused):
        assert answer.headers["content-type"] == "application/json;charset=UTF-8"
    assert refused.json() == {
        "requestId": refused.json()["requestId"],
        "success": False,
        "errors": [{"code": "601", "message": "Access token invalid"}],
    }


@pytest.mark.parametrize("where", ["query", "form"])
def test_the_access_token_may_also_come_as_a_parameter(h: Harness, where: str) -> None:
    people(h, "a@x.com")
    params = {"filterType": "email", "filterValues": "a@x.com", "access_token": token(h)}
    if where == "query":
        answer = h.http.get(h.base_url + LEADS, params=params)
    else:
        answer = h.http.post(h.base_url + LEADS, params={"_method": "GET"}, data=params)
    assert code(answer) is None
    assert [lead["email"] for lead in answer.json()["result"]] == ["a@x.com"]


@pytest.mark.parametrize("where", ["url", "body"])
def test_method_get_may_be_in_the_url_or_in_the_form_body(h: Harness, where: str) -> None:
    people(h, "a@x.com", "b@x.com")
    form = {"filterType": "email", "filterValues": "a@x.com,b@x.com", "fields": "email"}
    url_params = {"_method": "GET"} if where == "url" else {}
    body = form if where == "url" else {**form, "_method": "GET"}
    answer = h.http.post(h.base_url + LEADS, params=url_params, data=body, headers=bearer(h))
    assert answer.json()["result"] == [{"email": "a@x.com"}, {"email": "b@x.com"}]
    assert h.sim.calls[f"GET {LEADS}"] == 1


def test_list_parameters_may_be_repeated_comma_separated_or_both(h: Harness) -> None:
    people(h, "a@x.com", "b@x.com", "c@x.com", title="Dev")
    query = "filterType=email&filterValues=a@x.com,b@x.com&filterValues=c@x.com&fields=email&fields=title,firstName"
    answer = h.http.get(f"{h.base_url}{LEADS}?{query}", headers=bearer(h))
    rows = answer.json()["result"]
    assert [row["email"] for row in rows] == ["a@x.com", "b@x.com", "c@x.com"]
    assert all(set(row) == {"email", "title", "firstName"} for row in rows)


def test_a_path_served_for_other_methods_is_605_and_an_unknown_path_610(h: Harness) -> None:
    headers = bearer(h)
    assert code(h.http.get(h.base_url + "/rest/v1/leads/delete.json", headers=headers)) == "605"
    assert code(h.http.get(h.base_url + "/rest/v1/nothing.json", headers=headers)) == "610"
    assert h.http.get(h.base_url + "/rest/v1/nothing.json", headers=headers).status_code == 200


def test_a_json_body_must_say_it_is_json_and_be_json(h: Harness) -> None:
    headers = bearer(h)
    as_text = h.http.post(
        h.base_url + LEADS, content=b'{"input": []}', headers={**headers, "content-type": "text/plain"}
    )
    assert code(as_text) == "612"
    broken = h.http.post(h.base_url + LEADS, content=b"{nope", headers={**headers, "content-type": "application/json"})
    assert code(broken) == "609"
    charset = h.http.post(
        h.base_url + LEADS,
        content=json.dumps({"input": [{"email": "u@x.com"}]}).encode(),
        headers={**headers, "content-type": "application/json; charset=utf-8"},
    )
    assert charset.json()["result"][0]["status"] == "created"


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_secret": "nope"}, 401, "unauthorized"),
        ({"client_id": "nobody"}, 401, "unauthorized"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": ""}, 400, "invalid_request"),
    ],
)
def test_identity_refusals_are_oauth_errors(h: Harness, change: dict[str, str], status: int, error: str) -> None:
    answer = h.http.get(h.base_url + "/identity/oauth/token", params={**CREDENTIALS, **change})
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["error_description"]


def test_identity_takes_a_post_with_the_parameters_in_the_url_or_the_body(h: Harness) -> None:
    in_url = h.http.post(h.base_url + "/identity/oauth/token", params=CREDENTIALS).json()
    in_body = h.http.post(h.base_url + "/identity/oauth/token", data=CREDENTIALS).json()
    assert in_url["access_token"] == in_body["access_token"]


def test_a_page_carries_next_page_token_only_while_more_records_remain(h: Harness) -> None:
    people(h, *(f"p{n}@x.com" for n in range(5)), company="Acme")
    headers = bearer(h)
    params = {"filterType": "company", "filterValues": "Acme", "batchSize": "2", "fields": "email"}
    pages = [h.http.get(h.base_url + LEADS, params=params, headers=headers).json()]
    while "nextPageToken" in pages[-1]:
        params["nextPageToken"] = pages[-1]["nextPageToken"]
        pages.append(h.http.get(h.base_url + LEADS, params=params, headers=headers).json())
    assert [len(page["result"]) for page in pages] == [2, 2, 1]
    assert not any("moreResult" in page for page in pages)


def test_the_feeds_always_carry_next_page_token_and_more_result(h: Harness) -> None:
    headers = bearer(h)
    since = h.http.get(
        h.base_url + "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": "2020-01-01"}, headers=headers
    ).json()["nextPageToken"]
    empty = h.http.get(
        h.base_url + "/rest/v1/activities/leadchanges.json",
        params={"nextPageToken": since, "fields": "email"},
        headers=headers,
    ).json()
    assert (empty["result"], empty["moreResult"], bool(empty["nextPageToken"])) == ([], False, True)


def test_delete_leads_takes_ids_in_the_json_body_or_in_the_id_parameter(h: Harness) -> None:
    first, second, third = people(h, "a@x.com", "b@x.com", "c@x.com")
    headers = bearer(h)
    by_body = h.http.post(h.base_url + "/rest/v1/leads/delete.json", json={"input": [{"id": first}]}, headers=headers)
    by_param = h.http.post(
        h.base_url + "/rest/v1/leads/delete.json", params={"id": f"{second},{third}"}, headers=headers
    )
    assert [r["status"] for r in by_body.json()["result"] + by_param.json()["result"]] == ["deleted"] * 3
    assert h.sim.find_leads("email", "c@x.com") == []


def test_compound_keys_are_queried_with_a_json_input_body(h: Harness) -> None:
    lead = people(h, "r@x.com")[0]
    headers = bearer(h)
    h.http.post(
        h.base_url + "/rest/v1/opportunities.json", json={"input": [{"externalOpportunityId": "o1"}]}, headers=headers
    )
    role = {"externalOpportunityId": "o1", "leadId": lead, "role": "Buyer"}
    h.http.post(h.base_url + "/rest/v1/opportunities/roles.json", json={"input": [role]}, headers=headers)
    roles = "/rest/v1/opportunities/roles.json"
    by_get = h.http.get(
        h.base_url + roles, params={"filterType": "dedupeFields", "filterValues": "o1"}, headers=headers
    )
    assert code(by_get) == "1003"
    query = {"filterType": "dedupeFields", "fields": ["role", "leadId"], "input": [role, {**role, "role": "Payer"}]}
    found = h.http.post(h.base_url + roles, params={"_method": "GET"}, json=query, headers=headers)
    assert found.json()["result"] == [{"seq": 0, "role": "Buyer", "leadId": lead}]


def test_bulk_import_takes_format_in_the_query_string_or_as_a_form_field(h: Harness) -> None:
    headers = bearer(h)
    files = {"file": ("l.csv", b"email\nq@x.com\n", "text/csv")}
    in_query = h.http.post(h.base_url + "/bulk/v1/leads.json", params={"format": "csv"}, files=files, headers=headers)
    in_form = h.http.post(h.base_url + "/bulk/v1/leads.json", data={"format": "csv"}, files=files, headers=headers)
    missing = h.http.post(h.base_url + "/bulk/v1/leads.json", files=files, headers=headers)
    assert [code(in_query), code(in_form), code(missing)] == [None, None, "701"]
    as_json = h.http.post(h.base_url + "/bulk/v1/leads.json", params={"format": "csv"}, json={}, headers=headers)
    assert code(as_json) == "612"


def test_bulk_import_takes_the_access_token_as_a_form_field_as_the_curl_example_does(h: Harness) -> None:
    files = {"file": ("l.csv", b"email\nq@x.com\n", "text/csv")}
    answer = h.http.post(
        h.base_url + "/bulk/v1/leads.json", data={"format": "csv", "access_token": token(h)}, files=files
    )
    assert answer.json()["result"][0]["status"] in ("Queued", "Importing")
