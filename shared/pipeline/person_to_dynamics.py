"""Marketo's "Sync Person to Microsoft": one Dynamics lead for an unlinked person, however many calls race.

A double click, two instances, a caller retrying after a timeout: every call for one person goes through a claim
in the state store (keyed by the Marketo id, made only if absent, changed only on its ETag), so one caller links
or creates and the others answer with what it made. They share nothing but the store.

1. A person linked already (the link is the truth) is answered with its link.
2. The id, the person and its values are checked before anything is claimed: a bad id, a person Marketo does not
   have, values Dynamics cannot take are refused, and nothing is claimed or created.
3. The claim (:func:`claim_step` decides, as a value). None yet: make it, with the id the lead will be created
   with. Another caller's live claim: poll the store, ``POLLS`` times ``POLL_INTERVAL`` apart, and answer with the
   link as soon as it is saved; still not there, answer "in progress" (409, ``Retry-After``). A claim released
   (its owner's create failed), done without a link, or older than the claim timeout (its owner crashed): take it
   over on its ETag, keeping its lead id.
4. The owner links or creates: the lead with the claim's id when a previous owner created it (it crashed before
   saving the link), else a Dynamics contact or lead with the person's e-mail (one the sync filter kept out, say),
   else a new lead created with the claim's id. Then the link, the claim marked done, the Dynamics id in Marketo.

The claim's lead id makes the create itself safe: should two callers both hold the claim (the first was slow past
the timeout, not dead), Dataverse creates one lead with that id and refuses the other (a duplicate key), which the
second takes as "it exists" and links. The timeout only decides how soon a crashed owner's claim is taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.core.mapping import EntityMapping, FieldType, SyncMapping
from shared.core.values import Canonical, ConversionError, from_marketo
from shared.core.writes import to_dynamics
from shared.dataverse.client import DataverseClient
from shared.dataverse.session import odata_literal
from shared.errors import Conflict, InvalidRequest, NotFound, NotPossible, SyncError
from shared.marketo.client import MarketoClient
from shared.pipeline.marketo_side import person_fields, read_persons
from shared.store.base import StateStore
from shared.store.model import ClaimState, Link, PersonClaim

log = logging.getLogger(__name__)

MAX_MARKETO_ID = 2**31 - 1  # Marketo lead ids are 32-bit integers
POLLS = 20
POLL_INTERVAL = 0.5  # seconds: a loser waits up to 10 s for the winner, well inside an HTTP call's patience
RETRY_AFTER = 5  # seconds, told to a caller answered "in progress"
EMAIL_COLUMN = "emailaddress1"
MATCH_ENTITIES = ("contact", "lead")  # a person follows its contact once the lead is qualified: contacts first
DUPLICATE_RECORD = "0x80040237"  # Dataverse: a record with that id exists already


class Outcome(StrEnum):
    CREATED = "created"
    ALREADY_LINKED = "already linked"
    LINKED_EXISTING = "linked existing"  # a Dynamics record with the person's e-mail was there: linked, not created
    IN_PROGRESS = "in-progress"  # another call is creating the lead right now


@dataclass(frozen=True, slots=True)
class PersonSynced:
    outcome: Outcome
    entity: str | None = None
    id: str | None = None
    matched_by: str | None = None  # LINKED_EXISTING: what matched ("email")
    retry_after: int | None = None  # IN_PROGRESS: seconds

    @property
    def created(self) -> bool:
        return self.outcome is Outcome.CREATED


class ClaimStep(StrEnum):
    MAKE = "make"  # no claim yet: make one (insert-if-absent)
    TAKE_OVER = "take over"  # released, done without a link, or abandoned: take it on its ETag
    WAIT = "wait"  # another caller is linking or creating


def claim_step(claim: PersonClaim | None, now: datetime, timeout: timedelta) -> ClaimStep:
    """What to do about a person's claim (asked only while the person has no link)."""
    if claim is None:
        return ClaimStep.MAKE
    if claim.state is ClaimState.CREATING and now - claim.claimed_at < timeout:
        return ClaimStep.WAIT
    return ClaimStep.TAKE_OVER


