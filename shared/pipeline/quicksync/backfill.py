"""One page of one Quick Sync job: the column's values from Dynamics to Marketo, then the baselines.

Contract: only records linked to Marketo are written (persons updated by Marketo id, one-way objects upserted on
their link field), nulls included; then the column's baseline is saved on each link's ETag. A link saved by the
live sync in between is re-read with its Dynamics record and pushed once more (up to :data:`SETTLE_ROUNDS`), so
the value the live sync settled cannot be overwritten by the older one read here; if it keeps moving, the record
is left to the live sync. Record-level failures become sync errors; a whole call that fails raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldMapping
from shared.core.values import ConversionError, from_dynamics, to_marketo
from shared.dataverse.client import DataverseClient
from shared.dataverse.records import Record
from shared.errors import Conflict
from shared.marketo.client import MarketoClient
from shared.marketo.models import RecordOutcome
from shared.pipeline import marketo_side
from shared.pipeline.dataverse_side import sync_filter_flag
from shared.pipeline.quicksync.jobs import QuickSyncJob
from shared.pipeline.sync_errors import marketo_error, sync_error
from shared.store.base import StateStore
from shared.store.model import TO_MARKETO, SyncErrorRecord

SETTLE_ROUNDS = 2  # re-pushes of records whose link the live sync saved while this page was in flight


@dataclass(slots=True)
class PageOutcome:
    read: int = 0
    done: int = 0
    unlinked: int = 0
    filtered: int = 0  # linked, but its sync filter says No
    failed: int = 0
    conflicts: list[str] = field(default_factory=list)  # left to the live sync once the settle rounds are spent
    next_link: str | None = None  # None: that was the last page


def range_filter(modified_from: str | None, modified_to: str | None) -> str | None:
    parts = []
    if modified_from:
        parts.append(f"modifiedon ge {modified_from}")
    if modified_to:
        parts.append(f"modifiedon le {modified_to}")
    return " and ".join(parts) or None


@dataclass(frozen=True, slots=True)
class Backfill:
    """One field's refresh, page by page."""

    store: StateStore
    dataverse: DataverseClient
    marketo: MarketoClient
    entity: EntityMapping
    field: FieldMapping

    def page(self, job: QuickSyncJob, page_size: int, moment: datetime) -> PageOutcome:
        """The job's next page (the first from the query, the next ones from its saved ``@odata.nextLink``)."""
        records, next_link = self._fetch(job, page_size)
        outcome = self._push(records, moment)
        for _ in range(SETTLE_ROUNDS):
            if not outcome.conflicts:
                break
            again = self.dataverse.read_by_ids(self.entity.entity, outcome.conflicts, self._select)
            retried = self._push(list(again.values()), moment)
            outcome.done += retried.done
            outcome.unlinked += retried.unlinked + len(set(outcome.conflicts) - set(again))  # deleted meanwhile
            outcome.failed += retried.failed
            outcome.conflicts = retried.conflicts
        outcome.read, outcome.next_link = len(records), next_link
        return outcome

    @property
    def _select(self) -> list[str]:
        """The id and the one column (and the sync filter, where the table has one)."""
        extra = [SYNC_FILTER_COLUMN] if self.entity.sync_filter else []
        return [self.entity.id_column, self.field.selected_as, *extra]

    def _fetch(self, job: QuickSyncJob, page_size: int) -> tuple[list[Record], str | None]:
        return self.dataverse.query_page(
            self.entity.entity,
            select=self._select,
            filter=range_filter(job.modified_from, job.modified_to),
            page_size=page_size,
            next_link=job.next_link,
        )

    def _push(self, records: list[Record], moment: datetime) -> PageOutcome:
        """Write the column's value of every linked record to Marketo, then its baseline."""
        entity, f = self.entity, self.field
        outcome = PageOutcome()
        persons = entity.rule.two_way
        links = self.store.get_links(entity.entity, [r.id for r in records])
        pending = []
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
            if persons:
                body = {"id": int(str(link.marketo_id)), f.marketo: wire}
            else:
                body = {entity.marketo_link_field: record.id, f.marketo: wire}
            pending.append((link, canonical, body))
        bodies = [body for _, _, body in pending]
        results: list[RecordOutcome] = (
            marketo_side.update_persons(self.marketo, bodies)
            if persons
            else marketo_side.upsert_objects(self.marketo, entity, bodies)
        )
        for (link, canonical, _), result in zip(pending, results, strict=True):
            if not result.ok:
                self._error(marketo_error(entity.entity, link.dynamics_id, "quick_sync", result, at=moment))
                outcome.failed += 1
                continue
            try:
                self.store.save_link(replace(link, baseline={**link.baseline, f.dynamics: canonical}))
            except Conflict:
                outcome.conflicts.append(link.dynamics_id)
                continue
            outcome.done += 1
        return outcome

    def _error(self, error: SyncErrorRecord) -> None:
        """Recorded as met by this Quick Sync, on its field."""
        self.store.add_error(replace(error, message=f"Quick Sync: {error.message}", field=self.field.dynamics))
