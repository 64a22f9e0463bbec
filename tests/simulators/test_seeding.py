"""Seeding many records through the control surfaces, a person's edit over HTTP, and bulk imports worked in the
background (``local/simulators/seeding.py``, ``ImportQueue.work``): what a benchmark with the simulators in their
own process relies on."""

from __future__ import annotations

import json
from typing import Any

import httpx

from local.simulators.dataverse import CapturedWebhooks, DataverseSimulator
from local.simulators.marketo import MarketoSimulator

DV = "https://contoso.crm.dynamics.com/_simulator"
MK = "https://123-abc-456.mktorest.com/_simulator"
ID = "00000000-0000-4000-8000-{i:012x}"


def post(sim: Any, url: str, body: object) -> httpx.Response:
    response: httpx.Response = sim(httpx.Request("POST", url, content=json.dumps(body).encode()))
    return response


def test_dataverse_seeds_rows_from_templates_with_the_columns_added_first() -> None:
    sim = DataverseSimulator(sender=CapturedWebhooks())
    body = {
        "entity": "contact",
        "count": 1000,
        "id": ID,
        "values": {"firstname": "F{i}", "lastname": "L{i}", "new_tier": ["Gold", "Silver", "Bronze"]},
        "columns": [{"name": "new_tier", "type": "String", "max_length": 80}],
    }

    answer = post(sim, f"{DV}/seed", body)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"seeded": 1000}
    first, last = sim.get("contact", ID.format(i=0)), sim.get("contact", ID.format(i=999))
    assert first is not None
    assert last is not None
    assert (first["firstname"], first["new_tier"], first["fullname"]) == ("F0", "Gold", "F0 L0")
    assert (last["lastname"], last["new_tier"], last["fullname"]) == ("L999", "Gold", "F999 L999")
    assert sim.get("contact", ID.format(i=4))["new_tier"] == "Silver"  # type: ignore[index]
    assert first["statecode"] == 0, "the platform's values, as for any seeded row"
    assert first["createdon"]
    assert sim.etag("contact", ID.format(i=1)) != sim.etag("contact", ID.format(i=2)), "each row its own version"


def test_a_seed_body_that_names_no_table_or_a_bad_template_is_refused() -> None:
    sim = DataverseSimulator(sender=CapturedWebhooks())
    assert post(sim, f"{DV}/seed", {"entity": "nope", "count": 1, "id": ID, "values": {}}).status_code == 400
    refused = post(sim, f"{DV}/seed", {"entity": "contact", "count": 1, "id": ID, "values": {"lastname": "{j}"}})
    assert refused.status_code == 400
    assert "template" in refused.json()["error"]["message"]


def test_an_edit_over_http_is_a_persons_change_and_fires_the_plug_in_step() -> None:
    hooks = CapturedWebhooks()
    sim = DataverseSimulator(sender=hooks, webhook_urls=["https://func.example/api/dataverse/webhook"])
    sim.add_user("Dana Admin")
    post(sim, f"{DV}/seed", {"entity": "contact", "count": 3, "id": ID, "values": {"lastname": "L{i}"}})
    record = ID.format(i=1)

    answer = post(sim, f"{DV}/edit", {"entity": "contact", "id": record, "values": {"jobtitle": "CTO"}})

    assert answer.status_code == 200, answer.text
    assert sim.get("contact", record)["jobtitle"] == "CTO"  # type: ignore[index]
    assert any(record in body.decode() for _, _, body in hooks.received), "the plug-in step posted the change"
    missing = post(sim, f"{DV}/edit", {"entity": "contact", "id": ID.format(i=9), "values": {"jobtitle": "x"}})
    assert missing.status_code == 404


def test_marketo_seeds_leads_with_consecutive_ids_that_lookups_find() -> None:
    sim = MarketoSimulator()
    body = {"count": 500, "values": {"email": "b{i}@example.com", "firstName": "F{i}"}}

    answer = post(sim, f"{MK}/seed", body)

    assert answer.status_code == 200, answer.text
    seeded = answer.json()
    assert seeded["seeded"] == 500
    assert seeded["last_id"] - seeded["first_id"] == 499
    assert (sim.lead(seeded["first_id"] + 7) or {}).get("email") == "b7@example.com"
    assert sim.leads.activities == [], "seeded as before any API user looked: no activity, no change note"
    assert sim.leads.notes == []
    matched = sim.leads.sync("updateOnly", "email", [{"email": "B9@example.com"}], source="test", reason="test")
    assert matched == [{"id": seeded["first_id"] + 9, "status": "updated"}], "the match index holds the seeded leads"
    assert post(sim, f"{MK}/seed", {"count": 1, "values": {"nope": "x"}}).status_code == 400


def test_a_bulk_import_worked_in_the_background_completes_only_once_its_rows_are_done() -> None:
    now = [1_767_000_000.0]
    sim = MarketoSimulator(clock=lambda: now[0])
    first = sim.leads.seed_many({"email": f"b{i}@example.com"} for i in range(50))[0]
    sim.leads.create_fields([{"name": "tier", "dataType": "string", "displayName": "Tier"}])
    sim.imports.background = True
    content = ("id,tier\n" + "".join(f"{first + i},T{i}\n" for i in range(50))).encode()
    job = sim.imports.submit(content, "csv", "id", now[0])
    now[0] += 5  # well past import_seconds

    assert sim.imports.get(job.batch_id, now[0]).status == "Importing", "rows still to do"
    assert sim.work_imports(20) == 20
    assert (sim.lead(first + 19) or {}).get("tier") == "T19"
    assert (sim.lead(first + 20) or {}).get("tier") is None, "a chunk at a time"
    assert sim.work_imports(100) == 30
    assert sim.imports.get(job.batch_id, now[0]).status == "Complete"
    assert job.processed == 50
