"""One-way entities (accounts, users, opportunities, teams, custom entities): Dynamics to their Marketo object.

Per entity and batch: one Dataverse read and one Marketo upsert, keyed by the Dynamics id held in the object's
dedupe field; Dynamics always wins. Opportunities also send their primary contact's role
(:mod:`~shared.pipeline.reconcile.roles`). A record Marketo refuses keeps its old baseline, so its change is sent
again at the next one; a mapped field the object no longer has is marked broken and left out of the records
(:func:`~shared.pipeline.reconcile.broken.upsert_objects`), which keep its old baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core.mapping import EntityMapping
from shared.core.policy import Decision, RecordAction, RecordState, decide_one_way
from shared.core.values import Canonical, read_dynamics_record
from shared.pipeline import marketo_side
from shared.pipeline.dataverse_side import sync_filter_flag
from shared.pipeline.reconcile.batch import Batch, Target
from shared.pipeline.reconcile.broken import read_dynamics, upsert_objects
from shared.pipeline.reconcile.links import keep_failed, save_link
from shared.pipeline.reconcile.roles import ROLE_KEY, sync_primary_contact_roles
from shared.pipeline.sync_errors import conversion_errors, marketo_error, record_not_found
from shared.store.model import Link

_PUSHED = (RecordAction.CREATE_IN_MARKETO, RecordAction.UPSERT_IN_MARKETO)


@dataclass(frozen=True, slots=True)
class ObjectPush:
    """One record's upsert to Marketo, decided."""

    target: Target
    link: Link | None
    decision: Decision
    body: dict[str, Any]


def reconcile_objects(batch: Batch, mapping: EntityMapping, targets: list[Target]) -> None:
    entity = mapping.entity
    ids = [t.dynamics_id for t in targets]
    links = batch.store.get_links(entity, ids)
    mapping, records = read_dynamics(batch, mapping, ids)
    pushes: list[ObjectPush] = []
    for target in targets:
        rid = target.dynamics_id
        link = links.get(rid)
        record = records.get(rid)
        if record is None and link is None and not target.deleted:
            batch.fail(record_not_found(entity, rid, at=batch.clock()))
            continue
        values = read_dynamics_record(mapping.fields, record.values) if record is not None else None
        baseline = link.baseline if link is not None else {}
        decision = decide_one_way(
            mapping, values, baseline, linked=link is not None, sync_filter=sync_filter_flag(record, mapping)
        )
        batch.decided(target, decision, RecordState(values, None, baseline, trigger=target.trigger))
        batch.fail(*conversion_errors(mapping, rid, decision, at=batch.clock()))
        if decision.action in _PUSHED:
            body = marketo_side.marketo_body(mapping, decision)
            body[mapping.marketo_link_field] = rid
            pushes.append(ObjectPush(target, link, decision, body))
    outcomes, left_out = upsert_objects(batch, mapping, [p.body for p in pushes])
    saved: list[tuple[ObjectPush, str | None, dict[str, Canonical]]] = []
    for push, outcome in zip(pushes, outcomes, strict=True):
        if not outcome.ok:
            batch.fail(marketo_error(entity, push.target.dynamics_id, "upsert", outcome, at=batch.clock()))
            continue
        marketo_id = str(outcome.id) if outcome.id is not None else (push.link.marketo_id if push.link else None)
        saved.append((push, marketo_id, keep_failed(push.decision, push.link, left_out)))
    if entity == "opportunity":
        baselines = {push.target.dynamics_id: baseline for push, _, baseline in saved}
        for rid, contact in sync_primary_contact_roles(batch, baselines, records).items():
            baselines[rid][ROLE_KEY] = contact
    for push, marketo_id, baseline in saved:
        save_link(batch, push.target, push.link, marketo_id, baseline)
