"""The state store, written once over a five-verb row primitive that each backend implements.

A backend only knows rows: ``(table, partition key, row key) -> JSON document + ETag``. Everything the sync
means by links, baselines, checkpoints and sync errors lives here, so Azure Table Storage and SQLite cannot
drift apart in behaviour: one contract test suite runs against both.

Optimistic concurrency: ``insert`` fails if the row exists, ``replace`` fails unless the caller's ETag is the
current one. Both failures raise :class:`shared.errors.Conflict`; the caller re-reads and decides again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.errors import Conflict
from shared.store.model import (
    Checkpoint,
    ClaimState,
    ErrorQuery,
    ErrorStatus,
    Link,
    PauseState,
    PersonClaim,
    SyncErrorRecord,
)

if TYPE_CHECKING:
    from shared.store.errors import SyncErrors
    from shared.store.pending import PendingMarks

LINKS = "synclinks"
MARKETO_INDEX = "syncmarketoindex"
CHECKPOINTS = "synccheckpoints"
DOCUMENTS = "syncdocuments"
ERRORS = "syncerrors"
STATS = "syncstats"
CONTROL = "synccontrol"
PENDING = "syncpending"
HISTORY = "synchistory"  # a record's history, one partition per UTC day (shared/store/history.py)
MAPPING_DOCUMENT = "mapping"  # the sync mapping, a document with an ETag
PERSON_CLAIMS = "personclaim"  # CONTROL partition: who creates a Marketo person's lead
TABLES = (LINKS, MARKETO_INDEX, CHECKPOINTS, DOCUMENTS, ERRORS, STATS, CONTROL, PENDING, HISTORY)
BATCH_LIMIT = 100
SLOT_MINUTES = 5
"""The counters' resolution inside each hour's row (the status view's "last hour" is the last 12 slots)."""
"""Rows one :meth:`Rows.write_many` request carries (an Azure Table batch transaction holds at most 100)."""


@dataclass(frozen=True, slots=True)
class Row:
    pk: str
    rk: str
    doc: dict[str, Any]
    etag: str


@dataclass(frozen=True, slots=True)
class Write:
    """One row of a :meth:`Rows.write_many`: ``insert`` (must not exist), ``replace`` and ``delete`` (only on
    ``etag``), ``upsert`` (unconditional)."""

    op: Literal["insert", "replace", "upsert", "delete"]
    rk: str
    doc: Mapping[str, Any] | None = None
    etag: str | None = None


class Rows(Protocol):
    """The primitive a backend provides. Keys are plain strings without '/', '\\', '#' or '?'."""

    def get(self, table: str, pk: str, rk: str) -> Row | None: ...

    def get_many(self, table: str, pk: str, rks: Iterable[str]) -> dict[str, Row]: ...

    def insert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str: ...

    def replace(self, table: str, pk: str, rk: str, doc: Mapping[str, Any], etag: str) -> str: ...

    def upsert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str: ...

    def query(self, table: str, pk: str | None = None) -> Iterator[Row]: ...

    def query_range(
        self, table: str, pk: str, ge: str = "", lt: str | None = None, *, limit: int | None = None
    ) -> Iterator[Row]:
        """Rows of one partition whose row key is ``>= ge`` and (when given) ``< lt``, in row-key order, at most
        ``limit`` of them (a prefix query: ``shared.store.history.prefix_range``)."""
        ...

    def delete(self, table: str, pk: str, rk: str) -> None: ...

    def write_many(self, table: str, pk: str, writes: Sequence[Write]) -> dict[str, str | None]:
        """Rows of one partition, each row key at most once, in requests of up to :data:`BATCH_LIMIT` rows
        applied all or nothing (a failed condition raises :class:`Conflict` and that request changes nothing;
        earlier requests stay applied). Returns each row's new ETag (None for a delete)."""
        ...


REPLACE_ROUNDS = 3  # batch rounds of replace_links that leave the moved rows out before it goes row by row


def _now() -> datetime:
    return datetime.now(UTC)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class StateStore:
    """Links and baselines, checkpoints, documents (the mapping), pause state, sync errors and counters."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    @property
    def pending(self) -> PendingMarks:
        """The pending marks: work accepted and not reconciled yet (:mod:`shared.store.pending`)."""
        from shared.store.pending import PendingMarks  # noqa: PLC0415 - it builds on this module's rows

        return PendingMarks(self.rows)

    # --- links and baselines ---------------------------------------------------------------------------------

    @staticmethod
    def _link(entity: str, row: Row) -> Link:
        doc = row.doc
        return Link(
            entity=entity,
            dynamics_id=row.rk,
            marketo_id=doc.get("marketo_id"),
            baseline=dict(doc.get("baseline") or {}),
            deleted_in_dynamics=bool(doc.get("deleted_in_dynamics")),
            synced_at=_when(doc.get("synced_at")),
            followed_by=doc.get("followed_by"),
            intent=dict(doc.get("intent") or {}),
            etag=row.etag,
        )

    def get_link(self, entity: str, dynamics_id: str) -> Link | None:
        row = self.rows.get(LINKS, entity, dynamics_id.lower())
        return self._link(entity, row) if row else None

    def get_links(self, entity: str, dynamics_ids: Iterable[str]) -> dict[str, Link]:
        """Many links in as few round trips as the backend allows; ids without a link are absent."""
        found = self.rows.get_many(LINKS, entity, {i.lower() for i in dynamics_ids})
        return {rk: self._link(entity, row) for rk, row in found.items()}

    @staticmethod
    def _link_doc(link: Link, synced_at: datetime) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "marketo_id": link.marketo_id,
            "baseline": link.baseline,
            "deleted_in_dynamics": link.deleted_in_dynamics,
            "synced_at": synced_at.isoformat(),
            "followed_by": link.followed_by,
        }
        if link.intent:
            doc["intent"] = link.intent
        return doc

    def replace_links(self, entity: str, links: Sequence[Link]) -> tuple[dict[str, Link], set[str]]:
        """Replace existing links of one entity on their ETags, in batch transactions of up to
        :data:`BATCH_LIMIT` (a backfill's new baselines, a reconcile's write intents: the Marketo ids do not
        change, so the index is left alone). A chunk that meets a moved row is sent again without it
        (:meth:`_replace_unmoved`), still without the index. Returns the saved links by Dynamics id, and the ids whose
        row had changed meanwhile (not saved: left to the caller)."""
        saved: dict[str, Link] = {}
        conflicts: set[str] = set()
        for start in range(0, len(links), BATCH_LIMIT):
            chunk = links[start : start + BATCH_LIMIT]
            docs = {link.dynamics_id.lower(): self._link_doc(link, link.synced_at or _now()) for link in chunk}
            writes = [
                Write("replace", link.dynamics_id.lower(), docs[link.dynamics_id.lower()], link.etag) for link in chunk
            ]
            etags = self._replace_unmoved(entity, writes, conflicts)
            for link in chunk:
                key = link.dynamics_id.lower()
                if key in etags:
                    saved[key] = replace(link, dynamics_id=key, etag=etags[key])
        return saved, conflicts

    def _replace_unmoved(self, entity: str, writes: list[Write], conflicts: set[str]) -> Mapping[str, str | None]:
        """One batch of link replaces; when a row moved meanwhile (the batch changed nothing), the batch's rows
        are read again in one request, the moved ones left out (``conflicts``) and the rest sent again -- two
        requests for a row the live sync saved, not one per row. After :data:`REPLACE_ROUNDS` such rounds (the rows
        keep moving) the rest go row by row."""
        for _ in range(REPLACE_ROUNDS):
            if not writes:
                return {}
            try:
                return self.rows.write_many(LINKS, entity, writes)
            except Conflict:
                current = self.rows.get_many(LINKS, entity, [w.rk for w in writes])
                moved = {w.rk for w in writes if w.rk not in current or current[w.rk].etag != w.etag}
                conflicts.update(moved)
                writes = [w for w in writes if w.rk not in moved]
        etags: dict[str, str | None] = {}
        for write in writes:
            assert write.doc is not None  # a replace carries its document
            try:
                etags[write.rk] = self.rows.replace(LINKS, entity, write.rk, write.doc, str(write.etag))
            except Conflict:
                conflicts.add(write.rk)
        return etags

    def save_link(self, link: Link) -> Link:
        """Create (``etag`` None) or conditionally replace a link; keeps the Marketo-id index in step."""
        synced_at = link.synced_at or _now()
        doc = self._link_doc(link, synced_at)
        key = link.dynamics_id.lower()
        if link.etag is None:
            etag = self.rows.insert(LINKS, link.entity, key, doc)
        else:
            etag = self.rows.replace(LINKS, link.entity, key, doc, link.etag)
        if link.marketo_id is not None and link.followed_by is None:
            self.rows.upsert(
                MARKETO_INDEX, _person_partition(link.entity), str(link.marketo_id), {"entity": link.entity, "id": key}
            )
        return replace(link, dynamics_id=key, etag=etag, synced_at=synced_at)

    def find_by_marketo(self, entity: str, marketo_id: str | int) -> Link | None:
        """The link of a Marketo record. For persons this finds the lead *or* contact it currently follows."""
        row = self.rows.get(MARKETO_INDEX, _person_partition(entity), str(marketo_id))
        if row is None:
            return None
        link = self.get_link(row.doc["entity"], row.doc["id"])
        return link if link is not None and str(link.marketo_id) == str(marketo_id) else None

    def find_many_by_marketo(self, entity: str, marketo_ids: Iterable[str | int]) -> dict[str, Link]:
        """:meth:`find_by_marketo` for many ids in as few round trips as the backend allows."""
        index = self.rows.get_many(MARKETO_INDEX, _person_partition(entity), {str(i) for i in marketo_ids})
        wanted: dict[str, dict[str, str]] = defaultdict(dict)  # entity -> dynamics id -> marketo id
        for marketo_id, row in index.items():
            wanted[row.doc["entity"]][row.doc["id"]] = marketo_id
        found: dict[str, Link] = {}
        for linked_entity, ids in wanted.items():
            for dynamics_id, link in self.get_links(linked_entity, ids).items():
                if str(link.marketo_id) == ids[dynamics_id]:
                    found[ids[dynamics_id]] = link
        return found

    def iter_links(self, entity: str) -> Iterator[Link]:
        for row in self.rows.query(LINKS, entity):
            yield self._link(entity, row)

    def links_page(self, entity: str, *, after: str = "", limit: int = 300) -> list[Link]:
        """Up to ``limit`` links of one entity whose Dynamics id sorts after ``after``, in id order: a walk over
        every link a page at a time (pass a page's last id to read the next)."""
        rows = self.rows.query_range(LINKS, entity, ge=after, limit=limit + 1)
        return [self._link(entity, row) for row in rows if row.rk != after][:limit]

    # --- checkpoints -------------------------------------------------------------------------------------------

    def get_checkpoint(self, name: str) -> Checkpoint | None:
        row = self.rows.get(CHECKPOINTS, "checkpoint", name)
        if row is None:
            return None
        return Checkpoint(name, row.doc["value"], _when(row.doc["updated_at"]) or _now(), row.etag)

    def save_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        """Conditional like links: two timer instances cannot both advance the same checkpoint."""
        doc = {"value": checkpoint.value, "updated_at": checkpoint.updated_at.isoformat()}
        if checkpoint.etag is None:
            etag = self.rows.insert(CHECKPOINTS, "checkpoint", checkpoint.name, doc)
        else:
            etag = self.rows.replace(CHECKPOINTS, "checkpoint", checkpoint.name, doc, checkpoint.etag)
        return replace(checkpoint, etag=etag)

    def list_checkpoints(self) -> list[Checkpoint]:
        return [
            Checkpoint(r.rk, r.doc["value"], _when(r.doc["updated_at"]) or _now(), r.etag)
            for r in self.rows.query(CHECKPOINTS, "checkpoint")
        ]

    # --- documents (the mapping) -------------------------------------------------------------------------------

    def get_document(self, name: str) -> tuple[str, str] | None:
        """A named text document and its ETag."""
        row = self.rows.get(DOCUMENTS, "document", name)
        return (row.doc["text"], row.etag) if row else None

    def save_document(self, name: str, text: str, etag: str | None) -> str:
        doc = {"text": text, "updated_at": _now().isoformat()}
        if etag is None:
            return self.rows.insert(DOCUMENTS, "document", name, doc)
        return self.rows.replace(DOCUMENTS, "document", name, doc, etag)

    # --- pause and resume ----------------------------------------------------------------------------------------

    def get_pause(self) -> PauseState:
        row = self.rows.get(CONTROL, "control", "pause")
        if row is None:
            return PauseState()
        return PauseState(all=bool(row.doc.get("all")), entities=frozenset(row.doc.get("entities") or ()))

    def set_pause(self, entity: str | None, paused: bool) -> PauseState:
        """Pause or resume the whole sync (``entity`` None) or one entity; retried on a concurrent change. Resuming
        the whole sync keeps the entities paused one by one (each is resumed by name)."""
        for _ in range(20):
            row = self.rows.get(CONTROL, "control", "pause")
            state = (
                PauseState(bool(row.doc.get("all")), frozenset(row.doc.get("entities") or ())) if row else PauseState()
            )
            if entity is None:
                state = PauseState(all=paused, entities=state.entities)
            else:
                changed = state.entities | {entity} if paused else state.entities - {entity}
                state = PauseState(all=state.all, entities=changed)
            doc = {"all": state.all, "entities": sorted(state.entities)}
            try:
                if row is None:
                    self.rows.insert(CONTROL, "control", "pause", doc)
                else:
                    self.rows.replace(CONTROL, "control", "pause", doc, row.etag)
            except Conflict:
                continue
            return state
        raise Conflict("pause state kept changing under us; try again")

    # --- sync errors (:mod:`shared.store.errors`) -------------------------------------------------------------

    @property
    def errors(self) -> SyncErrors:
        """Sync errors: one per record, field and cause, with their lifecycle (:mod:`shared.store.errors`)."""
        from shared.store.errors import SyncErrors  # noqa: PLC0415 - it builds on this module's rows

        return SyncErrors(self.rows)

    def add_error(self, record: SyncErrorRecord) -> SyncErrorRecord:
        """Record one sighting of an error (merged into its open row when it has one)."""
        (stored,) = self.errors.record([record])
        return stored

    def get_error(self, error_id: str) -> SyncErrorRecord | None:
        return self.errors.get(error_id)

    def list_errors(
        self,
        *,
        entity: str | None = None,
        status: ErrorStatus | None = None,
        search: str | None = None,
        limit: int = 500,
    ) -> list[SyncErrorRecord]:
        """Newest ``last_seen`` first (:meth:`shared.store.errors.SyncErrors.find` takes every filter)."""
        return self.errors.find(ErrorQuery(entity=entity, status=status, search=search, limit=limit))

    # --- person claims ("sync person to Dynamics") --------------------------------------------------------------

    def get_person_claim(self, marketo_id: str) -> PersonClaim | None:
        row = self.rows.get(CONTROL, PERSON_CLAIMS, marketo_id)
        if row is None:
            return None
        doc = row.doc
        return PersonClaim(
            marketo_id=row.rk,
            owner=doc["owner"],
            claimed_at=datetime.fromisoformat(doc["claimed_at"]),
            lead_id=doc["lead_id"],
            state=ClaimState(doc["state"]),
            entity=doc.get("entity"),
            dynamics_id=doc.get("dynamics_id"),
            etag=row.etag,
        )

    def save_person_claim(self, claim: PersonClaim) -> PersonClaim:
        """Make the claim (``etag`` None: only if the person has none) or change it on its ETag; else Conflict.

        Insert-if-absent and replace-on-ETag are what let one caller of many, in any process, win the claim.
        """
        doc = {
            "owner": claim.owner,
            "claimed_at": claim.claimed_at.isoformat(),
            "lead_id": claim.lead_id,
            "state": claim.state.value,
            "entity": claim.entity,
            "dynamics_id": claim.dynamics_id,
        }
        if claim.etag is None:
            etag = self.rows.insert(CONTROL, PERSON_CLAIMS, claim.marketo_id, doc)
        else:
            etag = self.rows.replace(CONTROL, PERSON_CLAIMS, claim.marketo_id, doc, claim.etag)
        return replace(claim, etag=etag)

    # --- counters for the status view --------------------------------------------------------------------------

    def add_counts(self, entity: str, counts: Mapping[str, int], at: datetime | None = None) -> None:
        """Add to this hour's counters of an entity (synced, errors, collisions by winner, ...)."""
        if not any(counts.values()):
            return
        moment = (at or _now()).astimezone(UTC)
        bucket = moment.strftime("%Y%m%d%H")
        slot = f"{moment.minute - moment.minute % SLOT_MINUTES:02d}"
        for _ in range(50):
            row = self.rows.get(STATS, bucket, entity)
            totals = dict(row.doc["counts"]) if row else {}
            slots = {k: dict(v) for k, v in (row.doc.get("slots") or {}).items()} if row else {}
            into = slots.setdefault(slot, {})
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
                into[key] = into.get(key, 0) + value
            doc = {"counts": totals, "slots": slots}
            try:
                if row is None:
                    self.rows.insert(STATS, bucket, entity, doc)
                else:
                    self.rows.replace(STATS, bucket, entity, doc, row.etag)
                return
            except Conflict:
                continue
        raise Conflict(f"counters of {entity} kept changing under us")

    def counts_since(self, since: datetime) -> dict[str, dict[str, int]]:
        """Per entity, the counters of every hour bucket from ``since``'s hour on."""
        start = since.astimezone(UTC).strftime("%Y%m%d%H")
        totals: dict[str, dict[str, int]] = {}
        for row in self.rows.query(STATS):
            if row.pk < start:
                continue
            into = totals.setdefault(row.rk, {})
            for key, value in row.doc["counts"].items():
                into[key] = into.get(key, 0) + int(value)
        return totals

    def counts_by_slot(self, since: datetime) -> list[tuple[datetime, str, dict[str, int]]]:
        """The counters of every :data:`SLOT_MINUTES` slot from ``since``'s hour on: (slot start, entity, counts),
        oldest first. Hours counted before the slots existed come as one slot at the hour's start."""
        start = since.astimezone(UTC).strftime("%Y%m%d%H")
        found: list[tuple[datetime, str, dict[str, int]]] = []
        for row in self.rows.query(STATS):
            if row.pk < start:
                continue
            hour = datetime.strptime(row.pk, "%Y%m%d%H").replace(tzinfo=UTC)
            slots = row.doc.get("slots") or {"00": row.doc["counts"]}
            for minute, counts in slots.items():
                moment = hour.replace(minute=int(minute))
                found.append((moment, row.rk, {k: int(v) for k, v in counts.items()}))
        return sorted(found, key=lambda item: (item[0], item[1]))


def _person_partition(entity: str) -> str:
    """Leads and contacts share one Marketo person space: a person follows its lead into the contact."""
    return "person" if entity in ("lead", "contact") else entity


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)
