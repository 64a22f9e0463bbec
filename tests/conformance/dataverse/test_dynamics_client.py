"""``dynamics-client`` (an independent httpx-based library) works against the simulated organisation.

It signs in with authlib's client-credentials flow (HTTP Basic client authentication), sends
``Prefer: return=representation`` on every create and update, ``If-None-Match: null`` with ``If-Match: *`` on
updates (overridable per request), pages by ``Prefer: odata.maxpagesize``, builds ``$filter``/``$orderby``/
``$top``/``$count`` itself, and maps statuses onto its own exceptions (412 -> DuplicateRecordError).
"""

from __future__ import annotations

from typing import Any

import pytest
from dynamics.exceptions import DuplicateRecordError, NotFound, ParseError

from tests.conformance.dataverse.conftest import Org


def test_whoami_names_the_application_user(org: Org) -> None:
    client = org.dynamics_client()
    response: Any = client.functions.whoami()  # annotated as a list, returns the get() response
    (answer,) = response.data
    assert answer["UserId"] == org.user_id
    assert answer["OrganizationId"] == org.sim.organization_id
    assert answer["BusinessUnitId"] == org.sim.business_unit_id


def test_create_returns_the_row_when_representation_is_preferred(org: Org) -> None:
    client = org.dynamics_client()
    client.table = "contacts"
    client.select = ["fullname", "jobtitle"]
    created = client.post({"firstname": "Ada", "lastname": "Lovelace", "jobtitle": "Analyst"}).data
    assert created["fullname"] == "Ada Lovelace"
    assert created["@odata.etag"] == org.sim.etag("contact", created["contactid"])
    assert set(created) == {"@odata.context", "@odata.etag", "fullname", "jobtitle", "contactid"}


def test_filter_orderby_top_and_count(org: Org) -> None:
    for name, employees in (("Alpha", 5), ("Beta", 50), ("Gamma", 500), ("Delta", 5000)):
        org.sim.seed("account", {"name": name, "numberofemployees": employees})
    client = org.dynamics_client()
    client.table = "accounts"
    client.select = ["name"]
    client.filter = ["numberofemployees gt 10", "contains(name,'a')"]
    client.orderby = {"name": "desc"}
    client.count = True
    answer = client.get()
    assert [row["name"] for row in answer.data] == ["Gamma", "Delta", "Beta"]
    assert answer.count == 3

    client.reset_query()
    client.table = "accounts"
    client.select = ["name"]
    client.orderby = {"numberofemployees": "asc"}
    client.top = 2
    assert [row["name"] for row in client.get().data] == ["Alpha", "Beta"]


def test_pagination_follows_next_links(org: Org) -> None:
    for n in range(7):
        org.sim.seed("lead", {"lastname": f"L{n}"})
    client = org.dynamics_client()
    client.table = "leads"
    client.select = ["lastname"]
    client.pagesize = 3
    first = client.get()
    assert len(first.data) == 3
    assert first.next_link is not None
    everything = client.get(pagination_rules={"pages": -1})
    assert sorted(row["lastname"] for row in everything.data) == [f"L{n}" for n in range(7)]


def test_an_update_with_a_stale_etag_is_refused_with_412(org: Org) -> None:
    lead = org.sim.seed("lead", {"lastname": "Stale"})
    stale = org.sim.etag("lead", lead)
    client = org.dynamics_client()
    client.table = "leads"
    client.row_id = lead
    client.select = ["lastname"]
    client["If-Match"] = stale
    updated = client.patch({"firstname": "Fresh"}).data
    assert updated["@odata.etag"] != stale
    with pytest.raises(DuplicateRecordError, match="doesn't match the RowVersion"):
        client.patch({"firstname": "Again"})
    assert org.sim.get("lead", lead)["firstname"] == "Fresh"  # type: ignore[index]


def test_errors_carry_dataverse_codes_and_messages(org: Org) -> None:
    client = org.dynamics_client()
    client.table = "contacts"
    with pytest.raises(ParseError, match="exceeded the maximum allowed length of '100'"):
        client.post({"lastname": "Long", "jobtitle": "x" * 101})
    client.row_id = "00000000-0000-0000-0000-00000000dead"
    with pytest.raises(NotFound, match="Does Not Exist"):
        client.delete()
