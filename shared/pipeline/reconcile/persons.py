"""Leads and contacts, two-way, with their Marketo persons: prepare, match, decide, write.

Every person in the batch together, whatever its entity: one Dataverse read per entity, one Marketo read by id
(plus one lookup by e-mail when records have no person yet), one Marketo update and one create call, and one
Dataverse ``$batch`` per entity for the changes that flow back. Decisions become :class:`PersonPlan` values
first; writing them is a separate step, so what was decided can be logged and asserted.

A person carries its record's sales owner (``externalSalesPersonId``: the owner when it is a Dynamics user,
:func:`~shared.pipeline.dataverse_side.sales_owner`) while users sync as sales persons: compared with what the
person holds, so an owner change, or a Marketo edit of it, is written at the record's next reconcile.

A field whose write failed (Marketo skipped the record, a ``$batch`` part failed) keeps its old baseline, so the
change is retried at the next reconcile. A record that changed in Dynamics since it was read (412) is decided
again from fresh reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.core.intent import intents, settled_baseline
from shared.core.mapping import DELETED_FLAG_FIELD, EntityMapping
from shared.core.policy import Decision, RecordAction, RecordState, decide
from shared.core.values import modified_time, read_dynamics_record, read_marketo_record
from shared.dataverse.client import RecordUpdate
from shared.errors import Conflict, MissingField, SkipRecord
from shared.pipeline import marketo_side
from shared.pipeline.dataverse_side import (
    SALES_OWNER_KEY,
    qualified_lead,
    sales_owner,
    sales_owners_synced,
    sync_filter_flag,
)
from shared.pipeline.marketo_side import SALES_OWNER_FIELD
from shared.pipeline.reconcile.batch import Batch, Target
from shared.pipeline.reconcile.broken import marketo_field_gone, read_dynamics
from shared.pipeline.reconcile.links import keep_failed, save_link
from shared.pipeline.reconcile.matching import MatchKind, PersonGroup, linked_persons, match_by_email
from shared.pipeline.sync_errors import (
    conversion_errors,
    dataverse_error,
    duplicate_person,
    marketo_error,
    record_not_found,
)
from shared.store.model import Link

Persons = dict[str, dict[str, Any]]  # Marketo person by Marketo id


@dataclass(frozen=True, slots=True)
class PersonPlan:
    """One record's writes, decided. ``person_id`` None: a person to create (``marketo`` carries the link field);
    otherwise ``marketo`` is the update to send (empty: nothing to send) and ``dynamics`` the write-back."""

    mapping: EntityMapping
    target: Target
    link: Link | None
    decision: Decision
    person_id: str | None
    marketo: dict[str, Any]
    dynamics: RecordUpdate | None = None
    follows: Link | None = None
    followed: dict[str, Any] = field(default_factory=dict)  # kept in the baseline once Marketo took the write


@dataclass
class WriteBack:
    """What the ``$batch`` of Marketo-side changes to Dynamics left undone."""

    failed: dict[str, set[str]] = field(default_factory=dict)  # record -> columns whose write failed
    conflicts: set[str] = field(default_factory=set)  # records changed since they were read (412)


def reconcile_persons(batch: Batch, entities: list[tuple[EntityMapping, list[Target]]]) -> None:
    groups = [_prepare(batch, mapping, targets) for mapping, targets in entities]
    persons = _read_and_match(batch, groups)
    plans = [_intend(batch, _decide(batch, group, persons)) for group in groups]
    _write(batch, groups, plans)


def _intend(batch: Batch, plans: list[PersonPlan]) -> list[PersonPlan]:
    """Save each linked record's write intent before any write (shared/core/intent.py), in batch transactions;
    a record whose link changed meanwhile is decided again instead."""
    writing = [p for p in plans if p.link is not None and p.person_id == p.link.marketo_id and p.decision.has_writes]
    if not writing:
        return plans
    new = {}
    for p in writing:
        assert p.link is not None
        baseline = p.decision.new_baseline
        intent = intents(
            {c: baseline[c] for c in p.decision.marketo_writes if c in baseline},
            {c: baseline[c] for c in p.decision.dynamics_writes if c in baseline},
        )
        new[p.target.dynamics_id] = replace(p.link, intent=intent)
    saved, conflicts = batch.store.replace_links(plans[0].mapping.entity, list(new.values()))
    kept: list[PersonPlan] = []
    for p in plans:
        rid = p.target.dynamics_id
        if rid in conflicts:
            batch.requeue(p.target, "another instance saved this record's baseline first")
        elif rid in saved:
            kept.append(replace(p, link=saved[rid]))
        else:
            kept.append(p)
    return kept


def _prepare(batch: Batch, mapping: EntityMapping, targets: list[Target]) -> PersonGroup:
    """Read the Dynamics side and find each record's linked (or adopted) person."""
    ids = [t.dynamics_id for t in targets]
    mapping, records = read_dynamics(batch, mapping, ids)
    links = batch.store.get_links(mapping.entity, ids)
    group = PersonGroup(mapping, {t.dynamics_id: t for t in targets}, links, records)
    group.matches = linked_persons(batch.store, group)
    return group


