"""Which Marketo person each Dynamics lead or contact is, as a value.

In order: the person its link names; for a contact qualified from a lead, the lead's person (the person follows
the contact, no duplicate is created); otherwise, or when that person is gone from Marketo, an existing person
with the same e-mail, unless that person is already linked to another record (a duplicate: refused, reported,
nothing written). No match means a person is created if the decision says so. A lead whose person has followed
it into a contact is left alone: it is not matched again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.core.mapping import EntityMapping
from shared.dataverse.records import Record
from shared.marketo.client import MarketoClient
from shared.pipeline import marketo_side
from shared.pipeline.reconcile.batch import Target
from shared.store.base import StateStore
from shared.store.model import Link


class MatchKind(StrEnum):
    LINKED = "linked"  # the person the record's link names
    ADOPTED = "adopted"  # a contact qualified from a lead takes the lead's person
    BY_EMAIL = "by_email"  # an existing, unlinked person with the record's e-mail
    REFUSED = "refused"  # the e-mail's person is linked to another record: nothing is written
    FOLLOWED = "followed"  # a qualified lead: its person follows the contact now, the lead is left alone
    NONE = "none"  # no person: one is created if the decision says so


@dataclass(frozen=True, slots=True)
class PersonMatch:
    kind: MatchKind
    person_id: str | None = None
    reason: str = ""  # with REFUSED (worded for the sync error) and FOLLOWED: why
    follows: Link | None = None  # the qualified lead's link: once saved, its person follows the contact


NO_PERSON = PersonMatch(MatchKind.NONE)


@dataclass
class PersonGroup:
    """One person entity's part of a batch, from read to write."""

    mapping: EntityMapping
    targets: dict[str, Target]
    links: dict[str, Link]
    records: dict[str, Record]
    matches: dict[str, PersonMatch] = field(default_factory=dict)

    def match(self, rid: str) -> PersonMatch:
        return self.matches.get(rid, NO_PERSON)


def linked_persons(store: StateStore, group: PersonGroup) -> dict[str, PersonMatch]:
    """The person each record's link names, or (contacts) the person of the lead it was qualified from."""
    matches: dict[str, PersonMatch] = {}
    for rid, link in group.links.items():
        if link.followed_by is not None:
            matches[rid] = PersonMatch(MatchKind.FOLLOWED, reason=f"lead qualified into {link.followed_by}")
        elif link.marketo_id:
            matches[rid] = PersonMatch(MatchKind.LINKED, str(link.marketo_id))
    if group.mapping.entity != "contact":
        return matches
    lead_of = {
        str(record.values["originatingleadid"].id): rid
        for rid, record in group.records.items()
        if rid not in matches and getattr(record.values.get("originatingleadid"), "id", None)
    }
    for lead_id, lead_link in store.get_links("lead", lead_of).items():
        if lead_link.marketo_id:
            matches[lead_of[lead_id]] = PersonMatch(MatchKind.ADOPTED, str(lead_link.marketo_id), follows=lead_link)
    return matches


def match_by_email(
    marketo: MarketoClient,
    store: StateStore,
    groups: Sequence[PersonGroup],
    persons: Mapping[str, dict[str, Any]],
    fields: Sequence[str],
) -> tuple[dict[tuple[int, str], PersonMatch], dict[str, dict[str, Any]]]:
    """Records with no person (or one gone from Marketo) matched by e-mail, in one Marketo lookup for the batch.

    Returns the new matches by (group index, Dynamics id) and the persons they found, by Marketo id.
    """
    emails: dict[tuple[int, str], str] = {}
    for index, group in enumerate(groups):
        email_field = group.mapping.by_marketo.get("email")
        if email_field is None:
            continue
        for rid, record in group.records.items():
            match = group.match(rid)
            if match.kind is not MatchKind.FOLLOWED and match.person_id not in persons:
                emails[(index, rid)] = str(record.values.get(email_field.dynamics) or "")
    if not any(emails.values()):
        return {}, {}
    by_email = marketo_side.find_persons_by_email(marketo, list(emails.values()), fields)
    matches: dict[tuple[int, str], PersonMatch] = {}
    found: dict[str, dict[str, Any]] = {}
    for (index, rid), email in emails.items():
        person = by_email.get(email.strip().lower())
        if person is None:
            continue
        entity, person_id = groups[index].mapping.entity, str(person["id"])
        other = store.find_by_marketo(entity, person_id)
        if other is not None and (other.entity, other.dynamics_id) != (entity, rid):
            why = (
                f"e-mail matches Marketo person {person_id}, already linked to {other.entity} "
                f"{other.dynamics_id}; merge the records or change the e-mail"
            )
            matches[(index, rid)] = PersonMatch(MatchKind.REFUSED, reason=why)
            continue
        matches[(index, rid)] = PersonMatch(MatchKind.BY_EMAIL, person_id, follows=groups[index].match(rid).follows)
        found[person_id] = person
    return matches, found
