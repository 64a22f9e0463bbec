"""Reconcile a batch of notifications: read both sides in bulk, decide per record, write in bulk, save baselines.

Calls per batch, per entity, in the steady state: one Dataverse read, one Marketo read (persons only), one
Marketo write, one Dataverse ``$batch`` when Marketo-side changes flow back. New records add one Marketo lookup
by e-mail. Everything the decision needs is re-read, so a notification's age or order does not matter.

What can go wrong, and where it goes:

* a whole call fails transiently (throttled past the client's retries, service down): the exception propagates,
  the trigger fails, Service Bus redelivers the batch (dead-letter after its max delivery count);
* one record fails (bad value, Marketo skipped it, no privilege): a sync error with operation, direction, code and
  message; the rest of the batch goes on and that record's baseline keeps its old values;
* a record changed under us (Dataverse 412, a baseline saved by another instance): the notification is put back
  on the queue to be decided again, up to :data:`MAX_ATTEMPTS` times, then recorded as a sync error.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.entities import Side
from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldState, FieldType, SyncMapping, load_mapping
from shared.core.policy import Action, Decision, RecordAction, RecordState, Trigger, decide, decide_one_way
from shared.core.values import Canonical, read_dynamics_record, read_marketo_record
from shared.dataverse.client import BatchResult, DataverseClient, RecordUpdate
from shared.dataverse.records import Record
from shared.errors import Conflict, SkipRecord
from shared.marketo.client import MarketoClient
from shared.marketo.models import RecordOutcome
from shared.pipeline import marketo_side
from shared.pipeline.notification import Kind, Notification, Source
from shared.queueing import OutgoingMessage, QueueSender
from shared.store.base import MAPPING_DOCUMENT, StateStore
from shared.store.model import Link, SyncErrorRecord

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
DELETED_FLAG_FIELD = "deletedInDynamics"
TO_MARKETO = "dynamics_to_marketo"
TO_DYNAMICS = "marketo_to_dynamics"
_DYNAMICS_SOURCES = frozenset({Source.DATAVERSE_WEBHOOK, Source.DATAVERSE_QUEUE, Source.DATAVERSE_CATCHUP})


def dataverse_select(mapping: EntityMapping) -> list[str]:
    """``$select`` names: lookups are selected as ``_<column>_value`` (the Web API's rule)."""
    names = [mapping.id_column]
    for f in mapping.live_fields:
        names.append(f"_{f.dynamics}_value" if f.type is FieldType.LOOKUP else f.dynamics)
    if mapping.sync_filter:
        names.append(SYNC_FILTER_COLUMN)
    if mapping.entity == "contact":
        names.append("_originatingleadid_value")
    if mapping.entity == "opportunity":
        names.append("_parentcontactid_value")  # its primary contact becomes a Marketo opportunity role
    return list(dict.fromkeys(names))


_MISSING_MARKETO_FIELD = re.compile(r"Field '([A-Za-z0-9_]+)' not found")
_MISSING_PROPERTY = re.compile(r"Could not find a property named '_?([a-z0-9_]+?)(?:_value)?' on type")
PRIMARY_CONTACT_ROLE = "Primary Contact"
_ROLE_KEY = "_role:primary_contact"  # kept in the opportunity's baseline: the contact whose role Marketo has


@dataclass
class _Target:
    """One Dynamics record to reconcile, with every notification that named it in this batch."""

    entity: str
    dynamics_id: str
    notes: list[Notification] = field(default_factory=list)

    @property
    def deleted(self) -> bool:
        return any(n.kind is Kind.DELETE for n in self.notes)

    @property
    def trigger(self) -> Trigger:
        side = Side.DYNAMICS if any(n.source in _DYNAMICS_SOURCES for n in self.notes) else Side.MARKETO
        return Trigger(side, by_sync=all(n.by_sync for n in self.notes))


@dataclass
class _PersonGroup:
    """One person entity's part of a batch, from read to write."""

    mapping: EntityMapping
    targets: dict[str, _Target]
    links: dict[str, Link]
    records: dict[str, Record]
    person_of: dict[str, str] = field(default_factory=dict)  # Dynamics id -> Marketo id ("" = refused)
    adopted: dict[str, Link] = field(default_factory=dict)  # contact id -> the lead link whose person it takes
    dynamics_writes: list[tuple[_Target, RecordUpdate, Decision]] = field(default_factory=list)
    plans: dict[str, tuple[Decision, str]] = field(default_factory=dict)


@dataclass
class BatchReport:
    """What a batch did: decisions (for logs and tests), counters, errors, and notifications put back."""

    decisions: list[tuple[str, str, Decision]] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[SyncErrorRecord] = field(default_factory=list)
    requeued: list[Notification] = field(default_factory=list)
    ignored: list[tuple[Notification, str]] = field(default_factory=list)
    deferred: list[Notification] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        mapping: SyncMapping,
        store: StateStore,
        dataverse: DataverseClient,
        marketo: MarketoClient,
        queue: QueueSender,
        queue_name: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pause_delay: timedelta = timedelta(seconds=30),
        on_mapping_change: Callable[[], object] | None = None,
    ) -> None:
        self.mapping = mapping
        self.store = store
        self.dataverse = dataverse
        self.marketo = marketo
        self.queue = queue
        self.queue_name = queue_name
        self.clock = clock
        self.pause_delay = pause_delay
        self.on_mapping_change = on_mapping_change  # tells the process its cached mapping is stale

    # --- the batch ------------------------------------------------------------------------------------------------

    def run(self, notes: Sequence[Notification]) -> BatchReport:
        report = BatchReport()
        pause = self.store.get_pause()
        targets: dict[tuple[str, str], _Target] = {}
        persons = self.store.find_many_by_marketo(
            "lead", [n.marketo_id for n in notes if n.dynamics_id is None and n.marketo_id]
        )
        for note in notes:
            resolved = self._resolve(note, persons, report)
            if resolved is None:
                continue
            entity, dynamics_id = resolved
            if pause.is_paused(entity):
                report.deferred.append(note)
                continue
            targets.setdefault((entity, dynamics_id), _Target(entity, dynamics_id)).notes.append(note)
        if report.deferred:
            self._defer(report.deferred)
        by_entity: dict[str, list[_Target]] = defaultdict(list)
        for target in targets.values():
            by_entity[target.entity].append(target)
        person_groups = []
        for entity, group in by_entity.items():
            mapping = self.mapping.get(entity)
            if mapping.rule.two_way:
                person_groups.append((mapping, group))
            else:
                self._objects(mapping, group, report)
        if person_groups:
            self._persons(person_groups, report)
        self._finish(report)
        return report

    def _resolve(self, note: Notification, persons: Mapping[str, Link], report: BatchReport) -> tuple[str, str] | None:
        if note.dynamics_id is not None and note.entity is not None:
            if note.entity not in self.mapping.by_entity:
                report.ignored.append((note, f"entity '{note.entity}' is no longer in the mapping"))
                return None
            return note.entity, note.dynamics_id.lower()
        link = persons.get(str(note.marketo_id))
        if link is None:
            report.ignored.append(
                (note, "Marketo person not linked to Dynamics: not pushed (use 'sync person to Dynamics')")
            )
            return None
        if link.entity not in self.mapping.by_entity:
            report.ignored.append((note, f"linked entity '{link.entity}' is not in the mapping"))
            return None
        return link.entity, link.dynamics_id

    def _defer(self, notes: Sequence[Notification]) -> None:
        """Paused entities: their notifications wait on the queue and come back after the pause delay."""
        when = self.clock() + self.pause_delay
        stamp = self.clock().isoformat()
        messages = [
            _message(n.model_copy(update={"dedupe_key": f"{n.dedupe_key or ''}|paused@{stamp}"}), when) for n in notes
        ]
        self.queue.send(self.queue_name, messages)

    # --- persons: two-way ------------------------------------------------------------------------------------------

    def _persons(self, groups: list[tuple[EntityMapping, list[_Target]]], report: BatchReport) -> None:
        """Leads and contacts together: one Marketo read and one Marketo write for every person in the batch."""
        prepared = [self._prepare_persons(mapping, group, report) for mapping, group in groups]
        wanted = sorted({pid for p in prepared for pid in p.person_of.values() if pid})
        for _ in range(sum(len(p.mapping.fields) for p in prepared) + 2):
            fields = list(dict.fromkeys(f for p in prepared for f in marketo_side.person_fields(p.mapping)))
            try:
                persons = marketo_side.read_persons(self.marketo, wanted, fields)
                self._match_by_email(prepared, persons, fields, report)
                break
            except SkipRecord as exc:  # Marketo 1006: a mapped person field is gone from Marketo
                match = _MISSING_MARKETO_FIELD.search(str(exc))
                if (
                    exc.code != "1006"
                    or match is None
                    or not self._marketo_field_gone(prepared, match.group(1), report)
                ):
                    raise
        else:
            raise SkipRecord("Marketo person fields keep disappearing while reading", code="1006")

        updates: list[tuple[_PersonGroup, _Target, dict[str, Any], Decision]] = []
        creates: list[tuple[_PersonGroup, _Target, dict[str, Any], Decision]] = []
        for group in prepared:
            self._decide_persons(group, persons, updates, creates, report)

        failed_marketo: dict[tuple[str, str], set[str]] = {}
        outcomes = marketo_side.update_persons(self.marketo, [body for _, _, body, _ in updates])
        for (group, target, _, decision), outcome in zip(updates, outcomes, strict=True):
            if not outcome.ok:
                failed_marketo[(group.mapping.entity, target.dynamics_id)] = set(decision.marketo_writes)
                report.errors.append(self._marketo_error(group.mapping.entity, target.dynamics_id, "update", outcome))
        created = marketo_side.create_persons(
            self.marketo, [(body, group.mapping.marketo_link_field) for group, _, body, _ in creates]
        )
        for (group, target, _, decision), outcome in zip(creates, created, strict=True):
            link = group.links.get(target.dynamics_id)
            if not outcome.ok or outcome.id is None:
                report.errors.append(self._marketo_error(group.mapping.entity, target.dynamics_id, "create", outcome))
                continue
            self._save(target, link, str(outcome.id), dict(decision.new_baseline), report, adopted=None)

        for group in prepared:
            entity = group.mapping.entity
            failed_dynamics = self._write_dynamics(entity, group.dynamics_writes, report)
            for rid, (decision, person_id) in group.plans.items():
                target = group.targets[rid]
                link = group.links.get(rid)
                if rid in failed_dynamics.get("conflict", set()):
                    self._requeue(target, report, "the Dynamics record changed while it was being synced")
                    continue
                failed = failed_marketo.get((entity, rid), set()) | failed_dynamics.get(rid, set())
                baseline = _keep_failed(decision, link, failed)
                self._save(target, link, person_id, baseline, report, adopted=group.adopted.get(rid))

    def _prepare_persons(self, mapping: EntityMapping, group: list[_Target], report: BatchReport) -> _PersonGroup:
        """Read the Dynamics side and find each record's person: its link, or for a contact qualified from a lead,
        the lead's person (matching by e-mail comes next, for all entities at once)."""
        entity = mapping.entity
        ids = [t.dynamics_id for t in group]
        mapping, records = self._read_dynamics(mapping, ids, report)
        prepared = _PersonGroup(mapping, {t.dynamics_id: t for t in group}, self.store.get_links(entity, ids), records)
        for rid, link in prepared.links.items():
            if link.marketo_id and link.followed_by is None:
                prepared.person_of[rid] = str(link.marketo_id)
        if entity == "contact":
            lead_ids = {
                str(rec.values["originatingleadid"].id): rid
                for rid, rec in prepared.records.items()
                if rid not in prepared.person_of and getattr(rec.values.get("originatingleadid"), "id", None)
            }
            for lead_id, lead_link in self.store.get_links("lead", lead_ids).items():
                if lead_link.marketo_id:
                    contact_id = lead_ids[lead_id]
                    prepared.person_of[contact_id] = str(lead_link.marketo_id)
                    prepared.adopted[contact_id] = lead_link
        return prepared

    def _match_by_email(
        self, prepared: list[_PersonGroup], persons: dict[str, dict[str, Any]], fields: list[str], report: BatchReport
    ) -> None:
        """Records with no (or a vanished) person adopt an existing person with the same e-mail, if any."""
        emails: dict[tuple[int, str], str] = {}
        for index, group in enumerate(prepared):
            email_field = group.mapping.by_marketo.get("email")
            if email_field is None:
                continue
            for rid, record in group.records.items():
                if group.person_of.get(rid) not in persons:
                    emails[(index, rid)] = str(record.values.get(email_field.dynamics) or "")
        if not any(emails.values()):
            return
        by_email = marketo_side.find_persons_by_email(self.marketo, list(emails.values()), fields)
        for (index, rid), email in emails.items():
            group = prepared[index]
            entity = group.mapping.entity
            person = by_email.get(email.strip().lower())
            if person is None:
                continue
            other = self.store.find_by_marketo(entity, str(person["id"]))
            if other is not None and (other.entity, other.dynamics_id) != (entity, rid):
                report.errors.append(
                    self._error(
                        entity, rid, "link", TO_MARKETO, "duplicate-person",
                        f"e-mail matches Marketo person {person['id']}, already linked to {other.entity} "
                        f"{other.dynamics_id}; merge the records or change the e-mail",
                    )
                )  # fmt: skip
                group.person_of[rid] = ""
                continue
            group.person_of[rid] = str(person["id"])
            persons[str(person["id"])] = person

    def _decide_persons(
        self,
        group: _PersonGroup,
        persons: Mapping[str, dict[str, Any]],
        updates: list[tuple[_PersonGroup, _Target, dict[str, Any], Decision]],
        creates: list[tuple[_PersonGroup, _Target, dict[str, Any], Decision]],
        report: BatchReport,
    ) -> None:
        mapping = group.mapping
        entity = mapping.entity
        for rid, target in group.targets.items():
            link = group.links.get(rid)
            if group.person_of.get(rid) == "":
                continue  # a duplicate-person error was recorded
            if link is not None and link.followed_by:
                report.ignored.append(
                    (target.notes[0], f"lead qualified into {link.followed_by}: the person follows it")
                )
                continue
            record = group.records.get(rid)
            if record is None:
                self._missing(mapping, target, link, report)
                continue
            person_id = group.person_of.get(rid)
            person = persons.get(person_id) if person_id else None
            baseline = dict(link.baseline) if link is not None and person_id == link.marketo_id else {}
            state = RecordState(
                dynamics=read_dynamics_record(mapping.fields, record.values),
                marketo=read_marketo_record(mapping.fields, person) if person is not None else None,
                baseline=baseline,
                sync_filter=_flag(record, mapping),
                trigger=target.trigger,
            )
            decision = decide(mapping, state)
            report.decisions.append((entity, rid, decision))
            self._field_errors(mapping, rid, decision, report)
            if decision.action is RecordAction.CREATE_IN_MARKETO:
                body = _marketo_body(mapping, decision)
                body[mapping.marketo_link_field] = rid
                creates.append((group, target, body, decision))
                continue
            if decision.action is not RecordAction.SYNC or person is None or person_id is None:
                continue
            body = _marketo_body(mapping, decision)
            if str(person.get(mapping.marketo_link_field) or "").lower() != rid:
                body[mapping.marketo_link_field] = rid  # a newly matched person learns its Dynamics id
            if decision.dynamics_writes:
                update = RecordUpdate(rid, dict(decision.dynamics_writes), etag=record.etag)
                group.dynamics_writes.append((target, update, decision))
            group.plans[rid] = (decision, person_id)
            if body:
                body["id"] = int(person["id"])
                updates.append((group, target, body, decision))

    def _write_dynamics(
        self, entity: str, writes: list[tuple[_Target, RecordUpdate, Decision]], report: BatchReport
    ) -> dict[str, set[str]]:
        """PATCH every Marketo-side change back in one ``$batch``; returns failed columns per record."""
        failed: dict[str, set[str]] = defaultdict(set)
        if not writes:
            return failed
        results: list[BatchResult] = self.dataverse.update_many(entity, [u for _, u, _ in writes])
        for (target, update, _), result in zip(writes, results, strict=True):
            if result.ok:
                continue
            status = result.status
            if status == 412:
                failed["conflict"].add(target.dynamics_id)
                continue
            failed[target.dynamics_id] |= set(update.values)
            fault = result.fault
            code = str(getattr(fault, "code", None) or status)
            message = str(getattr(fault, "message", None) or f"HTTP {status}")
            report.errors.append(self._error(entity, target.dynamics_id, "update", TO_DYNAMICS, code, message))
        return failed

    def _missing(self, mapping: EntityMapping, target: _Target, link: Link | None, report: BatchReport) -> None:
        """The Dynamics record was not returned: deleted, or not readable by the sync user."""
        entity, rid = mapping.entity, target.dynamics_id
        if link is None:
            if target.deleted:
                return  # created and deleted before it ever synced
            report.errors.append(
                self._error(
                    entity, rid, "read", TO_MARKETO, "record-not-found",
                    "Dynamics did not return the record: deleted, or the sync user cannot read it",
                )
            )  # fmt: skip
            return
        if link.deleted_in_dynamics or not target.deleted:
            return  # already flagged, or a late update about a record whose delete notice is on its way
        decision = decide(mapping, RecordState(dynamics=None, marketo={}, baseline=link.baseline, linked=True))
        report.decisions.append((entity, rid, decision))
        if decision.action is RecordAction.FLAG_DELETED and link.marketo_id:
            outcomes = marketo_side.update_persons(
                self.marketo, [{"id": int(link.marketo_id), DELETED_FLAG_FIELD: True}]
            )
            if not outcomes[0].ok:
                report.errors.append(self._marketo_error(entity, rid, "flag_deleted", outcomes[0]))
                return
        try:
            self.store.save_link(replace(link, deleted_in_dynamics=True, synced_at=self.clock()))
        except Conflict:
            self._requeue(target, report, "the link changed while the delete was being recorded")

    # --- one-way objects -----------------------------------------------------------------------------------------

    def _objects(self, mapping: EntityMapping, group: list[_Target], report: BatchReport) -> None:
        entity = mapping.entity
        ids = [t.dynamics_id for t in group]
        links = self.store.get_links(entity, ids)
        mapping, records = self._read_dynamics(mapping, ids, report)
        pushes: list[tuple[_Target, dict[str, Any], Decision, Link | None]] = []
        for target in group:
            rid = target.dynamics_id
            link = links.get(rid)
            record = records.get(rid)
            if record is None and link is None and not target.deleted:
                report.errors.append(
                    self._error(
                        entity, rid, "read", TO_MARKETO, "record-not-found",
                        "Dynamics did not return the record: deleted, or the sync user cannot read it",
                    )
                )  # fmt: skip
                continue
            dynamics = read_dynamics_record(mapping.fields, record.values) if record is not None else None
            decision = decide_one_way(
                mapping,
                dynamics if record is not None or target.deleted else None,
                link.baseline if link is not None else {},
                linked=link is not None,
                sync_filter=_flag(record, mapping) if record is not None else None,
            )
            report.decisions.append((entity, rid, decision))
            self._field_errors(mapping, rid, decision, report)
            if decision.action in (RecordAction.CREATE_IN_MARKETO, RecordAction.UPSERT_IN_MARKETO):
                body = _marketo_body(mapping, decision)
                body[mapping.marketo_link_field] = rid
                pushes.append((target, body, decision, link))
        outcomes = marketo_side.upsert_objects(self.marketo, mapping, [body for _, body, _, _ in pushes])
        saved: list[tuple[_Target, Link | None, str | None, dict[str, Canonical]]] = []
        for (target, _, decision, link), outcome in zip(pushes, outcomes, strict=True):
            if not outcome.ok:
                report.errors.append(self._marketo_error(entity, target.dynamics_id, "upsert", outcome))
                continue
            marketo_id = str(outcome.id) if outcome.id is not None else (link.marketo_id if link else None)
            saved.append((target, link, marketo_id, dict(decision.new_baseline)))
        if entity == "opportunity":
            self._primary_contact_roles(saved, records, report)
        for target, link, marketo_id, baseline in saved:
            self._save(target, link, marketo_id, baseline, report, adopted=None)

    def _primary_contact_roles(
        self,
        saved: list[tuple[_Target, Link | None, str | None, dict[str, Canonical]]],
        records: Mapping[str, Record],
        report: BatchReport,
    ) -> None:
        """An opportunity's primary contact becomes its Marketo opportunity role (once per change of contact)."""
        wanted: dict[str, str] = {}
        for target, _, _, baseline in saved:
            record = records.get(target.dynamics_id)
            contact = getattr(record.values.get("parentcontactid"), "id", None) if record is not None else None
            if contact and baseline.get(_ROLE_KEY) != contact:
                wanted[target.dynamics_id] = str(contact)
        if not wanted:
            return
        contacts = self.store.get_links("contact", set(wanted.values()))
        roles = [
            (rid, contact, {
                "externalOpportunityId": rid,
                "leadId": int(contacts[contact].marketo_id),  # type: ignore[arg-type]
                "role": PRIMARY_CONTACT_ROLE,
                "isPrimary": True,
            })
            for rid, contact in wanted.items()
            if contact in contacts and contacts[contact].marketo_id
        ]  # fmt: skip
        if not roles:
            return  # the contact has no person yet: retried at the opportunity's next change
        outcomes = self.marketo.sync_opportunity_roles([body for _, _, body in roles])
        done = {rid: contact for (rid, contact, _), outcome in zip(roles, outcomes, strict=True) if outcome.ok}
        for (rid, _, _), outcome in zip(roles, outcomes, strict=True):
            if not outcome.ok:
                report.errors.append(self._marketo_error("opportunity", rid, "role", outcome))
        for target, _, _, baseline in saved:
            if target.dynamics_id in done:
                baseline[_ROLE_KEY] = done[target.dynamics_id]

    # --- a mapped column deleted in Dynamics -------------------------------------------------------------------

    def _read_dynamics(
        self, mapping: EntityMapping, ids: list[str], report: BatchReport
    ) -> tuple[EntityMapping, dict[str, Record]]:
        """Read the records; a mapped column that no longer exists is marked broken (and reported) and the read
        is repeated without it, so the other fields keep syncing."""
        for _ in range(len(mapping.fields) + 2):
            try:
                return mapping, self.dataverse.read_by_ids(mapping.entity, ids, dataverse_select(mapping))
            except SkipRecord as exc:
                match = _MISSING_PROPERTY.search(str(exc))
                if match is None or not self._mark_broken(mapping, match.group(1), report):
                    raise
                mapping = self.mapping.get(mapping.entity)
        raise SkipRecord(f"{mapping.entity}: columns keep disappearing while reading", code="column-missing")

    def _marketo_field_gone(self, prepared: list[_PersonGroup], name: str, report: BatchReport) -> bool:
        """Every person mapping that maps the vanished Marketo field marks that field broken."""
        marked = False
        for group in prepared:
            field = group.mapping.by_marketo.get(name.casefold())
            if field is not None and self._mark_broken(group.mapping, field.dynamics, report, side="Marketo"):
                group.mapping = self.mapping.get(group.mapping.entity)
                marked = True
        return marked

    def _mark_broken(self, mapping: EntityMapping, column: str, report: BatchReport, *, side: str = "Dynamics") -> bool:
        """Mark a mapped column broken in the stored mapping (or forget a vanished sync filter column)."""
        field = mapping.by_column.get(column)
        if field is None and column != SYNC_FILTER_COLUMN:
            return False
        for _ in range(10):
            stored = self.store.get_document(MAPPING_DOCUMENT)
            document: Any = json.loads(stored[0]) if stored else self.mapping.model_dump(mode="json")
            current = load_mapping(document).by_entity.get(mapping.entity)
            already = current is not None and (
                (field is None and not current.sync_filter)
                or (field is not None and column in current.by_column
                    and current.by_column[column].state is FieldState.BROKEN)
            )  # fmt: skip
            if already:  # another batch (or instance) found and reported it first: just catch up
                self.mapping = load_mapping(document)
                if self.on_mapping_change is not None:
                    self.on_mapping_change()
                return True
            for entity in document["entities"]:
                if entity["entity"] != mapping.entity:
                    continue
                if field is None:
                    entity["sync_filter"] = False
                for f in entity.get("fields", []):
                    if f["dynamics"] == column:
                        f["state"] = FieldState.BROKEN.value
            try:
                self.store.save_document(
                    MAPPING_DOCUMENT, json.dumps(document, indent=2), stored[1] if stored else None
                )
            except Conflict:
                continue
            self.mapping = load_mapping(document)
            break
        else:
            return False
        if side == "Marketo" and field is not None:
            what = f"the Marketo field '{field.marketo}' (mapped to '{column}')"
        else:
            what = "the sync filter column" if field is None else f"the mapped column '{column}'"
        message = (
            f"{what} no longer exists in {side}: marked broken, the other fields keep syncing. "
            "Restore it, or remove the field from the mapping."
        )
        log.error("%s: %s", mapping.entity, message)
        report.errors.append(
            self._error(mapping.entity, "", "read", TO_MARKETO, "column-missing", message, field=column)
        )
        return True

    # --- saving, errors, counters ---------------------------------------------------------------------------------

    def _save(
        self,
        target: _Target,
        link: Link | None,
        marketo_id: str | None,
        baseline: dict[str, Canonical],
        report: BatchReport,
        *,
        adopted: Link | None,
    ) -> None:
        now = self.clock()
        if link is None:
            new = Link(target.entity, target.dynamics_id, marketo_id, baseline, synced_at=now)
        else:
            new = replace(link, marketo_id=marketo_id, baseline=baseline, deleted_in_dynamics=False, synced_at=now)
        if link is not None and new == replace(link, synced_at=now):
            return  # nothing changed: spare the store a write
        try:
            self.store.save_link(new)
        except Conflict:
            self._requeue(target, report, "another instance saved this record's baseline first")
            return
        if adopted is not None:  # the qualified lead's person now follows the contact
            try:
                self.store.save_link(replace(adopted, followed_by=f"{target.entity}:{target.dynamics_id}"))
            except Conflict:
                self._requeue(target, report, "the lead's link changed while the person moved to the contact")

    def _requeue(self, target: _Target, report: BatchReport, why: str) -> None:
        note = max(target.notes, key=lambda n: n.attempt)
        if note.attempt + 1 >= MAX_ATTEMPTS:
            report.errors.append(
                self._error(target.entity, target.dynamics_id, "reconcile", TO_MARKETO, "retries-exhausted", why)
            )
            return
        again = note.model_copy(update={"attempt": note.attempt + 1})
        report.requeued.append(again)

    def _field_errors(self, mapping: EntityMapping, rid: str, decision: Decision, report: BatchReport) -> None:
        for f in decision.errors:
            if f.error is None:
                continue
            direction = TO_DYNAMICS if f.error.target == "dynamics" else TO_MARKETO
            report.errors.append(
                self._error(mapping.entity, rid, "convert", direction, "conversion", f.error.reason, field=f.field)
            )

    def _marketo_error(self, entity: str, rid: str, operation: str, outcome: RecordOutcome) -> SyncErrorRecord:
        codes = ",".join(outcome.reason_codes) or str(outcome.status)
        message = "; ".join(r.message for r in outcome.reasons) or f"Marketo answered {outcome.status}"
        return self._error(entity, rid, operation, TO_MARKETO, codes, message)

    def _error(
        self,
        entity: str,
        rid: str,
        operation: str,
        direction: str,
        code: str,
        message: str,
        *,
        field: str | None = None,
    ) -> SyncErrorRecord:
        return SyncErrorRecord(
            id=uuid.uuid4().hex,
            entity=entity,
            record_id=rid,
            operation=operation,
            direction=direction,
            code=code,
            message=message,
            occurred_at=self.clock(),
            field=field,
        )

    @staticmethod
    def _count(report: BatchReport, entity: str, decision: Decision) -> None:
        counts = report.counts[entity]
        counts["changes"] += 1
        counts[decision.action.value] += 1
        writes_m = len(decision.marketo_writes)
        writes_d = len(decision.dynamics_writes)
        if writes_m or writes_d:
            counts["synced"] += 1
        counts["fields_to_marketo"] += writes_m
        counts["fields_to_dynamics"] += writes_d
        for f in decision.fields:
            if f.winner is not None:
                counts[f"collisions_{f.winner.value}_won"] += 1
            if f.action is Action.ERROR:
                counts["errors"] += 1
            if f.reason.name == "ECHO":
                counts["echoes"] += 1

    def _finish(self, report: BatchReport) -> None:
        if report.requeued:
            when = self.clock() + timedelta(seconds=1)
            self.queue.send(self.queue_name, [_message(n, when) for n in report.requeued])
        for entity, _, decision in report.decisions:
            # Decisions carried out, counted as made: when two instances race on one record, both carried
            # out the same resolution (the loser is re-decided), so a collision can count twice.
            self._count(report, entity, decision)
        for error in report.errors:
            self.store.add_error(error)
            report.counts[error.entity]["errors"] += 1 if error.field is None else 0
        for entity, counts in report.counts.items():
            self.store.add_counts(entity, {k: v for k, v in counts.items() if v}, at=self.clock())
        for entity, rid, decision in report.decisions:
            if decision.has_writes or decision.errors:
                log.info("reconciled %s %s: %s", entity, rid, decision.summary())