@dataclass(frozen=True, slots=True)
class _Work:
    """What the owner of a claim needs: the ports, the person and the lead values made from it."""

    store: StateStore
    mapping: SyncMapping
    dataverse: DataverseClient
    marketo: MarketoClient
    person_id: str
    email: str | None
    values: dict[str, Any]
    baseline: dict[str, Canonical]
    clock: Callable[[], datetime]
    owner_id: str | None = None  # the Dynamics user a created lead is assigned to (None: Dataverse's default)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def sync_person_to_dynamics(
    store: StateStore,
    mapping: SyncMapping,
    dataverse: DataverseClient,
    marketo: MarketoClient,
    marketo_id: str,
    *,
    claim_timeout: float = 60.0,
    clock: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], None] = time.sleep,
    owner: str | None = None,
    owner_id: str | None = None,
) -> PersonSynced:
    """Link the person to its Dynamics lead or contact, creating a lead only when none is there; see the module.

    ``owner_id``: the ``systemuserid`` a created lead is assigned to (``ownerid@odata.bind``). A record that is
    matched or already linked keeps its owner here; a caller that wants it reassigned does that itself."""
    person_id = marketo_person_id(marketo_id)
    linked = store.find_by_marketo("lead", person_id)
    if linked is not None:
        return _already(linked)
    lead = mapping.get("lead")
    person = read_persons(marketo, [person_id], person_fields(lead)).get(person_id)
    if person is None:
        raise NotFound("Marketo has no person with this id", code="not-found")
    values, baseline = lead_values(lead, person, person_id)
    email = str(person.get("email") or "").strip() or None
    work = _Work(store, mapping, dataverse, marketo, person_id, email, values, baseline, clock, owner_id)
    held = _claim(store, person_id, owner or _owner(), clock, sleep, timedelta(seconds=claim_timeout))
    if isinstance(held, PersonSynced):
        return held
    claim, took_over = held
    try:
        return _link_or_create(work, claim, took_over=took_over)
    except Exception:
        with suppress(SyncError):  # released, the next call retries at once with the same lead id
            store.save_person_claim(replace(claim, state=ClaimState.RELEASED))
        raise


def marketo_person_id(text: str) -> str:
    """The id as Marketo writes it, or a refusal: digits only, 1 to 2^31-1 (leading zeros dropped)."""
    if not (text.isascii() and text.isdigit()):
        raise InvalidRequest("a Marketo lead id is digits", code="bad-id", field="marketo_id")
    if len(text.lstrip("0")) > len(str(MAX_MARKETO_ID)) or not 1 <= int(text) <= MAX_MARKETO_ID:
        raise InvalidRequest(f"a Marketo lead id is from 1 to {MAX_MARKETO_ID}", code="bad-id", field="marketo_id")
    return str(int(text))


def lead_values(
    lead: EntityMapping, person: Mapping[str, Any], person_id: str
) -> tuple[dict[str, Any], dict[str, Canonical]]:
    """The new lead's columns (wire values) and the baseline they make; NotPossible when one cannot be written."""
    values: dict[str, Any] = {}
    baseline: dict[str, Canonical] = {}
    problems: list[ConversionError] = []
    for f in lead.live_fields:
        if not f.to_dynamics_allowed or f.type is FieldType.LOOKUP or f.marketo not in person:
            continue
        canonical = from_marketo(f, person[f.marketo])
        if isinstance(canonical, ConversionError):
            problems.append(canonical)
            continue
        wire = to_dynamics(f, canonical)
        if isinstance(wire, ConversionError):
            problems.append(wire)
            continue
        if canonical is not None:
            values[f.dynamics] = wire
        baseline[f.dynamics] = canonical
    if problems:
        log.warning("person %s not synced to Dynamics: %s", person_id, "; ".join(map(str, problems)))
        names = ", ".join(p.field for p in problems)
        raise NotPossible(
            f"the person's values of {names} cannot be written to Dynamics as they are (the function logs say why)",
            code="unconvertible",
        )
    return values, baseline


def _already(link: Link) -> PersonSynced:
    return PersonSynced(Outcome.ALREADY_LINKED, link.entity, link.dynamics_id)


