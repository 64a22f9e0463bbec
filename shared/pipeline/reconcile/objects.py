"""One-way entities (accounts, users, opportunities, teams, custom entities): Dynamics to their Marketo object.

Per entity and batch: one Dataverse read and one Marketo upsert, keyed by the Dynamics id held in the object's
dedupe field; Dynamics always wins. A record the verification sweep found edited in Marketo is compared with
what its Marketo object holds (:mod:`~shared.pipeline.reconcile.restore`) and restored. Opportunities also bring
their roles in step (:mod:`~shared.pipeline.reconcile.roles`), and accounts and opportunities carry their owner's
sales person (``externalSalesPersonId``), sent when the owner changed. A record Marketo refuses keeps its old
baseline, so its change is sent again at the next one; a mapped field the object no longer has is marked broken
and left out of the records (:func:`~shared.pipeline.reconcile.broken.upsert_objects`), which keep its old
baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core.mapping import EntityMapping
from shared.core.policy import Decision, RecordAction, RecordState, decide_one_way
from shared.core.values import Canonical, read_dynamics_record
from shared.pipeline import marketo_side
from shared.pipeline.dataverse_side import (
    SALES_OWNER_ENTITIES,
    SALES_OWNER_KEY,
    owner_unchanged,
    sales_owner,
    sales_owners_synced,
    sync_filter_flag,
)
from shared.pipeline.marketo_side import SALES_OWNER_FIELD
from shared.pipeline.reconcile.batch import Batch, Target
from shared.pipeline.reconcile.broken import read_dynamics, upsert_objects
from shared.pipeline.reconcile.links import keep_failed, save_link
from shared.pipeline.reconcile.restore import keep_deleted, marketo_held
from shared.pipeline.reconcile.roles import sync_roles
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
    followed: dict[str, Canonical] | None = None  # kept in the baseline once the upsert succeeded (the owner)


def reconcile_objects(batch: Batch, mapping: EntityMapping, targets: list[Target]) -> None:
    entity = mapping.entity
    ids = [t.dynamics_id for t in targets]
    links = batch.store.get_links(entity, ids)
    mapping, records = read_dynamics(batch, mapping, ids)
    mapping, held = marketo_held(batch, mapping, targets, links)  # only records the verification sweep sent
    owners = entity in SALES_OWNER_ENTITIES and sales_owners_synced(batch.mapping)
    pushes: list[ObjectPush] = []
    in_step: list[tuple[Target, Link]] = []  # linked, nothing to push: an opportunity's roles are still checked
    for target in targets:
        rid = target.dynamics_id
        link = links.get(rid)
        record = records.get(rid)
        if record is None and link is None and not target.deleted:
            batch.fail(record_not_found(entity, rid, at=batch.clock()))
            continue
        values = read_dynamics_record(mapping.fields, record.values) if record is not None else None
        baseline = link.baseline if link is not None else {}
        marketo = held.get(rid)
        decision = decide_one_way(
            mapping,
            values,
            baseline,
            linked=link is not None,
            sync_filter=sync_filter_flag(record, mapping),
            marketo=marketo,
        )
        batch.decided(target, decision, RecordState(values, marketo, baseline, trigger=target.trigger))
        batch.fail(*conversion_errors(mapping, rid, decision, at=batch.clock()))
        if decision.action is RecordAction.KEEP_DELETED and link is not None:
            keep_deleted(batch, target, link)
        owner: dict[str, Canonical] | None = (
            {SALES_OWNER_KEY: sales_owner(record, mapping)} if owners and record is not None else None
        )
        if decision.action in _PUSHED:
            body = marketo_side.marketo_body(mapping, decision)
            body[mapping.marketo_link_field] = rid
            if owner is not None:
                body[SALES_OWNER_FIELD] = owner[SALES_OWNER_KEY]
            pushes.append(ObjectPush(target, link, decision, body, owner))
        elif decision.action is RecordAction.SYNC and link is not None and record is not None:
            if owner is not None and not owner_unchanged(baseline, owner[SALES_OWNER_KEY]):
                body = {mapping.marketo_link_field: rid, SALES_OWNER_FIELD: owner[SALES_OWNER_KEY]}
                pushes.append(ObjectPush(target, link, decision, body, owner))  # only the owner changed
            else:
                in_step.append((target, link))
    outcomes, left_out = upsert_objects(batch, mapping, [p.body for p in pushes])
    saved: list[tuple[ObjectPush, str | None, dict[str, Canonical]]] = []
    for push, outcome in zip(pushes, outcomes, strict=True):
        if not outcome.ok:
            batch.fail(marketo_error(entity, push.target.dynamics_id, "upsert", outcome, at=batch.clock()))
            continue
        marketo_id = str(outcome.id) if outcome.id is not None else (push.link.marketo_id if push.link else None)
        baseline = keep_failed(push.decision, push.link, left_out)
        saved.append((push, marketo_id, {**baseline, **(push.followed or {})}))
    kept = [(target, link, link.marketo_id, dict(link.baseline)) for target, link in in_step]
    done = [(push.target, push.link, marketo_id, baseline) for push, marketo_id, baseline in saved] + kept
    if entity == "opportunity":  # in Marketo now: its roles follow its contacts and stakeholders
        baselines = {target.dynamics_id: baseline for target, _, _, baseline in done}
        sync_roles(batch, records, baselines, {target.dynamics_id: target for target, _, _, _ in done})
    for target, old, marketo_id, baseline in done:
        save_link(batch, target, old, marketo_id, baseline)  # unchanged: no write
