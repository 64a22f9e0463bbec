"""Tasks in the simulated Dataverse: the regarding lookup is bound by the task's own navigation properties
(``regardingobjectid_lead_task``), the owner by ``ownerid``, and a client-chosen ``activityid`` is unique."""

from __future__ import annotations

import uuid

from tests.simulators.dataverse.conftest import Web


def test_a_task_regarding_a_lead_with_an_owner_and_its_own_id(web: Web) -> None:
    lead = web.sim.seed("lead", {"lastname": "Lee", "emailaddress1": "lee@example.com"})
    owner = web.sim.add_user("Sam Seller")
    task_id = str(uuid.uuid4())
    body = {
        "activityid": task_id,
        "subject": "Call back",
        "scheduledend": "2026-12-03T09:00:00Z",
        "prioritycode": 2,
        "regardingobjectid_lead_task@odata.bind": f"/leads({lead})",
        "ownerid@odata.bind": f"/systemusers({owner})",
    }
    created = web.post("tasks", body)
    assert created.status_code == 204, created.text
    assert created.headers["OData-EntityId"].endswith(f"tasks({task_id})")
    row = web.get(
        f"tasks({task_id})?$select=subject,_regardingobjectid_value,_ownerid_value,statecode,statuscode",
        Prefer='odata.include-annotations="*"',
    ).json()
    assert (row["_regardingobjectid_value"], row["_ownerid_value"]) == (lead, owner)
    assert row["_regardingobjectid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == (
        "regardingobjectid_lead_task"
    )
    assert (row["statecode"], row["statuscode"]) == (0, 2)  # Open, Not Started
    again = web.post("tasks", body)
    assert web.error(again)[:2] == (412, "0x80040237")


def test_the_bare_target_name_is_not_a_tasks_navigation_property(web: Web) -> None:
    contact = web.sim.seed("contact", {"lastname": "Cole"})
    refused = web.post("tasks", {"subject": "x", "regardingobjectid_contact@odata.bind": f"/contacts({contact})"})
    assert refused.status_code == 400
    ok = web.post("tasks", {"subject": "x", "regardingobjectid_contact_task@odata.bind": f"/contacts({contact})"})
    assert ok.status_code == 204, ok.text
