"""The initial sync of an entity added at runtime: every record of its table reconciled once, as a backfill job
behind live traffic (kind ``initial_sync``, worked by the job runner as a both-ways resync is).

Contract:

* The job waits until ``not_before`` (the add's moment plus the mapping refresh interval), so every instance has
  seen the entity in the mapping before its records are queued: an instance that had not would ignore them.
* Scope ``changes`` (change tracking on for the table): the table is read page by page with ``Prefer:
  odata.track-changes``, ids only; each page's ids are marked pending and queued (a page waits while more than half
  of the previous one is still pending, as a both-ways resync waits), and the reconcile creates each record in
  Marketo by the live sync's rules. The read's last page carries a delta link, handed to the catch-up timer
  (:func:`shared.pipeline.feeds.start_catch_up`): whatever changes after the read is in the delta, whatever
  changed before it the reconcile reads, so nothing falls between the job and the catch-up.
* A table Dataverse refuses to read that way (change tracking off) is read as a plain query instead (scope
  ``entity``); its live changes then reach the sync only through its plug-in steps.
* Records linked from an earlier time the entity was mapped forget their baselines before they are queued, so a
  re-added entity has every field of every record written again (its custom object may have changed meanwhile).
* Once every page is queued the entity's state moves from ``initial_sync`` to ``active`` and the catch-up takes
  the table over. The job's row in the state store is the record of the work: a run cut short resumes at the saved
  page; a crash between the mapping's save and the job's is mended by the runner, which gives an entity waiting in
  ``initial_sync`` without a job a new one (:func:`adopt_entities`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.core.mapping import EntityState, SyncMapping
from shared.errors import SkipRecord
from shared.pipeline.feeds import start_catch_up
from shared.pipeline.ports import LiveMapping
from shared.pipeline.quicksync.jobs import JobKind, JobState, QuickSyncJob, iso, list_jobs, new_job_id, save_job
from shared.pipeline.quicksync.resync import Mode, Resync, ResyncPage, Scope
from shared.store.base import StateStore
from shared.store.mapping import CHANGED, UNCHANGED, entity_document

log = logging.getLogger(__name__)

CHANGES = "changes"  # scope: the table read through change tracking (the delta link goes to the catch-up)


def new_initial_sync_job(
    store: StateStore,
    entity: str,
    *,
    now: datetime,
    change_tracking: bool = True,
    settle: timedelta = timedelta(0),
    page_size: int | None = None,
) -> QuickSyncJob:
    job = QuickSyncJob(
        id=new_job_id(now, entity, "initial"),
        entity=entity,
        column="",
        marketo_field="",
        state=JobState.QUEUED,
        created_at=iso(now),
        page_size=page_size,
        kind=JobKind.INITIAL_SYNC,
        mode=Mode.BOTH_WAYS.value,
        scope=CHANGES if change_tracking else Scope.ENTITY.value,
        not_before=iso(now + settle) if settle > timedelta(0) else None,
    )
    return save_job(store, job, now)


def active_initial_sync(store: StateStore, entity: str) -> QuickSyncJob | None:
    return next(
        (j for j in list_jobs(store) if j.kind is JobKind.INITIAL_SYNC and j.entity == entity and j.state.active),
        None,
    )


def adopt_entities(store: StateStore, mapping: SyncMapping, now: datetime) -> list[str]:
    """An entity waiting in ``initial_sync`` with no active initial sync job gets one; the new jobs' ids."""
    adopted = []
    for entity in mapping.entities:
        if entity.state is EntityState.INITIAL_SYNC and active_initial_sync(store, entity.entity) is None:
            job = new_initial_sync_job(store, entity.entity, now=now)
            log.warning("initial sync job %s created for %s, which waited without one", job.id, entity.entity)
            adopted.append(job.id)
    return adopted


@dataclass(frozen=True, slots=True)
class InitialSync(Resync):
    """One page of an initial sync: ids through change tracking (or a plain query), queued for the reconcile."""

    def page(self, job: QuickSyncJob, page_size: int, moment: datetime) -> ResyncPage:
        if job.scope != CHANGES:
            return Resync.page(self, job, page_size, moment)  # a plain query of ids, queued as a both-ways resync's
        if self._busy(job):
            return ResyncPage(paced=True)
        try:
            found = self.dataverse.changes_page(self.entity.entity, select=[], link=job.next_link, page_size=page_size)
        except SkipRecord as exc:
            if job.next_link is not None:
                raise  # a stale resume link: the runner starts the job over from the first page
            log.warning("initial sync %s: no change feed for %s (%s); reading it as a query", job.id, job.entity, exc)
            job.scope = Scope.ENTITY.value
            job.notice = "change tracking is off for the table: its changes are caught up only by its plug-in steps"
            return Resync.page(self, job, page_size, moment)
        ids = [c.id for c in found.changes if c.kind == "upsert"]
        self._queue(job, ids)
        last = found.next_link is None
        if last and found.delta_link:
            start_catch_up(self.store, self.entity.entity, found.delta_link, moment)
        return ResyncPage(read=len(ids), done=len(ids), next_link=found.next_link, last=last, queued=ids)

    def _queue(self, job: QuickSyncJob, ids: list[str]) -> None:
        """Records linked from an earlier time the entity was mapped forget their baselines first, so the reconcile
        writes every field again (the custom object, or what it holds, may have changed meanwhile); a link saved
        meanwhile was just reconciled by the mapping as it is now and is left as it is."""
        links = self.store.get_links(self.entity.entity, ids)
        stale = [replace(link, baseline={}) for link in links.values() if link.baseline]
        if stale:
            self.store.replace_links(self.entity.entity, stale)
        Resync._queue(self, job, ids)


def entity_synced(live: LiveMapping, entity: str) -> SyncMapping:
    """The entity's state back to ``active``: the catch-up reads its table from the delta link the job saved."""

    def change(document: dict[str, Any]) -> bool:
        entry = entity_document(document, entity)
        if entry is None or entry.get("state", EntityState.ACTIVE.value) == EntityState.ACTIVE.value:
            return UNCHANGED
        entry.pop("state", None)  # active is the default
        return CHANGED

    return live.update(change)
