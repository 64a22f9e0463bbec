"""An opportunity's primary contact becomes its Marketo opportunity role.

Marketo links opportunities to persons through roles, keyed by (opportunity, person, role). The contact whose
role Marketo has is kept in the opportunity's baseline under :data:`ROLE_KEY`, so the role is sent once per
change of contact, not on every change of the opportunity. A contact with no person yet gets its role at the
opportunity's next change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.core.values import Canonical
from shared.dataverse.records import Record
from shared.pipeline.reconcile.batch import Batch
from shared.pipeline.sync_errors import marketo_error

PRIMARY_CONTACT_ROLE = "Primary Contact"
ROLE_KEY = "_role:primary_contact"  # kept in the opportunity's baseline: the contact whose role Marketo has


def sync_primary_contact_roles(
    batch: Batch, baselines: Mapping[str, Mapping[str, Canonical]], records: Mapping[str, Record]
) -> dict[str, str]:
    """Send the roles the opportunities (their new baselines, by id) need; returns opportunity id -> the contact
    whose role Marketo now has, for the caller to keep in each baseline."""
    wanted: dict[str, str] = {}
    for rid, baseline in baselines.items():
        record = records.get(rid)
        contact = getattr(record.values.get("parentcontactid"), "id", None) if record is not None else None
        if contact and baseline.get(ROLE_KEY) != contact:
            wanted[rid] = str(contact)
    if not wanted:
        return {}
    contacts = batch.store.get_links("contact", set(wanted.values()))
    roles: list[tuple[str, str, dict[str, Any]]] = []
    for rid, contact in wanted.items():
        person = contacts[contact].marketo_id if contact in contacts else None
        if person:
            body = {
                "externalOpportunityId": rid,
                "leadId": int(person),
                "role": PRIMARY_CONTACT_ROLE,
                "isPrimary": True,
            }
            roles.append((rid, contact, body))
    if not roles:
        return {}  # the contact has no person yet: retried at the opportunity's next change
    outcomes = batch.marketo.sync_opportunity_roles([body for _, _, body in roles])
    done: dict[str, str] = {}
    for (rid, contact, _), outcome in zip(roles, outcomes, strict=True):
        if outcome.ok:
            done[rid] = contact
        else:
            batch.fail(marketo_error("opportunity", rid, "role", outcome, at=batch.clock()))
    return done
