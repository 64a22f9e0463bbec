"""The Web API as the Power Apps docs describe it, driven with plain ``requests`` (no Dataverse library).

For what the libraries in this folder do not exercise: response headers, ``Prefer`` preferences, conditional
requests (``If-Match`` / ``If-None-Match``), change tracking, raw ``$batch`` bodies (read back with the standard
library's MIME parser, not with any Dataverse code), error bodies, single property values and metadata.
Each test names the documented rule it checks.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import Message

from tests.conformance.dataverse.conftest import Org

JSON = "application/json; odata.metadata=minimal"


def test_json_answers_carry_the_odata_content_type_and_version(org: Org) -> None:
    web = org.session()
    lead = org.sim.seed("lead", {"lastname": "Typed"})
    for path in ("WhoAmI()", "leads?$select=lastname", f"leads({lead})", "EntityDefinitions(LogicalName='lead')"):
        response = web.get(org.api + path)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"] == JSON, path
        assert response.headers["OData-Version"] == "4.0", path
    missing = web.get(org.api + "leads(00000000-0000-0000-0000-000000000001)")
    assert (missing.status_code, missing.headers["Content-Type"]) == (404, JSON)


def test_create_answers_204_with_the_entity_id_or_201_with_the_row(org: Org) -> None:
    web = org.session()
    plain = web.post(org.api + "leads", json={"subject": "Topic: a lead's subject column", "lastname": "Plain"})
    assert plain.status_code == 204
    assert plain.content == b""
    entity_id = plain.headers["OData-EntityId"]
    assert re.fullmatch(re.escape(org.api) + r"leads\([0-9a-f-]{36}\)", entity_id)
    assert plain.headers["Location"] == entity_id

    rich = web.post(
        org.api + "leads?$select=subject,lastname",
        json={"subject": "With data returned", "lastname": "Rich"},
        headers={"Prefer": "return=representation"},
    )
    assert rich.status_code == 201
    assert rich.headers["Preference-Applied"] == "return=representation"
    assert "OData-EntityId" not in rich.headers  # "not returned when an entity is created this way"
    body = rich.json()
    assert body["@odata.context"] == f"{org.api}$metadata#leads/$entity"
    assert {k for k in body if not k.startswith("@")} == {"subject", "lastname", "leadid"}


def test_optimistic_concurrency_with_if_match(org: Org) -> None:
    web = org.session()
    account = org.sim.seed("account", {"name": "Versioned"})
    etag = web.get(f"{org.api}accounts({account})?$select=name").json()["@odata.etag"]

    assert (
        web.patch(f"{org.api}accounts({account})", json={"name": "v2"}, headers={"If-Match": etag}).status_code == 204
    )
    stale = web.patch(f"{org.api}accounts({account})", json={"name": "v3"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "0x80060882"
    assert web.delete(f"{org.api}accounts({account})", headers={"If-Match": etag}).status_code == 412

    missing = "00000000-0000-0000-0000-0000000000a1"
    prevented = web.patch(f"{org.api}accounts({missing})", json={"name": "no"}, headers={"If-Match": "*"})
    assert (prevented.status_code, prevented.json()["error"]["code"]) == (404, "0x80040217")
    assert web.patch(f"{org.api}accounts({missing})", json={"name": "upserted"}).status_code == 204
    assert org.sim.get("account", missing) is not None  # without If-Match a PATCH is an upsert
    no_update = web.patch(f"{org.api}accounts({missing})", json={"name": "x"}, headers={"If-None-Match": "*"})
    assert no_update.status_code == 412
    assert no_update.json()["error"] == {
        "code": "0x80040237",
        "message": "A record with matching key values already exists.",
    }


def test_conditional_retrieval_with_if_none_match(org: Org) -> None:
    web = org.session()
    contact = org.sim.seed("contact", {"lastname": "Cached"})
    url = f"{org.api}contacts({contact})?$select=lastname"
    etag = web.get(url).json()["@odata.etag"]
    assert web.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert web.get(url, headers={"If-None-Match": "null"}).status_code == 200  # the docs' header on every GET
    annotated = web.get(url, headers={"If-None-Match": etag, "Prefer": 'odata.include-annotations="*"'})
    assert annotated.status_code == 200  # annotations may come from other rows: never 304
    org.sim.user_update("contact", contact, {"lastname": "Changed"}, user_id=org.user_id)
    assert web.get(url, headers={"If-None-Match": etag}).json()["lastname"] == "Changed"


def test_paging_with_maxpagesize_and_next_link(org: Org) -> None:
    web = org.session()
    for n in range(5):
        org.sim.seed("account", {"name": f"Page {n}"})
    url: str | None = org.api + "accounts?$select=name"
    names: list[str] = []
    pages = 0
    while url:
        page = web.get(url, headers={"Prefer": "odata.maxpagesize=2"}).json()
        names += [row["name"] for row in page["value"]]
        url = page.get("@odata.nextLink")
        pages += 1
        assert url is None or ("$skiptoken=" in url and "$select=name" in url)
    assert (pages, sorted(names)) == (3, [f"Page {n}" for n in range(5)])


def test_orderby_and_top(org: Org) -> None:
    web = org.session()
    for name in ("b", "C", "a"):
        org.sim.seed("account", {"name": name})
    rows = web.get(org.api + "accounts?$select=name&$orderby=name desc&$top=2").json()["value"]
    assert [r["name"] for r in rows] == ["C", "b"]
    unknown = web.get(org.api + "accounts?$orderby=nosuchcolumn")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == (
        "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.account'."
    )


def test_formatted_values_only_when_annotations_are_asked_for(org: Org) -> None:
    web = org.session()
    account = org.sim.seed("account", {"name": "Fourth Coffee", "revenue": 1234.5, "industrycode": 1})
    url = f"{org.api}accounts({account})?$select=name,revenue,industrycode"
    assert not [k for k in web.get(url).json() if "@OData.Community" in k]
    annotated = web.get(
        url, headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}
    )
    assert (
        annotated.headers["Preference-Applied"]
        == 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'
    )
    body = annotated.json()
    assert body["revenue@OData.Community.Display.V1.FormattedValue"] == "$1,234.50"
    assert body["industrycode@OData.Community.Display.V1.FormattedValue"] == "Accounting"


def test_change_tracking_returns_changes_and_deletions_through_delta_links(org: Org) -> None:
    web = org.session()
    kept = org.sim.seed("account", {"name": "Kept"})
    gone = org.sim.seed("account", {"name": "Gone"})
    first = web.get(org.api + "accounts?$select=name", headers={"Prefer": "odata.track-changes"})
    assert first.headers["Preference-Applied"] == "odata.track-changes"
    assert sorted(r["name"] for r in first.json()["value"]) == ["Gone", "Kept"]
    delta_link = first.json()["@odata.deltaLink"]
    assert "$deltatoken=" in delta_link

    org.sim.user_update("account", kept, {"name": "Kept, renamed"}, user_id=org.user_id)
    org.sim.user_delete("account", gone, user_id=org.user_id)
    delta = web.get(delta_link, headers={"Prefer": "odata.track-changes"}).json()
    assert delta["@odata.context"].endswith("$metadata#accounts(name)/$delta")
    changed, removed = delta["value"]
    assert (changed["accountid"], changed["name"]) == (kept, "Kept, renamed")
    assert removed == {"@odata.context": f"{org.api}$metadata#accounts/$deletedEntity", "id": gone, "reason": "deleted"}
    assert web.get(delta["@odata.deltaLink"]).json()["value"] == []

    refused = web.get(org.api + "accounts?$select=name&$filter=name eq 'x'", headers={"Prefer": "odata.track-changes"})
    assert refused.status_code == 400


def test_error_bodies_use_dataverse_codes(org: Org) -> None:
    web = org.session()
    lead = org.sim.seed("lead", {"lastname": "Errors"})
    cases = [
        (web.get(f"{org.api}leads({lead})?$select=nosuch"), 400, "0x80060888"),
        (web.post(org.api + "leads", json={"nosuch": 1}), 400, "0x80048d19"),
        (web.post(org.api + "leads", json={"lastname": 12}), 400, "0x80048d19"),
        (web.post(org.api + "leads", json={"lastname": "x" * 51}), 400, "0x80044331"),
        (web.patch(f"{org.api}leads({lead})", json={"leadsourcecode": 99}), 400, "0x8004431a"),
        (web.get(org.api + "nosuchset"), 404, "0x80060888"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    assert cases[3][0].json()["error"]["message"] == (
        "A validation error occurred.  The length of the 'lastname' attribute of the 'lead' entity exceeded the "
        "maximum allowed length of '50'."
    )
    assert (
        cases[4][0]
        .json()["error"]["message"]
        .endswith("is outside the valid range. Accepted Values: 1,2,3,4,5,6,7,8,9,10")
    )


def test_single_property_values(org: Org) -> None:
    web = org.session()
    contact = org.sim.seed("contact", {"lastname": "Single", "jobtitle": "Clerk"})
    url = f"{org.api}contacts({contact})/jobtitle"
    assert web.get(url).json()["value"] == "Clerk"
    assert web.put(url, json={"value": "Manager"}).status_code == 204
    assert web.get(url + "/$value").text == "Manager"
    assert web.delete(url).status_code == 204
    assert org.sim.get("contact", contact)["jobtitle"] is None  # type: ignore[index]


def test_attribute_metadata_for_a_standard_column(org: Org) -> None:
    web = org.session()
    base = org.api + "EntityDefinitions(LogicalName='lead')/Attributes"
    subject = web.get(base + "(LogicalName='subject')?$select=LogicalName,MaxLength,RequiredLevel").json()
    assert subject["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    assert subject["MaxLength"] == 300
    assert subject["RequiredLevel"]["Value"] == "ApplicationRequired"
    options = web.get(
        base
        + "(LogicalName='leadsourcecode')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet"
    ).json()["OptionSet"]["Options"]
    assert {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in options}[8] == "Web"


def _parts(content_type: str, body: bytes) -> list[Message]:
    """A multipart body's leaf parts, in order, read by the standard library's MIME parser."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.compat32
    )
    return [part for part in message.walk() if not part.is_multipart()]