def _read_and_match(batch: Batch, groups: list[PersonGroup]) -> Persons:
    """Read the matched persons, then match the others by e-mail. A mapped field gone from Marketo is marked
    broken and both reads are repeated without it."""
    wanted = sorted({m.person_id for g in groups for m in g.matches.values() if m.person_id})
    for _ in range(sum(len(g.mapping.fields) for g in groups) + 2):
        owners = sales_owners_synced(batch.mapping)
        fields = list(
            dict.fromkeys(f for g in groups for f in marketo_side.person_fields(g.mapping, sales_owner=owners))
        )
        try:
            persons = marketo_side.read_persons(batch.marketo, wanted, fields)
            matches, found = match_by_email(batch.marketo, batch.store, groups, persons, fields)
            break
        except MissingField as exc:
            marked = marketo_field_gone(batch, [g.mapping for g in groups], exc.field)
            if not marked:
                raise
            for group in groups:
                if group.mapping.entity in marked:
                    group.mapping = batch.mapping.get(group.mapping.entity)
    else:
        raise SkipRecord("Marketo person fields keep disappearing while reading", code="1006")
    for (index, rid), match in matches.items():
        group = groups[index]
        group.matches[rid] = match
        if match.kind is MatchKind.REFUSED:
            batch.fail(duplicate_person(group.mapping.entity, rid, match.reason, at=batch.clock()))
    persons.update(found)
    return persons


def _baseline(
    batch: Batch, mapping: EntityMapping, link: Link | None, follows: Link | None, person_id: str | None
) -> dict[str, Any]:
    """What both sides held at the last sync. A contact that takes over its qualified lead's person starts from the
    lead's baseline (field by Marketo field): the person was in step with the lead, so an edit made in Marketo
    between the qualification and its sync is a change to carry to the contact, not a collision Dynamics wins."""
    if link is not None and person_id == link.marketo_id:
        return dict(link.baseline)
    if follows is None or follows.marketo_id != person_id or "lead" not in batch.mapping.by_entity:
        return {}
    lead = batch.mapping.get("lead").by_marketo
    inherited = {}
    for f in mapping.fields:
        source = lead.get(f.marketo)
        if source is not None and source.dynamics in follows.baseline and source.type is f.type:
            inherited[f.dynamics] = follows.baseline[source.dynamics]
    return inherited


def _decide(batch: Batch, group: PersonGroup, persons: Mapping[str, dict[str, Any]]) -> list[PersonPlan]:
    mapping = group.mapping
    plans: list[PersonPlan] = []
    for rid, target in group.targets.items():
        link = group.links.get(rid)
        match = group.match(rid)
        if match.kind is MatchKind.REFUSED:
            continue  # a duplicate-person error was recorded
        if match.kind is MatchKind.FOLLOWED:
            batch.report.ignored.append((target.notes[0], f"{match.reason}: the person follows it"))
            continue
        record = group.records.get(rid)
        if record is None:
            _not_returned(batch, mapping, target, link)
            continue
        if qualified_lead(record, mapping):
            batch.report.ignored.append((target.notes[0], "lead qualified: its person follows the contact"))
            continue
        person_id = match.person_id
        person = persons.get(person_id) if person_id else None
        dynamics = read_dynamics_record(mapping.fields, record.values)
        marketo = read_marketo_record(mapping.fields, person) if person is not None else None
        baseline = _baseline(batch, mapping, link, match.follows, person_id)
        if link is not None and link.intent and person_id == link.marketo_id:
            baseline = settled_baseline(baseline, link.intent, dynamics, marketo)
        state = RecordState(
            dynamics=dynamics,
            marketo=marketo,
            baseline=baseline,
            dynamics_modified=modified_time(record.values.get("modifiedon")) if mapping.wants_modified_times else None,
            marketo_modified=modified_time((person or {}).get("updatedAt")) if mapping.wants_modified_times else None,
            sync_filter=sync_filter_flag(record, mapping),
            trigger=target.trigger,
        )
        decision = decide(mapping, state)
        batch.decided(target, decision, state)
        batch.fail(*conversion_errors(mapping, rid, decision, at=batch.clock()))
        owner = sales_owner(record, mapping) if sales_owners_synced(batch.mapping) else None
        followed = {SALES_OWNER_KEY: owner} if sales_owners_synced(batch.mapping) else {}
        if decision.action is RecordAction.CREATE_IN_MARKETO:
            body = marketo_side.marketo_body(mapping, decision)
            body[mapping.marketo_link_field] = rid
            if followed:
                body[SALES_OWNER_FIELD] = owner
            plans.append(PersonPlan(mapping, target, link, decision, None, body, followed=followed))
            continue
        if decision.action is not RecordAction.SYNC or person is None or person_id is None:
            continue
        body = marketo_side.marketo_body(mapping, decision)
        if str(person.get(mapping.marketo_link_field) or "").lower() != rid:
            body[mapping.marketo_link_field] = rid  # a newly matched person learns its Dynamics id
        if followed and str(person.get(SALES_OWNER_FIELD) or "").lower() != (owner or ""):
            body[SALES_OWNER_FIELD] = owner  # a new owner, or a Marketo edit of it: Dynamics wins
        if body:
            body["id"] = int(person["id"])
        update = RecordUpdate(rid, dict(decision.dynamics_writes), etag=record.etag)
        plans.append(
            PersonPlan(
                mapping,
                target,
                link,
                decision,
                person_id,
                body,
                update if decision.dynamics_writes else None,
                follows=match.follows,
                followed=followed,
            )
        )
    return plans


