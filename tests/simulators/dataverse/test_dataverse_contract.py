"""The simulator's payloads have the shapes recorded from the Microsoft docs (keys and value types)."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.simulators.dataverse import CapturedWebhooks, DataverseSimulator
from local.simulators.dataverse.odata import FilterError, compile_filter
from shared.dataverse.batch import parse_batch_response

FIXTURES = Path(__file__).parents[2] / "fixtures" / "dataverse"
ORG = "https://contoso.crm.dynamics.com"
API = f"{ORG}/api/data/v9.2/"
CLIENT_ID = "0c6f0d2a-0000-4000-8000-0000000000c2"
SECRET = "contract-secret"


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_same_shape(recorded: Any, actual: Any, path: str = "$") -> None:
    """Every key the docs show is present with the same JSON type (null matches anything: it is optional)."""
    if recorded is None or actual is None:
        return
    assert _kind(recorded) == _kind(actual), f"{path}: docs have {_kind(recorded)}, simulator {_kind(actual)}"
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            assert key in actual, f"{path}: simulator lacks {key!r}"
            assert_same_shape(value, actual[key], f"{path}.{key}")
    elif isinstance(recorded, list) and recorded and actual:
        assert_same_shape(recorded[0], actual[0], f"{path}[0]")


class Api:
    def __init__(self) -> None:
        self.sim = DataverseSimulator(sender=CapturedWebhooks())
        self.user = self.sim.add_app(CLIENT_ID, secret=SECRET)
        self.http = httpx.Client(transport=httpx.MockTransport(self.sim))
        token = self.http.post(
            f"https://login.microsoftonline.com/{self.sim.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "scope": f"{ORG}/.default",
            },
        )
        self.token_body = token.json()
        self.http.headers["Authorization"] = f"Bearer {self.token_body['access_token']}"

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.http.get(path if path.startswith("http") else API + path, headers=headers)


@pytest.fixture
def api() -> Api:
    return Api()


def test_token_and_openid_configuration_shapes(api: Api) -> None:
    assert_same_shape(_fixture("token_response.json"), api.token_body)
    config = api.http.get(
        f"https://login.microsoftonline.com/{api.sim.tenant_id}/v2.0/.well-known/openid-configuration"
    ).json()
    assert_same_shape(_fixture("openid_configuration.json"), config)


def test_token_error_shape(api: Api) -> None:
    response = api.http.post(
        f"https://login.microsoftonline.com/{api.sim.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": "no",
            "scope": f"{ORG}/.default",
        },
    )
    assert response.status_code == 401
    assert_same_shape(_fixture("token_error_invalid_client.json"), response.json())


def test_whoami_shape(api: Api) -> None:
    assert_same_shape(_fixture("whoami.json"), api.get("WhoAmI").json())


def test_query_page_and_annotations_shape(api: Api) -> None:
    contact = api.sim.seed("contact", {"fullname": "x", "lastname": "Y"})
    for n in range(3):
        api.sim.seed("contact", {"lastname": f"C{n}"})
    page = api.get("contacts?$select=fullname", Prefer="odata.maxpagesize=2").json()
    assert_same_shape(_fixture("query_page.json"), page)
    assert "$skiptoken=" in page["@odata.nextLink"]

    api.sim.seed("account", {"name": "Fourth Coffee", "revenue": 150000.0, "_primarycontactid_value": contact})
    annotated = api.get(
        "accounts?$select=name,revenue,_primarycontactid_value", Prefer='odata.include-annotations="*"'
    ).json()
    assert_same_shape(_fixture("query_formatted_values.json"), annotated)
    assert annotated["value"][0]["revenue@OData.Community.Display.V1.FormattedValue"] == "$150,000.00"


SQL_ORDER = (10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3)  # System.Data.SqlTypes.SqlGuid over ToByteArray


def _all_pages(api: Api, url: str, size: int, between: Any = None) -> list[str]:
    ids: list[str] = []
    while url:
        page = api.get(url, Prefer=f"odata.maxpagesize={size}").json()
        ids += [row["contactid"] for row in page["value"]]
        url = page.get("@odata.nextLink", "")
        if between is not None and url:
            between(ids)
            between = None
    return ids


def test_pages_come_in_sql_server_uniqueidentifier_order_and_a_row_created_meanwhile_once() -> None:
    """Dataverse pages by primary key (its paging cookie names the page's last ``contactid``), a SQL Server
    uniqueidentifier: compared last group first, then the fourth, the third's and second's bytes swapped, the
    first's reversed -- as the recorded cookie shows (first ``9A9A1F6A-...`` before last ``9C9A1F6A-...``)."""
    api = Api()
    rnd = random.Random(3)
    ids = [
        api.sim.seed("contact", {"lastname": "x"}, record_id=str(uuid.UUID(int=rnd.getrandbits(128))))
        for _ in range(57)
    ]
    expected = sorted(ids, key=lambda i: bytes(uuid.UUID(i).bytes_le[b] for b in SQL_ORDER))
    assert expected != sorted(ids)  # not the text's order
    assert _all_pages(api, "contacts?$select=lastname", 10) == expected
    assert _all_pages(api, "contacts?$select=lastname&$orderby=contactid", 7) == expected

    early, late = "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"
    seen = _all_pages(
        api,
        "contacts?$select=lastname",
        10,
        between=lambda _: [api.sim.seed("contact", {"lastname": "new"}, record_id=rid) for rid in (early, late)],
    )
    assert seen == [*expected, late]  # the one created behind the cursor is not met; the one ahead, once


def test_change_tracking_shapes(api: Api) -> None:
    kept = api.sim.seed("account", {"name": "Monte Orton"})
    gone = api.sim.seed("account", {"name": "Gone"})
    initial = api.get("accounts?$select=name,accountnumber,telephone1,fax", Prefer="odata.track-changes")
    assert initial.headers["Preference-Applied"] == "odata.track-changes"
    assert_same_shape(_fixture("change_tracking_initial.json"), initial.json())

    api.sim.user_update("account", kept, {"telephone1": "555000"}, user_id=api.user)
    api.sim.user_delete("account", gone, user_id=api.user)
    delta = api.get(initial.json()["@odata.deltaLink"]).json()
    recorded = _fixture("change_tracking_delta.json")
    assert_same_shape({k: v for k, v in recorded.items() if k != "value"}, delta)
    assert delta["@odata.context"].endswith("/$delta")
    assert_same_shape(recorded["value"][0], delta["value"][0])
    assert_same_shape(recorded["value"][1], delta["value"][1])
    assert delta["value"][1]["@odata.context"].endswith("/$deletedEntity")


def test_a_delta_token_older_than_the_change_history_is_refused(api: Api) -> None:
    """ExpireChangeTrackingInDays (7 by default): ErrorCodes.ExpiredVersionStamp, "perform a full sync"."""
    from datetime import UTC, datetime, timedelta

    api.sim.seed("account", {"name": "Monte Orton"})
    link = api.get("accounts?$select=name", Prefer="odata.track-changes").json()["@odata.deltaLink"]
    assert api.get(link).status_code == 200
    later = datetime.now(UTC) + timedelta(days=7, minutes=1)
    api.sim._now = lambda: later
    response = api.get(link)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "0x80044352"
    assert error["message"] == "Version stamp associated with the client has expired. Please perform a full sync."


def test_change_tracking_rejects_filter_like_dataverse(api: Api) -> None:
    response = api.get("accounts?$select=name&$filter=name eq 'x'", Prefer="odata.track-changes")
    assert response.status_code == 400
    assert "isn't supported when Change Tracking is enabled" in response.json()["error"]["message"]


def test_metadata_shapes(api: Api) -> None:
    base = "EntityDefinitions(LogicalName='account')"
    assert_same_shape(
        _fixture("entity_definition.json"),
        api.get(f"{base}?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute").json(),
    )
    attrs = api.get(
        f"{base}/Attributes?$select=LogicalName,AttributeType,IsValidForRead,IsValidForUpdate,IsSecured"
    ).json()
    assert_same_shape(_fixture("attributes_metadata.json"), attrs)
    picklist = api.get(
        f"{base}/Attributes(LogicalName='industrycode')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
        "?$select=LogicalName&$expand=OptionSet"
    ).json()
    assert_same_shape(_fixture("picklist_optionset.json"), picklist)
    boolean = api.get(
        "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='donotemail')"
        "/Microsoft.Dynamics.CRM.BooleanAttributeMetadata?$select=LogicalName&$expand=OptionSet"
    ).json()
    assert_same_shape(_fixture("boolean_optionset.json"), boolean)


def test_principal_attribute_privileges_shape(api: Api) -> None:
    api.sim.grant_column(api.user, "lead", "new_salarynotes")
    body = api.get(f"systemusers({api.user})/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()").json()
    assert_same_shape(_fixture("principal_attribute_privileges.json"), body)


@pytest.mark.parametrize(
    ("request_path", "status", "fixture"),
    [
        ("leads(9f3162f6-804a-e811-a95a-000d3a36a4e8)", 404, "error_not_found.json"),
    ],
)
def test_error_body_shapes(api: Api, request_path: str, status: int, fixture: str) -> None:
    response = api.get(request_path)
    assert response.status_code == status
    assert_same_shape(_fixture(fixture), response.json())
    assert response.json()["error"]["code"] == _fixture(fixture)["error"]["code"]


def test_412_and_429_bodies(api: Api) -> None:
    lead = api.sim.seed("lead", {"lastname": "A"})
    conflict = api.http.patch(f"{API}leads({lead})", json={"firstname": "B"}, headers={"If-Match": 'W/"1"'})
    assert conflict.status_code == 412
    assert conflict.json() == _fixture("error_concurrency_mismatch.json")
    api.sim.request_limit = 1
    api.get("WhoAmI")
    throttled = api.get("WhoAmI")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert throttled.json() == _fixture("error_throttled_requests.json") | {
        "error": {
            "code": "0x80072322",
            "message": "Number of requests exceeded the limit of 1 over time window of 300 seconds.",
        }
    }


def test_rate_limit_headers_present(api: Api) -> None:
    response = api.get("WhoAmI")
    assert int(response.headers["x-ms-ratelimit-burst-remaining-xrm-requests"]) == 5999
    assert float(response.headers["x-ms-ratelimit-time-remaining-xrm-requests"]) > 0
    assert response.headers["x-ms-dop-hint"] == "8"


def test_401_carries_www_authenticate(api: Api) -> None:
    response = api.http.get(API + "WhoAmI", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_batch_response_parses_like_the_documented_one(api: Api) -> None:
    recorded = parse_batch_response(
        "multipart/mixed; boundary=batchresponse_f27ef42d-51b0-4685-bac9-f468f844de2f",
        (FIXTURES / "batch_response_changeset.txt").read_text(),
    )
    assert [(p.status, p.content_id) for p in recorded] == [(204, "1"), (204, "2"), (200, None)]
    body = (
        (
            "--batch_A\r\nContent-Type: multipart/mixed; boundary=changeset_B\r\n\r\n"
            "--changeset_B\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
            f"POST {API}tasks HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n"
            '{"subject": "x"}\r\n--changeset_B--\r\n'
            "--batch_A\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            "GET /api/data/v9.2/accounts?$select=name HTTP/1.1\r\n\r\n\r\n--batch_A--\r\n"
        )
        .replace(f"{API}tasks", f"{API}new_projects")
        .replace('"subject"', '"new_name"')
    )
    response = api.http.post(
        API + "$batch", content=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=batch_A"}
    )
    assert response.status_code == 200
    parts = parse_batch_response(response.headers["content-type"], response.text)
    assert [(p.status, p.content_id) for p in parts] == [(204, "1"), (200, None)]
    assert parts[0].headers["odata-entityid"].startswith(f"{API}new_projects(")
    assert_same_shape({"@odata.context": "", "value": []}, parts[1].json())


def test_a_delivered_context_has_the_shape_of_the_documented_one() -> None:
    """The webhook body, ParentContext included, against the use-webhooks.md example (keys and JSON types)."""
    hooks = CapturedWebhooks()
    sim = DataverseSimulator(sender=hooks)
    contact = sim.seed("contact", {"firstname": "Jim", "lastname": "Glynn (sample)"})
    sim.register_webhook(
        "https://func.example/api/dataverse", entity="contact", message="Update", post_image=["fullname"]
    )
    sim.user_update("contact", contact, {"firstname": "James"}, user_id=sim.add_user("Someone Else"))

    recorded = json.loads((FIXTURES / "webhook_update_contact.json").read_text())
    rendered = json.loads(hooks.received[0][2])
    assert_same_shape(recorded, rendered)
    assert set(recorded) <= set(rendered)
    assert set(recorded["ParentContext"]) <= set(rendered["ParentContext"])
    assert (rendered["Stage"], rendered["Mode"], rendered["ParentContext"]["Stage"]) == (40, 1, 30)
    parent_target = rendered["ParentContext"]["InputParameters"][0]["value"]
    assert {a["key"] for a in parent_target["Attributes"]} == {"firstname", "contactid"}  # what the caller sent
    target = rendered["InputParameters"][0]["value"]
    assert {"firstname", "contactid", "fullname", "modifiedon", "modifiedby"} <= {
        a["key"] for a in target["Attributes"]
    }


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("name eq 'O''Neil'", {"name": "o'neil"}, True),
        ("revenue gt 10 and revenue le 20", {"revenue": 15}, True),
        ("not (statecode eq 0)", {"statecode": 0}, False),
        ("parentid eq null", {"parentid": None}, True),
        ("modifiedon lt 2024-01-01", {"modifiedon": "2023-12-31T23:00:00Z"}, True),
    ],
)
def test_filter_subset(text: str, row: dict[str, Any], expected: bool) -> None:
    assert compile_filter(text)(row) is expected


@pytest.mark.parametrize("text", ["name eq", "name zz 'a'", "(name eq 'a'", "name eq 'a' extra"])
def test_filter_errors(text: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(text)