def _status(part: Message) -> int:
    payload = part.get_payload()
    assert isinstance(payload, str)
    return int(payload.lstrip().split(" ", 2)[1])


def test_batch_with_a_change_set_references_and_per_part_statuses(org: Org) -> None:
    web = org.session()
    body = (
        "--batch_AAA123\r\nContent-Type: multipart/mixed; boundary=changeset_BBB456\r\n\r\n"
        "--changeset_BBB456\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
        "POST " + org.api + "contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        '{"firstname":"First","lastname":"Last"}\r\n'
        "--changeset_BBB456\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n"
        "PUT $1/lastname HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        '{"value":"BBBBB"}\r\n'
        "--changeset_BBB456\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 3\r\n\r\n"
        "POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        '{"name":"Has a primary contact","primarycontactid@odata.bind":"$1"}\r\n'
        "--changeset_BBB456--\r\n"
        "--batch_AAA123\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "GET contacts?$select=lastname HTTP/1.1\r\n\r\n\r\n"
        "--batch_AAA123--\r\n"
    )
    response = web.post(
        org.api + "$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=batch_AAA123"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    parts = _parts(response.headers["Content-Type"], response.content)
    assert [(p["Content-ID"], _status(p)) for p in parts] == [("1", 204), ("2", 204), ("3", 204), (None, 200)]
    (contact,) = org.sim.rows("contact")
    assert contact["lastname"] == "BBBBB"
    (account,) = org.sim.rows("account")
    assert account["_primarycontactid_value"] == contact["contactid"]


def test_batch_stops_at_the_first_failure_unless_asked_to_go_on(org: Org) -> None:
    web = org.session()

    def batch(*subjects: str) -> str:
        parts = [
            "--batch_X\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            "POST /api/data/v9.2/leads HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n"
            f'{{"subject":"{subject}","lastname":"L"}}\r\n'
            for subject in subjects
        ]
        return "".join(parts) + "--batch_X--\r\n"

    headers = {"Content-Type": 'multipart/mixed; boundary="batch_X"'}
    too_long = "x" * 301
    stopped = web.post(org.api + "$batch", data=batch(too_long, "ok"), headers=headers)
    assert stopped.status_code == 400  # "the batch error represents the error of the first failing request"
    assert [_status(p) for p in _parts(stopped.headers["Content-Type"], stopped.content)] == [400]
    assert org.sim.rows("lead") == []

    going_on = web.post(
        org.api + "$batch", data=batch(too_long, "ok"), headers=headers | {"Prefer": "odata.continue-on-error"}
    )
    assert going_on.status_code == 200
    assert [_status(p) for p in _parts(going_on.headers["Content-Type"], going_on.content)] == [400, 204]
    assert [r["subject"] for r in org.sim.rows("lead")] == ["ok"]
