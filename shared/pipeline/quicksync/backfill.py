"""One page of one Quick Sync job: the column's values from Dynamics to Marketo, then the baselines.

Contract: only records linked to Marketo are written (persons updated by Marketo id, one-way objects upserted on
their link field), nulls included; then the column's baseline is saved on each link's ETag. A link saved by the
live sync in between is re-read with its Dynamics record and pushed once more (up to :data:`SETTLE_ROUNDS`), so
the value the live sync settled cannot be overwritten by the older one read here; if it keeps moving, the record
is left to the live sync. Record-level failures become sync errors; a whole call that fails raises.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.core.mapping import EntityMapping, FieldMapping, FieldType
from shared.core.values import ConversionError, from_dynamics, to_marketo
from shared.dataverse.client import DataverseClient
from shared.dataverse.paging import NextLinkPaginator
from shared.dataverse.records import Record, record_from_row
from shared.errors import Conflict, StopSync
from shared.marketo.client import MarketoClient
from shared.marketo.models import RecordOutcome
from shared.pipeline import marketo_side
from shared.pipeline.quicksync.jobs import QuickSyncJob
from shared.store.base import StateStore
from shared.store.model import TO_MARKETO, SyncErrorRecord

SETTLE_ROUNDS = 2  # re-pushes of records whose link the live sync saved while this page was in flight


@dataclass(slots=True)
class PageOutcome:
    read: int = 0
    done: int = 0
    unlinked: int = 0
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
            again = self.dataverse.read_by_ids(self.entity.entity, outcome.conflicts, self._select())
            retried = self._push(list(again.values()), moment)
            outcome.done += retried.done
            outcome.unlinked += retried.unlinked + len(set(outcome.conflicts) - set(again))  # deleted meanwhile
            outcome.failed += retried.failed
            outcome.conflicts = retried.conflicts
        outcome.read, outcome.next_link = len(records), next_link
        return outcome

    def _select(self) -> list[str]:
        """The id and the one column (a lookup is selected as ``_<column>_value``, the Web API's rule)."""
        f = self.field
        return [self.entity.id_column, f"_{f.dynamics}_value" if f.type is FieldType.LOOKUP else f.dynamics]

    def _fetch(self, job: QuickSyncJob, page_size: int) -> tuple[list[Record], str | None]:
        info = self.dataverse.entity(self.entity.entity)
        headers = {"Prefer": f'odata.maxpagesize={page_size},odata.include-annotations="*"'}
        if job.next_link:
            response = self.dataverse.request("GET", job.next_link, headers=headers)
        else:
            params = {"$select": ",".join(dict.fromkeys([info.primary_id_attribute, *self._select()]))}
            flt = range_filter(job.modified_from, job.modified_to)
            if flt:
                params["$filter"] = flt
            response = self.dataverse.request("GET", info.entity_set_name, params=params, headers=headers)
        try:
            body = response.json()
        except ValueError:
            raise StopSync(f"Dataverse answered the {self.entity.entity} query with a body that is not JSON") from None
        paginator = NextLinkPaginator()
        paginator.update_state(body)
        rows = body.get("value") or []
        return [record_from_row(row, info.primary_id_attribute) for row in rows], paginator.next_url

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
            canonical = from_dynamics(f, record.values.get(f.dynamics))  # a missing value is a null: nulls count
            wire = canonical if isinstance(canonical, ConversionError) else to_marketo(f, canonical)
            if isinstance(canonical, ConversionError) or isinstance(wire, ConversionError):
                reason = wire.reason if isinstance(wire, ConversionError) else str(wire)
                self._error(record.id, "convert", "conversion", reason, moment)
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
                codes = ",".join(result.reason_codes) or str(result.status)
                message = "; ".join(r.message for r in result.reasons) or f"Marketo answered {result.status}"
                self._error(link.dynamics_id, "quick_sync", codes, message, moment)
                outcome.failed += 1
                continue
            try:
                self.store.save_link(replace(link, baseline={**link.baseline, f.dynamics: canonical}))
            except Conflict:
                outcome.conflicts.append(link.dynamics_id)
                continue
            outcome.done += 1
        return outcome

    def _error(self, record_id: str, operation: str, code: str, message: str, moment: datetime) -> None:
        self.store.add_error(
            SyncErrorRecord(
                id=uuid.uuid4().hex,
                entity=self.entity.entity,
                record_id=record_id,
                operation=operation,
                direction=TO_MARKETO,
                code=code,
                message=f"Quick Sync: {message}",
                occurred_at=moment,
                field=self.field.dynamics,
            )
        )
