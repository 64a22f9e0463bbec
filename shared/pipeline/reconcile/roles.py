"""An opportunity's contacts become its Marketo opportunity roles, and the roles follow them.

Roles come from where Marketo's own Dynamics sync takes them: the primary contact (``parentcontactid``) as
"Primary Contact", the Potential Customer (``customerid``) when it is a contact as "Potential Customer", and the
opportunity's stakeholders, connections from the opportunity to a contact (:mod:`shared.pipeline.connections`),
each as its connection role's name ("Stakeholder" when the connection names none). Marketo keys a role by
(opportunity, person, role); the primary contact's role is the primary one (the Potential Customer's, when the
opportunity has no primary contact).

Which roles an opportunity should have is a pure function (:func:`desired_roles`) of those contacts and their
persons; what to write is a pure diff (:func:`plan_roles`) of that set against the roles the link last sent, kept
in the opportunity's baseline under :data:`ROLES_KEY`: new roles (and a changed ``isPrimary``) are upserted, roles
no longer wanted are deleted (``opportunities/roles/delete.json``). A write that fails leaves that role as it was
in the sent set and becomes a sync error, so the opportunity's next reconcile tries again. A contact with no person
has no role. One the sync has not reconciled yet (an opportunity and its contact created together, as a lead's
qualification does) makes the opportunity be decided again a moment later, up to :data:`CONTACT_WAITS` times;
after that (or for a contact kept out of the sync) its role waits for the opportunity's next reconcile.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from shared.core.values import Canonical
from shared.dataverse.records import Record
from shared.marketo.models import RecordOutcome, RecordStatus
from shared.pipeline.connections import CONNECTIONS_KEY, Stakeholder, read_stakeholders
from shared.pipeline.dataverse_side import CUSTOMER_KEY, PRIMARY_KEY, customer_contact, primary_contact
from shared.pipeline.reconcile.batch import Batch, Target
from shared.pipeline.sync_errors import marketo_error

PRIMARY_CONTACT_ROLE = "Primary Contact"
CUSTOMER_ROLE = "Potential Customer"
STAKEHOLDER_ROLE = "Stakeholder"
ROLES_KEY = "_roles"  # in the opportunity's baseline: the roles Marketo has, as JSON [[leadId, role, isPrimary]]
LEGACY_ROLE_KEY = "_role:primary_contact"  # before roles followed changes: the contact whose role Marketo has
_NOT_FOUND = "1013"  # a delete of a role Marketo no longer has: already done
CONTACT_WAITS = 3
"""How often an opportunity is decided again while a role contact has not been reconciled yet."""


@dataclass(frozen=True, slots=True, order=True)
class Role:
    """One Marketo opportunity role of an opportunity: a person in a role."""

    lead_id: int
    role: str
    primary: bool = False

    @property
    def key(self) -> tuple[int, str]:
        """What Marketo dedupes a role on (with the opportunity)."""
        return (self.lead_id, self.role)


@dataclass(frozen=True, slots=True)
class RoleSources:
    """The contacts an opportunity's roles come from, as Dynamics has them now."""

    primary: str | None = None
    customer: str | None = None
    stakeholders: tuple[Stakeholder, ...] = ()

    def contacts(self) -> set[str]:
        found = {s.contact_id for s in self.stakeholders}
        return found | {c for c in (self.primary, self.customer) if c}


@dataclass(frozen=True, slots=True)
class RolePlan:
    """What to write so Marketo has the desired roles: upserts (new, or ``isPrimary`` changed) and deletes."""

    upserts: tuple[Role, ...] = ()
    deletes: tuple[Role, ...] = ()


def desired_roles(sources: RoleSources, persons: Mapping[str, int]) -> frozenset[Role]:
    """The roles the opportunity should have in Marketo; ``persons``: Marketo person id by contact id (a contact
    with no person has no role yet). One role per (person, role name); primary if any source makes it so."""
    roles: dict[tuple[int, str], Role] = {}

    def add(contact: str | None, name: str, primary: bool) -> None:
        person = persons.get(contact) if contact else None
        if person is None:
            return
        earlier = roles.get((person, name))
        roles[(person, name)] = Role(person, name, primary or (earlier is not None and earlier.primary))

    add(sources.primary, PRIMARY_CONTACT_ROLE, True)
    add(sources.customer, CUSTOMER_ROLE, sources.primary is None)
    for stakeholder in sources.stakeholders:
        add(stakeholder.contact_id, (stakeholder.role or "").strip() or STAKEHOLDER_ROLE, False)
    return frozenset(roles.values())


def plan_roles(desired: Iterable[Role], sent: Iterable[Role]) -> RolePlan:
    """The writes from the roles last sent to the desired ones: nothing when they agree."""
    wanted = {r.key: r for r in desired}
    had = {r.key: r for r in sent}
    upserts = tuple(sorted(r for key, r in wanted.items() if had.get(key) != r))
    deletes = tuple(sorted(r for key, r in had.items() if key not in wanted))
    return RolePlan(upserts, deletes)


