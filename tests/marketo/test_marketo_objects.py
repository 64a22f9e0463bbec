from __future__ import annotations

from shared.marketo.models import RecordStatus, SkipCode
from tests.marketo_harness import Harness


def test_companies_upsert_by_external_id_in_batches(h: Harness) -> None:
    records = [{"externalCompanyId": f"acc-{i}", "company": f"Company {i}"} for i in range(301)]
    outcomes = h.client.sync_companies(records)
    assert h.sim.calls["POST /rest/v1/companies/sync.json"] == 2
    assert [o.index for o in outcomes] == list(range(301))
    assert all(o.status is RecordStatus.CREATED and isinstance(o.id, int) for o in outcomes)
    again = h.client.sync_companies([{"externalCompanyId": "acc-0", "industry": "Retail"}, {"company": "No key"}])
    assert again[0].status is RecordStatus.UPDATED
    assert again[0].id == outcomes[0].id
    assert again[1].reasons[0].known is SkipCode.INVALID_DATA
    described = h.client.describe_companies()
    assert described.dedupe_fields == ("externalCompanyId",)
    assert "company" in {f.name for f in described.fields}


def test_opportunities_roles_and_sales_persons(h: Harness) -> None:
    lead_id = h.sim.add_lead(email="buyer@example.com")
    assert h.client.sync_sales_persons([{"externalSalesPersonId": "sp-1", "email": "rep@example.com"}])[0].ok
    opps = h.client.sync_opportunities([{"externalOpportunityId": "opp-1", "name": "Deal", "amount": 1000}])
    assert opps[0].ok
    assert isinstance(opps[0].id, str)
    roles = h.client.sync_opportunity_roles(
        [
            {"externalOpportunityId": "opp-1", "leadId": lead_id, "role": "Buyer", "isPrimary": True},
            {"externalOpportunityId": "opp-404", "leadId": lead_id, "role": "Buyer"},
        ]
    )
    assert roles[0].ok
    assert roles[1].status is RecordStatus.SKIPPED
    assert roles[1].reasons[0].known is SkipCode.NOT_FOUND
    assert h.client.describe_opportunities().id_field == "marketoGUID"
    assert h.client.describe_opportunity_roles().dedupe_fields == ("externalOpportunityId", "leadId", "role")
    assert h.client.describe_sales_persons().dedupe_fields == ("externalSalesPersonId",)
    updated = h.client.sync_opportunities([{"externalOpportunityId": "opp-1", "stage": "Won"}], action="updateOnly")
    assert updated[0].status is RecordStatus.UPDATED
    assert updated[0].id == opps[0].id


def test_opportunity_roles_are_deleted_by_their_compound_key(h: Harness) -> None:
    lead_id = h.sim.add_lead(email="buyer@example.com")
    h.client.sync_opportunities([{"externalOpportunityId": "opp-1", "name": "Deal"}])
    key = {"externalOpportunityId": "opp-1", "leadId": lead_id, "role": "Technical Buyer"}
    (created,) = h.client.sync_opportunity_roles([{**key, "isPrimary": False}])
    gone, missing = h.client.delete_opportunity_roles([key, {**key, "role": "Champion"}])
    assert h.sim.calls["POST /rest/v1/opportunities/roles/delete.json"] == 1
    assert (gone.status, gone.id) == (RecordStatus.DELETED, created.id)
    assert (missing.status, missing.reason_codes) == (RecordStatus.SKIPPED, ("1013",))  # not found
    assert h.sim.objects["roles"].records == {}


def test_persons_and_companies_take_their_sales_owner(h: Harness) -> None:
    h.client.sync_sales_persons([{"externalSalesPersonId": "sp-1", "email": "rep@example.com"}])
    (person,) = h.client.sync_leads([{"email": "buyer@example.com", "externalSalesPersonId": "sp-1"}])
    (company,) = h.client.sync_companies([{"externalCompanyId": "acc-1", "externalSalesPersonId": "sp-1"}])
    assert person.ok
    assert company.ok
    assert h.sim.find_leads("email", "buyer@example.com")[0]["externalSalesPersonId"] == "sp-1"
    assert h.sim.objects["companies"].records[company.id]["externalSalesPersonId"] == "sp-1"


def test_custom_objects(h: Harness) -> None:
    h.sim.define_custom_object(
        "subscription_c", dedupe_fields=("subscriptionId",), fields={"subscriptionId": "string", "plan": "string"}
    )
    described = h.client.describe_custom_object("subscription_c")
    assert described.dedupe_fields == ("subscriptionId",)
    outcomes = h.client.sync_custom_objects("subscription_c", [{"subscriptionId": "s-1", "plan": "Gold"}])
    assert outcomes[0].ok
    missing = h.client.sync_custom_objects("subscription_c", [{"subscriptionId": "s-2"}], action="updateOnly")
    assert missing[0].reasons[0].known is SkipCode.NOT_FOUND
