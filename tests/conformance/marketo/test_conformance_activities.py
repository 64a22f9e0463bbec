"""Get Paging Token, then Get Lead Changes and Get Lead Activities through marketorestpython, page by page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from marketorestpython.client import MarketoClient  # type: ignore[import-untyped,unused-ignore]
from marketorestpython.helper.exceptions import MarketoException  # type: ignore[import-untyped,unused-ignore]

from local.simulators.marketo.simulator import MarketoSimulator
from tests.conformance.marketo.conftest import Wiretap
from tests.marketo_harness import FakeClock

CHANGES = "/rest/v1/activities/leadchanges.json"


def since(clock: FakeClock, seconds_ago: float = 60) -> str:
    return (clock.now() - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_lead_changes_follow_next_page_token_until_more_result_is_false(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock, wire: Wiretap
) -> None:
    token = mkto.get_paging_token(sinceDatetime=since(clock))
    created = mkto.create_update_leads([{"email": f"p{n}@example.com", "title": "Dev"} for n in range(3)])
    mkto.create_update_leads([{"email": "p0@example.com", "title": "Lead Dev"}])
    sim.change_lead(created[2]["id"], title="CTO")
    changes = mkto.get_lead_changes(fields=["title"], nextPageToken=token, batchSize=2)
    assert [item["activityTypeId"] for item in changes] == [12, 12, 12, 13, 13]
    assert [(c["leadId"], c["fields"][0]["newValue"], c["fields"][0]["oldValue"]) for c in changes[3:]] == [
        (created[0]["id"], "Lead Dev", "Dev"),
        (created[2]["id"], "CTO", "Dev"),
    ]
    pages = wire.to(CHANGES)
    assert len(pages) == 3
    assert pages[0].url.params["nextPageToken"] == token
    assert len({page.url.params["nextPageToken"] for page in pages}) == 3  # each call resumes after the last


def test_every_page_carries_next_page_token_and_more_result(mkto: MarketoClient, clock: FakeClock) -> None:
    token = mkto.get_paging_token(sinceDatetime=since(clock))
    mkto.create_update_leads([{"email": f"q{n}@example.com"} for n in range(3)])
    pages = list(mkto.get_lead_changes_yield(fields="email", nextPageToken=token, batchSize=2, return_full_result=True))
    assert [(len(page["result"]), page["moreResult"]) for page in pages] == [(2, True), (1, False)]
    assert all(page["success"] and page["nextPageToken"] for page in pages)


def test_only_changes_to_the_requested_fields_are_returned(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock
) -> None:
    lead = sim.add_lead(email="f@example.com", title="Dev", city="Rome")
    clock.advance(2)
    token = mkto.get_paging_token(sinceDatetime=since(clock, 1))
    sim.change_lead(lead, title="Lead", city="Oslo")
    changes = mkto.get_lead_changes(fields="city", nextPageToken=token)
    assert [change["fields"][0]["name"] for change in changes] == ["city"]


def test_a_paging_token_from_after_the_changes_returns_nothing(mkto: MarketoClient, clock: FakeClock) -> None:
    mkto.create_update_leads([{"email": "early@example.com"}])
    clock.advance(10)
    assert mkto.get_lead_changes(fields="email", sinceDatetime=since(clock, 1)) == []


def test_since_datetime_may_carry_a_utc_offset(mkto: MarketoClient, clock: FakeClock) -> None:
    before = clock.now() - timedelta(hours=1)
    mkto.create_update_leads([{"email": "tz@example.com"}])
    offset = before.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    central = (before - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S-06:00")
    for text in (offset, central):
        assert len(mkto.get_lead_changes(fields="email", sinceDatetime=text)) == 1


def test_activity_dates_are_utc_in_the_form_the_client_parses_for_until_datetime(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock
) -> None:
    token = mkto.get_paging_token(sinceDatetime=since(clock))
    first = sim.add_lead(email="a@example.com")
    clock.advance(60)
    until = clock.now().strftime("%Y-%m-%dT%H:%M:%S")
    clock.advance(60)
    sim.add_lead(email="b@example.com")
    changes = mkto.get_lead_changes(fields="email", nextPageToken=token, untilDatetime=until)
    assert [change["leadId"] for change in changes] == [first]


def test_lead_activities_are_filtered_by_activity_type(
    mkto: MarketoClient, sim: MarketoSimulator, clock: FakeClock
) -> None:
    token = mkto.get_paging_token(sinceDatetime=since(clock))
    lead = sim.add_lead(email="t@example.com", title="Dev")
    sim.change_lead(lead, title="Lead")
    sim.delete_lead(lead)
    activities = mkto.get_lead_activities(activityTypeIds=["12", "37"], nextPageToken=token)
    assert [item["activityTypeId"] for item in activities] == [12, 37]


def test_lead_changes_need_known_fields(mkto: MarketoClient, clock: FakeClock) -> None:
    token = mkto.get_paging_token(sinceDatetime=since(clock))
    with pytest.raises(MarketoException) as refused:
        mkto.get_lead_changes(fields="noSuchField", nextPageToken=token)
    assert refused.value.code == "1006"
