from __future__ import annotations

from datetime import timedelta

from shared.marketo.models import Activity
from tests.marketo_harness import Harness


def _all(pages: object) -> list[Activity]:
    return [activity for page in pages for activity in page.activities]  # type: ignore[attr-defined]


def test_lead_changes_report_new_leads_and_each_changed_field(h: Harness) -> None:
    token = h.client.paging_token(h.clock.now() - timedelta(minutes=1))
    ids = [o.id for o in h.client.sync_leads([{"email": "a@example.com", "firstName": "Ann", "title": "CTO"}])]
    h.clock.advance(60)
    h.client.sync_leads([{"email": "a@example.com", "firstName": "Anne", "title": "CTO"}])
    h.sim.change_lead(int(ids[0]), title="CEO", source="Marketo Flow Action", reason="Promotion")  # type: ignore[arg-type]

    activities = _all(h.client.lead_changes(token, ["firstName", "title"]))
    assert [a.activity_type_id for a in activities] == [12, 13, 13]
    first_name, title = activities[1], activities[2]
    assert (first_name.fields[0].name, first_name.fields[0].new_value, first_name.fields[0].old_value) == (
        "firstName",
        "Anne",
        "Ann",
    )
    assert first_name.attributes["Source"] == "Web service API"
    assert (title.fields[0].new_value, title.attributes["Source"], title.attributes["Reason"]) == (
        "CEO",
        "Marketo Flow Action",
        "Promotion",
    )
    assert title.activity_date - first_name.activity_date == timedelta(0)
    assert first_name.activity_date - activities[0].activity_date == timedelta(seconds=60)


def test_only_requested_fields_are_reported(h: Harness) -> None:
    token = h.client.paging_token(h.clock.now())
    lead = h.sim.add_lead(email="b@example.com")
    h.sim.change_lead(lead, title="VP", city="Oslo")
    activities = _all(h.client.lead_changes(token, ["city"]))
    assert [(a.activity_type_id, [f.name for f in a.fields]) for a in activities] == [(12, []), (13, ["city"])]


def test_short_pages_keep_paging_and_tokens_checkpoint(h: Harness) -> None:
    h.sim.activity_scan_limit = 7  # Marketo may answer with few items and moreResult true
    token = h.client.paging_token(h.clock.now())
    lead = h.sim.add_lead(email="c@example.com")
    for n in range(20):
        h.sim.change_lead(lead, title=f"T{n}", city=f"C{n}")
    pages = list(h.client.lead_changes(token, ["title"], batch_size=300))
    assert len(pages) >= 5
    assert any(len(page.activities) < 7 for page in pages[:-1])
    assert [p.more_result for p in pages] == [True] * (len(pages) - 1) + [False]
    titles = [a.fields[0].new_value for a in _all(pages) if a.activity_type_id == 13]
    assert titles == [f"T{n}" for n in range(20)]

    # Resume from a checkpoint taken after the second page: nothing before it comes again.
    checkpoint = pages[1].next_page_token
    seen_before = {a.marketo_guid for a in _all(pages[:2])}
    resumed = _all(h.client.lead_changes(checkpoint, ["title"]))
    assert not seen_before & {a.marketo_guid for a in resumed}
    assert len(seen_before) + len(resumed) == 21

    # And the last token is where the next poll starts: only newer changes.
    h.sim.change_lead(lead, title="Final")
    newer = _all(h.client.lead_changes(pages[-1].next_page_token, ["title"]))
    assert [a.fields[0].new_value for a in newer] == ["Final"]


def test_deleted_leads_feed(h: Harness) -> None:
    token = h.client.paging_token(h.clock.now())
    keep = h.sim.add_lead(email="keep@example.com")
    gone = h.sim.add_lead(email="gone@example.com", firstName="Gone", lastName="Away")
    h.sim.delete_lead(gone)
    deleted = _all(h.client.deleted_leads(token))
    assert [(a.lead_id, a.activity_type_id, a.primary_attribute_value) for a in deleted] == [(gone, 37, "Gone Away")]
    assert h.sim.lead(keep) is not None
    assert h.sim.lead(gone) is None
