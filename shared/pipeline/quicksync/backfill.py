"""One page of one Quick Sync job: the column's values from Dynamics to Marketo, then the baselines.

Contract: only records linked to Marketo are written (persons updated by Marketo id, one-way objects upserted on
their link field), nulls included; then the column's baseline is saved on each link's ETag. A link saved by the
live sync in between is re-read with its Dynamics record (up to :data:`SETTLE_ROUNDS`): still the value written
here, only its baseline is saved; else it is pushed once more, so the value the live sync settled cannot be
overwritten by the older one read here; if it keeps moving, the record is left to the live sync. Record-level failures become sync errors; a whole call that fails raises.

Persons in pages of more than ``bulk_min`` records go through Marketo's bulk lead import instead of 300-record
sync calls (:mod:`.bulk`): the job's pages are gathered into a group of up to :data:`GROUP_MAX_RECORDS` records
whose CSV files (``id`` and the field, each under 10 MB) are imported with ``lookupField=id``, so only existing
persons are updated. The job's ``next_link`` stays at the group's first page until every baseline of the group is
saved; a resumed run reads the same pages again, polls the batches its checkpoint holds, and submits only the
files not submitted yet. If the rebuilt files differ from the submitted ones (a record changed meanwhile), the
open batches are let finish and the group's current values are written the ordinary way. A group keeps no records
or links while Marketo imports (each page is encoded into the files as read, see :class:`.bulk.ImportGroup`);
afterwards its links are re-read a chunk at a time and the baselines saved in batch transactions
(:meth:`StateStore.replace_links`) on the ETags the links had when read, never a write per record.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldMapping
from shared.core.values import ConversionError, from_dynamics
from shared.core.writes import to_marketo
from shared.dataverse.client import DataverseClient
from shared.dataverse.records import Record
from shared.marketo.bulk import DEFAULT_FILE_BYTES, ImportFileBuilder
from shared.marketo.client import MarketoClient
from shared.marketo.models import RecordOutcome
from shared.pipeline import marketo_side
from shared.pipeline.dataverse_side import sync_filter_flag
from shared.pipeline.quicksync.bulk import Importer, ImportGroup, ImportResult, digest
from shared.pipeline.quicksync.jobs import QuickSyncJob
from shared.pipeline.sync_errors import marketo_error, sync_error
from shared.store.base import StateStore
from shared.store.model import TO_MARKETO, Link, SyncErrorRecord

SETTLE_ROUNDS = 2  # re-pushes of records whose link the live sync saved while this page was in flight
GROUP_MAX_RECORDS = 200_000  # records of one bulk group: bounds memory (~65 bytes each), and the time one run
# holds the group; 1M records are 5 groups of one import file each
SAVE_CHUNK = 4800  # links re-read (and their baselines saved) at a time once a group is imported: a multiple of
# 300, so the sync calls of a group written the ordinary way are full

Row = tuple[Link, Any, Any]  # the link, the canonical value (its new baseline), the Marketo wire value


@dataclass(slots=True)
class PageOutcome:
    read: int = 0
    done: int = 0
    unlinked: int = 0
    filtered: int = 0  # linked, but its sync filter says No
    failed: int = 0
    conflicts: list[str] = field(default_factory=list)  # left to the live sync once the settle rounds are spent
    written: dict[str, Any] = field(default_factory=dict)  # a conflict's value as this job wrote it, by its id
    next_link: str | None = None  # None: that was the last page
    pages: int = 1  # Dataverse pages this outcome covers (a bulk group holds many)
    waiting: bool = False  # bulk imports still open when the time budget ran out: nothing moved, resume later


def _key_order(group: ImportGroup) -> Iterator[array[int]]:
    """The group's places in the order of their link keys, :data:`SAVE_CHUNK` at a time: each chunk of links is
    one dense run of keys in each partition, which Table Storage reads as a range instead of a filter per 14 keys
    (a group's pages are in that order already, but its records may be re-read in any)."""
    chunk = array("q")
    for at in group.dynamics_ids.key_order():
        chunk.append(at)
        if len(chunk) == SAVE_CHUNK:
            yield chunk
            chunk = array("q")
    if chunk:
        yield chunk


def _same(written: Any, current: Any) -> bool:
    """The value this job wrote is the one Dynamics holds now (of the same type: ``1 == True`` is not enough)."""
    return type(written) is type(current) and bool(written == current)


def range_filter(modified_from: str | None, modified_to: str | None) -> str | None:
    parts = []
    if modified_from:
        parts.append(f"modifiedon ge {modified_from}")
    if modified_to:
        parts.append(f"modifiedon le {modified_to}")
    return " and ".join(parts) or None


def _no_checkpoint(job: QuickSyncJob) -> None:
    return None


def _never_out_of_time() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Backfill:
    """One field's refresh, page by page."""

    store: StateStore
    dataverse: DataverseClient
    marketo: MarketoClient
    entity: EntityMapping
    field: FieldMapping
    bulk_min: int = 1000  # persons: pages of more records than this go through bulk import
    checkpoint: Callable[[QuickSyncJob], object] = _no_checkpoint  # saves the job (on its ETag)
    out_of_time: Callable[[], bool] = _never_out_of_time
    max_file_bytes: int = DEFAULT_FILE_BYTES
    group_max_records: int = GROUP_MAX_RECORDS

    def page(self, job: QuickSyncJob, page_size: int, moment: datetime) -> PageOutcome:
        """The job's next page (the first from the query, the next ones from its saved ``@odata.nextLink``); for
        persons through bulk import, the next group of pages."""
        if job.import_batches and not self._importer(job).finish_open():
            return PageOutcome(pages=0, waiting=True)  # still importing: the pages are not read again meanwhile
        records, next_link = self._fetch(job, page_size, job.next_link)
        if self.entity.rule.two_way and (job.import_pages or len(records) > self.bulk_min):
            outcome = self._bulk(job, records, next_link, page_size, moment)
            if outcome.waiting:
                return outcome
        else:
            outcome = self._push(records, moment)
            outcome.read, outcome.next_link = len(records), next_link
        for _ in range(SETTLE_ROUNDS):
            if not outcome.conflicts:
                break
            again = self.dataverse.read_by_ids(self.entity.entity, outcome.conflicts, self._select)
            retried = self._settle(list(again.values()), outcome.written, moment)
            outcome.done += retried.done
            outcome.unlinked += retried.unlinked + len(set(outcome.conflicts) - set(again))  # deleted meanwhile
            outcome.failed += retried.failed
            outcome.conflicts, outcome.written = retried.conflicts, retried.written
        return outcome

    def _settle(self, records: list[Record], written: dict[str, Any], moment: datetime) -> PageOutcome:
        """A settle round: records whose link the live sync saved since this job read it. One whose Dynamics value
        is still the one this job wrote needs no Marketo call: whatever the live sync wrote in between, the job's
        write (or a later live one of the same value) left Marketo with it, so only its baseline is saved. The
        others (the value moved meanwhile) are written again."""
        outcome = PageOutcome()
        rows = self._eligible(records, outcome, moment)
        unchanged = [
            (link, canonical)
            for link, canonical, _ in rows
            if link.dynamics_id in written and _same(written[link.dynamics_id], canonical)
        ]
        if unchanged:
            self._save(unchanged, outcome)
        kept = {id(link) for link, _ in unchanged}
        self._write([row for row in rows if id(row[0]) not in kept], outcome, moment)
        return outcome

    @property
    def _select(self) -> list[str]:
        """The id and the one column (and the sync filter, where the table has one)."""
        extra = [SYNC_FILTER_COLUMN] if self.entity.sync_filter else []
        return [self.entity.id_column, self.field.selected_as, *extra]

    def _fetch(self, job: QuickSyncJob, page_size: int, link: str | None) -> tuple[list[Record], str | None]:
        return self.dataverse.query_page(
            self.entity.entity,
            select=self._select,
            filter=range_filter(job.modified_from, job.modified_to),
            page_size=page_size,
            next_link=link,
        )

    def _bulk(
        self, job: QuickSyncJob, records: list[Record], next_link: str | None, page_size: int, moment: datetime
    ) -> PageOutcome:
        """A group of pages through bulk import: the first page given, more read while the group has room (on a
        resume: exactly the pages the checkpoint says its files were built from). Each page is encoded into the
        import files as it is read and then dropped (:class:`ImportGroup`)."""
        outcome = PageOutcome()
        resuming = job.import_pages > 0
        group = ImportGroup(ImportFileBuilder(["id", self.field.marketo], max_bytes=self.max_file_bytes))
        for link, canonical, wire in self._eligible(records, outcome, moment):
            group.add(link, canonical, wire)
        pages, read = 1, len(records)
        while next_link and (
            pages < job.import_pages if resuming else len(group) < self.group_max_records and not self.out_of_time()
        ):
            more, next_link = self._fetch(job, page_size, next_link)
            pages, read = pages + 1, read + len(more)
            for link, canonical, wire in self._eligible(more, outcome, moment):
                group.add(link, canonical, wire)
        outcome.read, outcome.next_link, outcome.pages = read, next_link, pages
        files = group.files.files()
        stamp = digest(files)
        importer = self._importer(job)
        if resuming and job.import_digest != stamp:
            # The pages changed since their files were submitted: let those imports finish (they would overwrite
            # a newer write), then write the current values the ordinary way.
            if not importer.finish_open():
                outcome.waiting = True
                return outcome
            importer.clear()
            for rows in self._regathered(group, outcome):
                self._write(rows, outcome, moment)
            return outcome
        if not files:
            return outcome
        if not resuming:
            job.import_pages, job.import_batches, job.import_digest = pages, [], stamp
            self.checkpoint(job)
        result = importer.run(files)
        if result is None:
            outcome.waiting = True
            return outcome
        self._save_imported(group, result, outcome, moment)
        return outcome

    def _regathered(self, group: ImportGroup, outcome: PageOutcome) -> Iterator[list[Row]]:
        """The group's rows again, a chunk of links at a time, as :meth:`_write` takes them; a link saved since it
        was read is the live sync's (a conflict, for the settle rounds)."""
        for places in _key_order(group):
            current = self.store.get_links(self.entity.entity, [group.dynamics_ids[at] for at in places])
            rows: list[Row] = []
            for at in places:
                rid = group.dynamics_ids[at]
                link = current.get(rid.lower())
                if link is None or link.etag != group.etags[at]:
                    outcome.conflicts.append(rid)
                    continue
                value = group.values[at]
                rows.append((link, value, to_marketo(self.field, value)))
            yield rows

    def _save_imported(self, group: ImportGroup, result: ImportResult, outcome: PageOutcome, moment: datetime) -> None:
        """The rows Marketo imported get their new baselines (re-read a chunk of links at a time, saved on the
        ETags they had when read); the rows it failed or warned about become sync errors naming the record."""
        imported: dict[str, int] = {}  # Dynamics id -> its place in the group
        for places in _key_order(group):
            imported.clear()
            for at in places:
                rid, marketo_id = group.dynamics_ids[at], str(group.marketo_ids[at])
                problem = result.failed.get(marketo_id) or result.warned.get(marketo_id)
                if problem is None:
                    imported[rid] = at
                    continue
                code = "bulk-import-failed" if marketo_id in result.failed else "bulk-import-warning"
                self._error(sync_error(self.entity.entity, rid, "quick_sync", TO_MARKETO, code, problem, at=moment))
                outcome.failed += 1
            current = self.store.get_links(self.entity.entity, list(imported))
            written: list[tuple[Link, Any]] = []
            for rid, at in imported.items():
                link = current.get(rid.lower())
                if link is None or link.etag != group.etags[at]:
                    outcome.conflicts.append(rid)  # saved (or deleted) since it was read: the live sync's
                    outcome.written[rid] = group.values[at]
                    continue
                written.append((link, group.values[at]))
            self._save(written, outcome)

    def _importer(self, job: QuickSyncJob) -> Importer:
        return Importer(self.marketo, job, self.checkpoint, self.out_of_time)

    def push(self, records: list[Record], moment: datetime) -> PageOutcome:
        """Write the field of ``records`` (read with the field's column among theirs) to the linked Marketo records,
        then their baselines: a force resync's refresh of Marketo, one field at a time."""
        return self._push(records, moment)

    def _push(self, records: list[Record], moment: datetime) -> PageOutcome:
        """Write the column's value of every linked record to Marketo, then its baseline."""
        outcome = PageOutcome()
        self._write(self._eligible(records, outcome, moment), outcome, moment)
        return outcome

    def _eligible(self, records: list[Record], outcome: PageOutcome, moment: datetime) -> list[Row]:
        """The linked records the sync filter lets through, with their values; the rest counted in ``outcome``."""
        entity, f = self.entity, self.field
        persons = entity.rule.two_way
        links = self.store.get_links(entity.entity, [r.id for r in records])
        rows: list[Row] = []
        for record in records:
            link = links.get(record.id)
            if link is None or link.deleted_in_dynamics or link.followed_by or (persons and not link.marketo_id):
                outcome.unlinked += 1  # not synced yet (or no longer): the live sync creates it with every field
                continue
            if sync_filter_flag(record, entity) is False:
                outcome.filtered += 1  # kept out by the sync filter: Quick Sync writes it no more than the live sync
                continue
            canonical = from_dynamics(f, record.values.get(f.dynamics))  # a missing value is a null: nulls count
            wire = canonical if isinstance(canonical, ConversionError) else to_marketo(f, canonical)
            if isinstance(canonical, ConversionError) or isinstance(wire, ConversionError):
                reason = wire.reason  # the canonical value's error, when that failed already
                error = sync_error(entity.entity, record.id, "convert", TO_MARKETO, "conversion", reason, at=moment)
                self._error(error)
                outcome.failed += 1
                continue
            rows.append((link, canonical, wire))
        return rows

    def _write(self, rows: list[Row], outcome: PageOutcome, moment: datetime) -> None:
        """Sync calls of up to 300 records (persons by Marketo id, objects on their link field), then baselines."""
        if not rows:
            return
        entity, f = self.entity, self.field
        if entity.rule.two_way:
            bodies = [{"id": int(str(link.marketo_id)), f.marketo: wire} for link, _, wire in rows]
            results: list[RecordOutcome] = marketo_side.update_persons(self.marketo, bodies)
        else:
            bodies = [{entity.marketo_link_field: link.dynamics_id, f.marketo: wire} for link, _, wire in rows]
            results = marketo_side.upsert_objects(self.marketo, entity, bodies)
        written: list[tuple[Link, Any]] = []
        for (link, canonical, _), result in zip(rows, results, strict=True):
            if not result.ok:
                self._error(marketo_error(entity.entity, link.dynamics_id, "quick_sync", result, at=moment))
                outcome.failed += 1
                continue
            written.append((link, canonical))
        self._save(written, outcome)

    def _save(self, written: list[tuple[Link, Any]], outcome: PageOutcome) -> None:
        """The new baselines, in batch transactions on the links' ETags; a link saved meanwhile is a conflict."""
        links = [replace(link, baseline={**link.baseline, self.field.dynamics: value}) for link, value in written]
        saved, conflicts = self.store.replace_links(self.entity.entity, links)
        outcome.done += len(saved)
        for (link, value), saving in zip(written, links, strict=True):
            if saving.dynamics_id.lower() in conflicts:
                outcome.conflicts.append(link.dynamics_id)
                outcome.written[link.dynamics_id] = value

    def _error(self, error: SyncErrorRecord) -> None:
        """Recorded as met by this Quick Sync, on its field."""
        self.store.add_error(replace(error, message=f"Quick Sync: {error.message}", field=self.field.dynamics))