def _claim(
    store: StateStore,
    person_id: str,
    owner: str,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    timeout: timedelta,
) -> tuple[PersonClaim, bool] | PersonSynced:
    """The claim, won (and whether it was taken over), or the answer a caller that did not win gives."""
    polls = 0
    for _ in range(2 * POLLS + 1):  # every pass polls or follows a lost insert/replace: bounded either way
        claim = store.get_person_claim(person_id)  # before the link: a claim seen done has its link saved
        linked = store.find_by_marketo("lead", person_id)
        if linked is not None:
            return _already(linked)
        now = clock()
        step = claim_step(claim, now, timeout)
        if step is ClaimStep.WAIT:
            if polls == POLLS:
                break
            polls += 1
            sleep(POLL_INTERVAL)
            continue
        if claim is not None:
            log.info("person %s: taking over the %s claim of %s", person_id, claim.state.value, claim.owner)
        lead_id = claim.lead_id if claim is not None else str(uuid.uuid4())
        wanted = PersonClaim(person_id, owner, now, lead_id, etag=claim.etag if claim is not None else None)
        try:
            return store.save_person_claim(wanted), claim is not None
        except Conflict:
            continue  # another caller made or took it first: look again
    return PersonSynced(Outcome.IN_PROGRESS, retry_after=RETRY_AFTER)


def _link_or_create(work: _Work, claim: PersonClaim, *, took_over: bool) -> PersonSynced:
    lead_id = claim.lead_id.lower()
    if took_over and lead_id in work.dataverse.read_by_ids("lead", [lead_id], [EMAIL_COLUMN]):
        log.info("person %s: linking lead %s, created by an earlier call", work.person_id, lead_id)
        return _finish(work, claim, "lead", lead_id, work.baseline, Outcome.CREATED)
    match = _match_by_email(work)
    if match is not None:
        entity, record_id = match
        return _finish(work, claim, entity, record_id, {}, Outcome.LINKED_EXISTING, matched_by="email")
    primary = work.dataverse.entity("lead").primary_id_attribute
    try:
        owner = {"ownerid@odata.bind": f"/systemusers({work.owner_id})"} if work.owner_id else {}
        created = work.dataverse.create("lead", {**work.values, **owner, primary: lead_id}).lower()
    except Conflict as exc:
        if exc.code != DUPLICATE_RECORD:
            raise
        log.info("person %s: lead %s exists already, made by another holder of the claim", work.person_id, lead_id)
        created = lead_id
    return _finish(work, claim, "lead", created, work.baseline, Outcome.CREATED)


def _match_by_email(work: _Work) -> tuple[str, str] | None:
    """A Dynamics contact or lead with the person's e-mail that is free to link (or linked to this person)."""
    if work.email is None or "," in work.email:
        return None
    taken = None
    for entity in (e for e in MATCH_ENTITIES if e in work.mapping.by_entity):
        flt = f"{EMAIL_COLUMN} eq {odata_literal(work.email)}"
        for record in work.dataverse.query(entity, select=[EMAIL_COLUMN], filter=flt, orderby="createdon asc", top=10):
            link = work.store.get_link(entity, record.id)
            if link is None or link.marketo_id is None or str(link.marketo_id) == work.person_id:
                return entity, record.id.lower()
            taken = entity
    if taken is not None:
        raise NotPossible(
            f"a Dynamics {taken} with the person's e-mail is linked to another Marketo person: "
            "merge the duplicate persons in Marketo first",
            code="email-linked-elsewhere",
        )
    return None


def _finish(
    work: _Work,
    claim: PersonClaim,
    entity: str,
    record_id: str,
    baseline: dict[str, Canonical],
    outcome: Outcome,
    *,
    matched_by: str | None = None,
) -> PersonSynced:
    """Save the link, mark the claim done, tell Marketo the Dynamics id."""
    store = work.store
    existing = store.get_link(entity, record_id)
    if existing is None:
        try:
            store.save_link(Link(entity, record_id, work.person_id, baseline, synced_at=work.clock()))
        except Conflict:  # another holder of the claim saved the same link first
            outcome = Outcome.ALREADY_LINKED
    elif existing.marketo_id is None:
        store.save_link(replace(existing, marketo_id=work.person_id, synced_at=work.clock()))
    else:  # linked to this person already (a record linked to another is never matched)
        outcome = Outcome.ALREADY_LINKED
    done = replace(claim, state=ClaimState.DONE, entity=entity, dynamics_id=record_id)
    with suppress(Conflict):  # taken over meanwhile (we were slow): the link saved above is the answer
        store.save_person_claim(done)
    link_field = work.mapping.get(entity).marketo_link_field
    work.marketo.sync_leads(
        [{"id": int(work.person_id), link_field: record_id}], action="updateOnly", lookup_field="id"
    )
    return PersonSynced(outcome, entity, record_id, matched_by)
