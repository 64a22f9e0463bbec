"""The three flow steps, each run against Dynamics for one Marketo person; each returns its outcome as a value.

- **sync-person**: "Sync Person to Microsoft" (:mod:`shared.pipeline.person_to_dynamics`): the person's linked
  record, else a Dynamics contact or lead with its e-mail (one the sync filter keeps out included), else one new
  lead, assigned to the owner asked for. A matched or linked record keeps its owner unless ``reassign`` is true.
- **change-owner**: the person's linked lead or contact is assigned to the owner (``ownerid@odata.bind``).
- **create-task**: a task regarding the person's linked lead or contact, created with an ``activityid`` derived
  from the run's key, so a second run of the same request is refused by Dataverse as a duplicate and changes
  nothing.

A person with no linked record (change-owner, create-task) is refused with ``not-linked``: run sync-person first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.mapping import SyncMapping
from shared.dataverse.client import DataverseClient
from shared.dataverse.values import EntityRef
from shared.errors import Conflict, NotPossible, RetryLater
from shared.marketo.client import MarketoClient
from shared.pipeline import person_to_dynamics as person
from shared.pipeline.flowsteps.owners import owner_bind, resolve_owner
from shared.pipeline.flowsteps.request import (
    PRIORITIES,
    ChangeOwnerBody,
    CreateTaskBody,
    Owner,
    Step,
    SyncPersonBody,
    load_request,
)
from shared.store.base import StateStore
from shared.store.flow_runs import FlowRun
from shared.store.model import Link

TASK_NAMESPACE = uuid.UUID("8f0c7a52-4f7e-4d7c-9a55-3b1f0c2e6d11")
"""Task ids are ``uuid5(TASK_NAMESPACE, run key)``: one task per flow-step run, whoever creates it."""
IN_PROGRESS_WAIT = 30.0  # seconds before a sync-person that met another caller's live claim is run again


@dataclass(frozen=True, slots=True)
class Ports:
    store: StateStore
    mapping: SyncMapping
    dataverse: DataverseClient
    marketo: MarketoClient
    clock: Callable[[], datetime]
    claim_timeout: float = 60.0


def task_id(run_key: str) -> str:
    return str(uuid.uuid5(TASK_NAMESPACE, run_key))


def run_step(run: FlowRun, ports: Ports) -> dict[str, Any]:
    """Carry out one run; its outcome (JSON). Raises NotPossible/NotFound for a sync error, RetryLater to wait."""
    step = Step(run.step)
    body = load_request(step, run.request)
    if isinstance(body, SyncPersonBody):
        return _sync_person(body, ports)
    if isinstance(body, ChangeOwnerBody):
        return _change_owner(body, ports)
    assert isinstance(body, CreateTaskBody)
    return _create_task(run.key, body, ports)


def _owner(owner: Owner | None, ports: Ports, person_id: str) -> str | None:
    if owner is None:
        return None
    return resolve_owner(owner, dataverse=ports.dataverse, marketo=ports.marketo, person_id=person_id)


def _sync_person(body: SyncPersonBody, ports: Ports) -> dict[str, Any]:
    person_id = str(body.personId)
    owner_id = _owner(body.owner, ports, person_id)
    synced = person.sync_person_to_dynamics(
        ports.store,
        ports.mapping,
        ports.dataverse,
        ports.marketo,
        person_id,
        claim_timeout=ports.claim_timeout,
        clock=ports.clock,
        sleep=lambda _seconds: None,  # a flow step never waits in place: "in progress" is run again later
        owner_id=owner_id,
    )
    if synced.outcome is person.Outcome.IN_PROGRESS:
        raise RetryLater("another call is linking or creating this person's record", retry_after=IN_PROGRESS_WAIT)
    outcome: dict[str, Any] = {"status": synced.outcome.value, "entity": synced.entity, "id": synced.id}
    if synced.matched_by is not None:
        outcome["matched_by"] = synced.matched_by
    if owner_id is not None:
        assigned = synced.created or body.reassign
        if assigned and not synced.created and synced.entity and synced.id:
            ports.dataverse.update(synced.entity, synced.id, owner_bind(owner_id))
        outcome["owner"] = owner_id if assigned else None
    return outcome


def _linked(ports: Ports, person_id: str) -> Link:
    link = ports.store.find_by_marketo("lead", person_id)
    if link is None:
        raise NotPossible(
            "the Marketo person is not linked to a Dynamics lead or contact: run 'sync-person' first",
            code="not-linked",
        )
    return link


def _change_owner(body: ChangeOwnerBody, ports: Ports) -> dict[str, Any]:
    person_id = str(body.personId)
    link = _linked(ports, person_id)
    owner_id = _owner(body.owner, ports, person_id)
    assert owner_id is not None
    ports.dataverse.update(link.entity, link.dynamics_id, owner_bind(owner_id))
    return {"status": "assigned", "entity": link.entity, "id": link.dynamics_id, "owner": owner_id}


def _create_task(run_key: str, body: CreateTaskBody, ports: Ports) -> dict[str, Any]:
    person_id = str(body.personId)
    link = _linked(ports, person_id)
    owner_id = _owner(body.owner, ports, person_id)
    owner = owner_bind(owner_id) if owner_id is not None else _record_owner(ports, link)
    activity_id = task_id(run_key)
    entity_set = ports.dataverse.entity_set_name(link.entity)
    values: dict[str, Any] = {
        "activityid": activity_id,
        "subject": body.subject,
        "prioritycode": PRIORITIES[body.priority],
        f"regardingobjectid_{link.entity}_task@odata.bind": f"/{entity_set}({link.dynamics_id})",
    }
    if body.description is not None:
        values["description"] = body.description
    if body.dueDate is not None:
        values["scheduledend"] = body.dueDate.isoformat().replace("+00:00", "Z")
    values.update(owner)
    status = "created"
    try:
        ports.dataverse.create("task", values)
    except Conflict as exc:
        if exc.code != person.DUPLICATE_RECORD:
            raise
        status = "exists"  # this run's task was created before (a redelivery, or a crash before the run was saved)
    owner_ref = next(iter(owner.values()), None)
    return {"status": status, "task": activity_id, "entity": link.entity, "id": link.dynamics_id, "owner": owner_ref}


def _record_owner(ports: Ports, link: Link) -> dict[str, str]:
    """The linked record's owner, a user or a team: the task's default owner (Dataverse would otherwise give it to
    the sync user, who creates it)."""
    found = ports.dataverse.read_by_ids(link.entity, [link.dynamics_id], ["_ownerid_value"]).get(link.dynamics_id)
    owner = found.values.get("ownerid") if found is not None else None
    if not isinstance(owner, EntityRef):
        return {}
    if owner.logical_name == "team":
        return {"ownerid@odata.bind": f"/teams({owner.id})"}
    return owner_bind(owner.id)