def after_writes(sent: Iterable[Role], plan: RolePlan, failed: Iterable[Role] = ()) -> frozenset[Role]:
    """The roles Marketo has once the plan is carried out, except the writes that failed."""
    skipped = set(failed)
    roles = {r.key: r for r in sent}
    for role in plan.upserts:
        if role not in skipped:
            roles[role.key] = role
    for role in plan.deletes:
        if role not in skipped:
            roles.pop(role.key, None)
    return frozenset(roles.values())


def roles_text(roles: Iterable[Role]) -> str:
    """The roles as the baseline keeps them (JSON text: a baseline holds scalars)."""
    return json.dumps([[r.lead_id, r.role, r.primary] for r in sorted(roles)], separators=(",", ":"))


def sent_roles(baseline: Mapping[str, Canonical], persons: Mapping[str, int]) -> frozenset[Role]:
    """The roles the link last sent (a baseline from before roles followed changes names the primary contact)."""
    text = baseline.get(ROLES_KEY)
    if isinstance(text, str):
        try:
            return frozenset(Role(int(lead), str(role), bool(primary)) for lead, role, primary in json.loads(text))
        except (ValueError, TypeError):
            return frozenset()  # unreadable: every desired role is sent again (upserts are idempotent)
    legacy = baseline.get(LEGACY_ROLE_KEY)
    person = persons.get(legacy) if isinstance(legacy, str) else None
    return frozenset({Role(person, PRIMARY_CONTACT_ROLE, True)}) if person is not None else frozenset()


def connection_tokens(stakeholders: Iterable[Stakeholder]) -> str:
    return ",".join(sorted({s.token for s in stakeholders}))


def _body(opportunity: str, role: Role) -> dict[str, Any]:
    return {"externalOpportunityId": opportunity, "leadId": role.lead_id, "role": role.role, "isPrimary": role.primary}


def _key(opportunity: str, role: Role) -> dict[str, Any]:
    return {"externalOpportunityId": opportunity, "leadId": role.lead_id, "role": role.role}


def _deleted(outcome: RecordOutcome) -> bool:
    return outcome.status == RecordStatus.DELETED or _NOT_FOUND in outcome.reason_codes


def sync_roles(
    batch: Batch,
    records: Mapping[str, Record],
    baselines: Mapping[str, MutableMapping[str, Canonical]],
    targets: Mapping[str, Target] | None = None,
) -> None:
    """Bring the roles of the opportunities in ``baselines`` (each in Marketo; its baseline to save next) in step
    with Dynamics, and keep in each baseline what Marketo now has; ``targets`` (by id) are decided again while a
    role contact has not been reconciled yet."""
    ids = [rid for rid in baselines if rid in records]
    if not ids:
        return
    stakeholders = read_stakeholders(batch.dataverse, ids)
    sources = {
        rid: RoleSources(primary_contact(records[rid]), customer_contact(records[rid]), stakeholders.get(rid, ()))
        for rid in ids
    }
    contacts = set().union(*(s.contacts() for s in sources.values()))
    contacts |= {str(v) for rid in ids if isinstance(v := baselines[rid].get(LEGACY_ROLE_KEY), str)}
    links = batch.store.get_links("contact", contacts)
    persons = {c: int(link.marketo_id) for c, link in links.items() if link.marketo_id}
    for rid in ids:
        target = (targets or {}).get(rid)
        waiting = sources[rid].contacts() - set(links)
        if target is not None and waiting and max((n.attempt for n in target.notes), default=0) + 1 < CONTACT_WAITS:
            batch.requeue(target, "a role contact has not synced yet")
    plans: dict[str, tuple[frozenset[Role], RolePlan]] = {}
    for rid in ids:
        sent = sent_roles(baselines[rid], persons)
        plans[rid] = (sent, plan_roles(desired_roles(sources[rid], persons), sent))
    upserts = [(rid, role) for rid, (_, plan) in plans.items() for role in plan.upserts]
    deletes = [(rid, role) for rid, (_, plan) in plans.items() for role in plan.deletes]
    failed: set[tuple[str, Role]] = set()
    if upserts:
        outcomes = batch.marketo.sync_opportunity_roles([_body(rid, role) for rid, role in upserts])
        for (rid, role), outcome in zip(upserts, outcomes, strict=True):
            if not outcome.ok:
                failed.add((rid, role))
                batch.fail(marketo_error("opportunity", rid, "role", outcome, at=batch.clock()))
    if deletes:
        outcomes = batch.marketo.delete_opportunity_roles([_key(rid, role) for rid, role in deletes])
        for (rid, role), outcome in zip(deletes, outcomes, strict=True):
            if not _deleted(outcome):
                failed.add((rid, role))
                batch.fail(marketo_error("opportunity", rid, "role_delete", outcome, at=batch.clock()))
    for rid, (sent, plan) in plans.items():
        baseline = baselines[rid]
        now_sent = after_writes(sent, plan, [role for failed_rid, role in failed if failed_rid == rid])
        baseline[ROLES_KEY] = roles_text(now_sent)
        baseline[PRIMARY_KEY] = sources[rid].primary
        baseline[CUSTOMER_KEY] = sources[rid].customer
        baseline[CONNECTIONS_KEY] = connection_tokens(sources[rid].stakeholders)
        baseline.pop(LEGACY_ROLE_KEY, None)
