"""The lead database's lookup index: a sync, an import or a query matches as a scan would, at any table size."""

from __future__ import annotations

import time

from local.simulators.marketo.leads import LeadStore


def store_of(count: int) -> LeadStore:
    leads = LeadStore(now=lambda: 1_767_000_000.0)
    records = [{"email": f"P{i}@Example.com", "firstName": f"F{i}"} for i in range(count)]
    leads.sync("createDuplicate", "email", records, source="seed", reason="seed")
    return leads


def test_lookups_follow_creates_updates_and_deletes() -> None:
    leads = store_of(5)
    email = leads.fields["email"]
    assert (
        leads.upsert({"email": "p3@example.com", "firstName": "Three"}, "updateOnly", email, source="t", reason="t")[
            "id"
        ]
        == 4
    ), "matched ignoring case"
    leads.upsert({"id": 2, "email": "moved@example.com"}, "updateOnly", leads.fields["id"], source="t", reason="t")
    rows, _ = leads.query("email", ["moved@example.com", "p1@example.com"], ["id"], 300, None)
    assert [r["id"] for r in rows] == [2]
    assert leads.upsert({"email": "p1@example.com"}, "updateOnly", email, source="t", reason="t")["status"] == "skipped"
    leads.delete([4])
    assert leads.upsert({"email": "p3@example.com"}, "updateOnly", email, source="t", reason="t")["status"] == "skipped"
    created = leads.upsert({"email": "p3@example.com"}, "createOrUpdate", email, source="t", reason="t")
    assert created["status"] == "created"
    rows, _ = leads.query("id", ["1", "4", str(created["id"])], ["id", "email"], 300, None)
    assert [(r["id"], r["email"]) for r in rows] == [(1, "P0@Example.com"), (created["id"], "p3@example.com")]


def test_a_replaced_lead_table_is_indexed_afresh() -> None:
    leads = store_of(3)
    leads.query("email", ["p0@example.com"], None, 300, None)  # builds the email index
    leads.leads = {9: {"id": 9, "email": "restored@example.com"}}  # a restored state (local/simulators/persistence)
    rows, _ = leads.query("email", ["restored@example.com", "p0@example.com"], ["id"], 300, None)
    assert [r["id"] for r in rows] == [9]


def test_updates_by_id_cost_the_same_at_100000_leads() -> None:
    leads = store_of(100_000)
    id_field = leads.fields["id"]
    started = time.perf_counter()
    for i in range(1, 3001):
        leads.upsert({"id": i, "firstName": "X"}, "updateOnly", id_field, source="t", reason="t")
    assert time.perf_counter() - started < 3.0, "a scan per row took ~12 ms each at 100k leads"