def _message(note: Notification, scheduled_at: datetime | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        body=note.to_body(),
        message_id=note.message_id,
        correlation_id=note.correlation_id,
        subject=note.entity or "person",
        application_properties={"entity": note.entity or "person", "source": note.source.value},
        scheduled_at=scheduled_at,
    )


def notification_message(note: Notification) -> OutgoingMessage:
    """The queue message for a notification (application properties let the status view count per entity)."""
    return _message(note)


def _flag(record: Record | None, mapping: EntityMapping) -> bool | None:
    if record is None or not mapping.sync_filter:
        return None
    value = record.values.get(SYNC_FILTER_COLUMN)
    return value if isinstance(value, bool) else None


def _marketo_body(mapping: EntityMapping, decision: Decision) -> dict[str, Any]:
    by_column = mapping.by_column
    return {by_column[c].marketo: wire for c, wire in decision.marketo_writes.items()}


def _keep_failed(decision: Decision, link: Link | None, failed: Iterable[str]) -> dict[str, Canonical]:
    """The new baseline, except fields whose write failed keep what they had (so the change is retried)."""
    baseline = dict(decision.new_baseline)
    old: Mapping[str, Canonical] = link.baseline if link is not None else {}
    for column in failed:
        if column in old:
            baseline[column] = old[column]
        else:
            baseline.pop(column, None)
    return baseline


__all__ = ["BatchReport", "Reconciler", "dataverse_select", "notification_message"]
