from __future__ import annotations

from typing import Any

import pytest

from shared.errors import SkipRecord
from shared.marketo.models import RecordStatus, SkipCode
from tests.marketo_harness import Harness

SYNC = "POST /rest/v1/leads.json"
QUERY = "GET /rest/v1/leads.json"


def people(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"email": f"p{i}@example.com", "firstName": f"P{i}", **extra} for i in range(count)]


def test_sync_chunks_by_300_and_keeps_input_order(h: Harness) -> None:
    outcomes = h.client.sync_leads(people(650))
    assert h.sim.calls[SYNC] == 3
    assert [o.index for o in outcomes] == list(range(650))
    assert all(o.status is RecordStatus.CREATED for o in outcomes)
    ids = [o.id for o in outcomes]
    assert len(set(ids)) == 650
    assert h.sim.lead(int(ids[649]))["email"] == "p649@example.com"  # type: ignore[arg-type,index]


def test_sync_splits_bodies_over_one_megabyte(h: Harness) -> None:
    records = people(100, address="x" * 20_000)  # ~2 MB in all, far fewer than 300 records
    outcomes = h.client.sync_leads(records)
    assert all(o.ok for o in outcomes)
    assert h.sim.calls[SYNC] >= 2
    assert h.sim.rejections["413"] == 0


def test_each_record_level_reason_is_an_outcome(h: Harness) -> None:
    h.client.sync_leads([{"email": "dup@example.com"}])
    h.sim.add_lead(email="twin@example.com")
    h.sim.add_lead(email="twin@example.com")
    created = h.client.sync_leads([{"email": "solo@example.com"}], action="createOnly")
    assert created[0].ok
    results = [
        *h.client.sync_leads([{"email": "dup@example.com"}], action="createOnly"),
        *h.client.sync_leads([{"email": "nobody@example.com"}], action="updateOnly"),
        *h.client.sync_leads([{"email": "a@example.com", "favouriteColour": "red"}]),
        *h.client.sync_leads([{"email": "twin@example.com", "firstName": "T"}]),
        *h.client.sync_leads([{"email": "b@example.com", "leadScore": "lots"}]),
    ]
    assert [o.reasons[0].known for o in results] == [
        SkipCode.ALREADY_EXISTS,
        SkipCode.NOT_FOUND,
        SkipCode.FIELD_NOT_FOUND,
        SkipCode.MULTIPLE_MATCH,
        SkipCode.INVALID_DATA,
    ]
    assert all(o.status is RecordStatus.SKIPPED for o in results)


def test_update_only_by_id_and_mixed_batch(h: Harness) -> None:
    lead_id = h.sim.add_lead(email="x@example.com", firstName="Old")
    outcomes = h.client.sync_leads(
        [{"id": lead_id, "firstName": "New"}, {"id": 999_999, "firstName": "Ghost"}],
        action="updateOnly",
        lookup_field="id",
    )
    assert [o.status for o in outcomes] == [RecordStatus.UPDATED, RecordStatus.SKIPPED]
    assert outcomes[0].id == lead_id
    assert h.sim.lead(lead_id)["firstName"] == "New"  # type: ignore[index]


def test_get_leads_chunks_values_and_asks_only_for_requested_fields(h: Harness) -> None:
    h.client.sync_leads(people(650, title="Engineer"))
    emails = [f"p{i}@example.com" for i in range(650)]
    leads = h.client.get_leads("email", emails, fields=["email", "title"])
    assert h.sim.calls[QUERY] == 3
    assert len(leads) == 650
    assert all(set(lead) == {"email", "title"} for lead in leads)


def test_get_leads_pages_with_next_page_token(h: Harness) -> None:
    h.client.sync_leads(people(350, company="Acme"))
    leads = h.client.get_leads("company", ["Acme"], fields=["id", "company"])
    assert len(leads) == 350
    assert len({lead["id"] for lead in leads}) == 350
    assert h.sim.calls[QUERY] == 2


def test_get_leads_switches_to_post_when_the_uri_would_pass_8kb(h: Harness) -> None:
    long_values = [f"{'v' * 40}-{i}@example.com" for i in range(300)]  # ~17 KB of filter values
    h.client.sync_leads([{"email": value} for value in long_values[:5]])
    leads = h.client.get_leads("email", long_values, fields=["email"])
    assert len(leads) == 5
    assert h.sim.rejections["414"] == 0
    assert h.sim.calls[QUERY] == 1  # served as GET via POST ?_method=GET


def test_filter_values_with_commas_are_refused(h: Harness) -> None:
    with pytest.raises(SkipRecord):
        h.client.get_leads("company", ["Acme, Inc."])


def test_describe_schema_and_custom_fields(h: Harness) -> None:
    described = {f.rest_name: f for f in h.client.describe_leads()}
    assert described["email"].data_type == "email"
    assert described["id"].read_only
    schema = h.client.lead_schema_fields(batch_size=10)
    assert h.sim.calls["GET /rest/v1/leads/schema/fields.json"] >= 3  # paged by 10
    assert {f.name for f in schema} >= {"email", "firstName"}
    assert not any(f.is_custom for f in schema)

    created = h.client.create_lead_fields(
        [
            {"displayName": "Dynamics Contact Id", "name": "dynamicsContactId", "dataType": "string"},
            {"displayName": "Email Address", "name": "email", "dataType": "string"},
        ]
    )
    assert created[0].ok
    assert created[0].id == "dynamicsContactId"
    assert created[1].status is RecordStatus.SKIPPED
    custom = [f for f in h.client.lead_schema_fields() if f.is_custom]
    assert [f.name for f in custom] == ["dynamicsContactId"]
    assert h.client.sync_leads([{"email": "c@example.com", "dynamicsContactId": "abc"}])[0].ok
    assert h.client.get_leads("dynamicsContactId", ["abc"], fields=["email"]) == [{"email": "c@example.com"}]