def _write(batch: Batch, groups: list[PersonGroup], plans: list[list[PersonPlan]]) -> None:
    """Carry the plans out: Marketo updates, then creates, then each entity's write-back and baselines."""
    updates = [p for group_plans in plans for p in group_plans if p.person_id is not None and p.marketo]
    updated = marketo_side.update_persons(batch.marketo, [p.marketo for p in updates])
    failed_marketo: dict[tuple[str, str], set[str]] = {}
    for plan, outcome in zip(updates, updated, strict=True):
        if not outcome.ok:
            entity, rid = plan.mapping.entity, plan.target.dynamics_id
            failed_marketo[(entity, rid)] = set(plan.decision.marketo_writes)
            batch.fail(marketo_error(entity, rid, "update", outcome, at=batch.clock()))
    creates = [p for group_plans in plans for p in group_plans if p.person_id is None]
    created = marketo_side.create_persons(batch.marketo, [(p.marketo, p.mapping.marketo_link_field) for p in creates])
    for plan, outcome in zip(creates, created, strict=True):
        if not outcome.ok or outcome.id is None:
            batch.fail(marketo_error(plan.mapping.entity, plan.target.dynamics_id, "create", outcome, at=batch.clock()))
            continue
        save_link(batch, plan.target, plan.link, str(outcome.id), {**plan.decision.new_baseline, **plan.followed})
    for group, group_plans in zip(groups, plans, strict=True):
        entity = group.mapping.entity
        synced = [p for p in group_plans if p.person_id is not None]
        written = _write_back(batch, entity, [p for p in synced if p.dynamics is not None])
        for plan in synced:
            rid = plan.target.dynamics_id
            if rid in written.conflicts:
                batch.requeue(plan.target, "the Dynamics record changed while it was being synced")
                continue
            failed = failed_marketo.get((entity, rid), set()) | written.failed.get(rid, set())
            baseline = keep_failed(plan.decision, plan.link, failed)
            if (entity, rid) not in failed_marketo:
                baseline.update(plan.followed)  # Marketo holds the record's sales owner
            save_link(batch, plan.target, plan.link, plan.person_id, baseline, follows=plan.follows)


def _write_back(batch: Batch, entity: str, plans: list[PersonPlan]) -> WriteBack:
    """PATCH every Marketo-side change back in one ``$batch``, each on the ETag the record was read with."""
    undone = WriteBack()
    updates = [p.dynamics for p in plans if p.dynamics is not None]
    if not updates:
        return undone
    for update, result in zip(updates, batch.dataverse.update_many(entity, updates), strict=True):
        if result.ok:
            continue
        if result.status == 412:
            undone.conflicts.add(update.id)
            continue
        undone.failed[update.id] = set(update.values)
        batch.fail(dataverse_error(entity, update.id, "update", result, at=batch.clock()))
    return undone


def _not_returned(batch: Batch, mapping: EntityMapping, target: Target, link: Link | None) -> None:
    """Dynamics did not return the record: deleted (its person is flagged, never deleted), or not readable by
    the sync user (a sync error)."""
    entity, rid = mapping.entity, target.dynamics_id
    if link is None:
        if not target.deleted:  # else: created and deleted before it ever synced
            batch.fail(record_not_found(entity, rid, at=batch.clock()))
        return
    if link.deleted_in_dynamics or not target.deleted:
        return  # already flagged, or a late update about a record whose delete notice is on its way
    state = RecordState(dynamics=None, marketo={}, baseline=link.baseline, linked=True, trigger=target.trigger)
    decision = decide(mapping, state)
    batch.decided(target, decision, state)
    if decision.action is RecordAction.FLAG_DELETED and link.marketo_id:
        flag = {"id": int(link.marketo_id), DELETED_FLAG_FIELD: True}
        (outcome,) = marketo_side.update_persons(batch.marketo, [flag])
        if not outcome.ok:
            batch.fail(marketo_error(entity, rid, "flag_deleted", outcome, at=batch.clock()))
            return
    try:
        batch.store.save_link(replace(link, deleted_in_dynamics=True, synced_at=batch.clock()))
    except Conflict:
        batch.requeue(target, "the link changed while the delete was being recorded")
