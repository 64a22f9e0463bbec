"""The state store, written once over a five-verb row primitive that each backend implements.

A backend only knows rows (:mod:`shared.store.rows`): ``(table, partition key, row key) -> JSON document +
ETag``. Everything the sync means by links, baselines, checkpoints and sync errors lives here, so Azure Table
Storage and SQLite cannot drift apart in behaviour: one contract test suite runs against both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.errors import Conflict
from shared.store.links import Links, cursor, link_doc
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
from shared.store.rows import (
    BATCH_LIMIT,
    CHECKPOINTS,
    CONTROL,
    DOCUMENTS,
    ERRORS,
    HISTORY,
    LINKS,
    MAPPING_DOCUMENT,
    MARKETO_INDEX,
    PENDING,
    PERSON_CLAIMS,
    STATS,
    TABLES,
    Row,
    Rows,
    Write,
    dumps,
)

if TYPE_CHECKING:
    from shared.store.errors import SyncErrors
    from shared.store.pending import PendingMarks

__all__ = [
    "BATCH_LIMIT",
    "CHECKPOINTS",
    "CONTROL",
    "DOCUMENTS",
    "ERRORS",
    "HISTORY",
    "LINKS",
    "MAPPING_DOCUMENT",
    "MARKETO_INDEX",
    "PENDING",
    "PERSON_CLAIMS",
    "SLOT_MINUTES",
    "STATS",
    "TABLES",
    "Row",
    "Rows",
    "StateStore",
    "Write",
    "dumps",
]

SLOT_MINUTES = 5
"""The counters' resolution inside each hour's row (the status view's "last hour" is the last 12 slots)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class StateStore:
    """Links and baselines, checkpoints, documents (the mapping), pause state, sync errors and counters."""

    def __init__(self, rows: Rows) -> None:
        self.links = Links(rows)

    @property
    def rows(self) -> Rows:
        return self.links.rows

    @rows.setter
    def rows(self, rows: Rows) -> None:
        self.links.rows = rows

    @property
    def pending(self) -> PendingMarks:
        """The pending marks: work accepted and not reconciled yet (:mod:`shared.store.pending`)."""
        from shared.store.pending import PendingMarks  # noqa: PLC0415 - it builds on this module's rows

        return PendingMarks(self.rows)

    # --- links and baselines (:mod:`shared.store.links`) --------------------------------------------------------

    def get_link(self, entity: str, dynamics_id: str) -> Link | None:
        return self.links.get(entity, dynamics_id)

    def get_links(self, entity: str, dynamics_ids: Iterable[str]) -> dict[str, Link]:
        """Many links in as few round trips as the backend allows; ids without a link are absent."""
        return self.links.get_many(entity, dynamics_ids)

    def replace_links(self, entity: str, links: Sequence[Link]) -> tuple[dict[str, Link], set[str]]:
        """Replace existing links of one entity on their ETags, in batch transactions of up to
        :data:`BATCH_LIMIT` per partition (a backfill's new baselines, a reconcile's write intents: the Marketo
        ids do not change, so the index is left alone). Returns the saved links by Dynamics id, and the ids whose
        row had changed meanwhile (not saved: left to the caller)."""
        return self.links.replace_many(entity, links)

    def save_link(self, link: Link) -> Link:
        """Create (``etag`` None) or conditionally replace a link; keeps the Marketo-id index in step."""

        def index(marketo_id: str, key: str) -> None:
            self.rows.upsert(
                MARKETO_INDEX, _person_partition(link.entity), marketo_id, {"entity": link.entity, "id": key}
            )

        return self.links.save(link, index)

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
        return self.links.every(entity)

    def links_page(self, entity: str, *, after: str = "", limit: int = 300) -> list[Link]:
        """Up to ``limit`` links of one entity after ``after`` (a :meth:`link_cursor`; "": from the first): a walk
        over every link a page at a time (pass a page's last link's cursor to read the next)."""
        return self.links.walk(entity, after=after, limit=limit)

    @staticmethod
    def link_cursor(link: Link) -> str:
        """Where a :meth:`links_page` walk stands after ``link``."""
        return cursor(link)

    @staticmethod
    def link_doc(link: Link, synced_at: datetime) -> dict[str, object]:
        """A link's row document (seeding a store in bulk)."""
        return link_doc(link, synced_at)

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
