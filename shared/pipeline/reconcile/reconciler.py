"""The batch flow: plan the batch, reconcile each entity's records, then finish.

The sync errors the batch met are recorded (one per record, field and cause, counted) and those of records it
reconciled cleanly resolved (:mod:`.error_lifecycle`). Finishing puts back the notifications of records that
changed under us (a second later, one attempt more), stores the counters the status view shows and the records'
history (the queue trigger logs each decision: shared/telemetry.py). Paused entities' notifications go back on
the queue at once, to be looked at again after the pause delay.

Around it, the durability (docs/durability.md): the batch reads its records' pending marks first and clears
those still at that version once reconciled (a change that arrived meanwhile keeps its mark). While a service's
circuit is open the batch does not call it; a batch that fails as a whole because Marketo or Dataverse is
unavailable opens the circuit. Either way its marks are deferred to the probe and the batch returns normally:
the marks hold the work, so an outage never burns a message's delivery count. Anything else (the store down, a
bug) still raises, and Service Bus redelivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from shared.core.circuit import Circuit
from shared.core.mapping import EntityMapping, SyncMapping
from shared.dataverse.client import DataverseClient
from shared.marketo.client import MarketoClient
from shared.pipeline.circuit import Circuits, outage_of
from shared.pipeline.history import record_history
from shared.pipeline.notification import Notification, notification_message
from shared.pipeline.pending import PendingWork, mark_key
from shared.pipeline.ports import LiveMapping
from shared.pipeline.reconcile.batch import Batch, BatchReport, Target, plan_batch
from shared.pipeline.reconcile.carry import (
    HELD_DONE,
    PERSONS,
    CarryRule,
    call_group,
    held_again,
    hold_until,
    split_for_full_calls,
)
from shared.pipeline.reconcile.error_lifecycle import settle_errors
from shared.pipeline.reconcile.objects import reconcile_objects
from shared.pipeline.reconcile.persons import reconcile_persons
from shared.queueing import QueueSender
from shared.store.base import StateStore

log = logging.getLogger(__name__)

REQUEUE_DELAY = timedelta(seconds=1)


class Reconciler:
    """Reconciles batches of notifications; one per batch is cheap (the composition root builds one each time)."""

    def __init__(
        self,
        mapping: SyncMapping,
        store: StateStore,
        dataverse: DataverseClient,
        marketo: MarketoClient,
        queue: QueueSender,
        queue_name: str,
        *,
        live: LiveMapping,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pause_delay: timedelta = timedelta(seconds=30),
        pending: PendingWork | None = None,
        circuits: Circuits | None = None,
    ) -> None:
        """``mapping`` is this process's copy, which the batch syncs by; ``live`` the stored document, where a
        vanished field is marked broken (and this process's copy refreshed at once)."""
        self.mapping = mapping
        self.store = store
        self.dataverse = dataverse
        self.marketo = marketo
        self.queue = queue
        self.queue_name = queue_name
        self.clock = clock
        self.pause_delay = pause_delay
        self.live = live
        self.pending = pending
        self.circuits = circuits

    def run(self, notes: Sequence[Notification], carry: CarryRule | None = None) -> BatchReport:
        """Reconcile the batch, or hold its marks for the probe when a service is unavailable (see the module).
        With ``carry``, the records beyond each call group's last full call go back on the queue to join the next
        batch (:mod:`.carry`): they are in ``report.carried`` and keep their marks."""
        if self.pending is None or self.circuits is None:
            return self._reconcile(notes, carry)[0]
        versions = self.pending.versions(notes)
        done = [n for n in notes if n.held_since is not None and mark_key(n) not in versions]
        if done:  # held back, then reconciled by a later change's batch (which cleared the mark)
            notes = [n for n in notes if n.held_since is None or mark_key(n) in versions]
        circuits = self.circuits.all()
        now = self.clock()
        blocking = next((c for c in circuits.values() if c.blocks(now)), None)
        if blocking is not None:
            return self._hold(notes, blocking, blocking.reason or "unavailable")
        try:
            report, touched = self._reconcile(notes, carry)
        except Exception as exc:
            outage = outage_of(exc)
            if outage is None:
                raise
            log.warning("%s unavailable, %d notification(s) wait for the probe: %s", outage.service, len(notes), exc)
            return self._hold(notes, self.circuits.failed(outage), outage.reason)
        if touched:
            for circuit in circuits.values():
                if circuit.is_open:
                    self.circuits.succeeded(circuit.service)
                    log.info("%s reachable again: circuit closed", circuit.service)
        kept = report.kept | {mark_key(n) for n in report.deferred}
        self.pending.clear({k: v for k, v in versions.items() if k not in kept})
        report.ignored.extend((n, HELD_DONE) for n in done)
        return report

    def _hold(self, notes: Sequence[Notification], circuit: Circuit, reason: str) -> BatchReport:
        assert self.pending is not None
        until = circuit.next_probe_at or self.clock()
        self.pending.defer(notes, until, reason, circuit.service)
        report = BatchReport(waiting_on=circuit.service)
        report.kept.update(map(mark_key, notes))
        return report

    def _reconcile(self, notes: Sequence[Notification], carry: CarryRule | None) -> tuple[BatchReport, bool]:
        """The batch flow; also whether any record was reconciled (so its services answered)."""
        started = self.clock()
        batch = Batch(self.mapping, self.live, self.store, self.dataverse, self.marketo, self.clock)
        report = batch.report
        pause = self.store.get_pause()
        persons = self.store.find_many_by_marketo(
            "lead", [n.marketo_id for n in notes if n.dynamics_id is None and n.marketo_id]
        )
        plan = plan_batch(notes, self.mapping, pause, persons)
        report.ignored.extend(plan.ignored)
        report.deferred.extend(plan.deferred)
        if plan.deferred:
            self._defer(plan.deferred)
        targets_now = plan.targets
        if carry is not None:
            targets_now, report.carried = split_for_full_calls(plan.targets, self.mapping, carry)
            report.kept.update(mark_key(n) for t in report.carried for n in t.notes)
        two_way: list[tuple[EntityMapping, list[Target]]] = []
        after_persons: list[tuple[EntityMapping, list[Target]]] = []
        for entity, targets in targets_now.items():
            mapping = batch.mapping.get(entity)
            if mapping.rule.two_way:
                two_way.append((mapping, targets))
            elif entity == "opportunity":
                after_persons.append((mapping, targets))  # its roles need the persons of its contacts
            else:
                reconcile_objects(batch, mapping, targets)  # sales persons before the persons they own
        if two_way:
            reconcile_persons(batch, two_way)
        for mapping, targets in after_persons:
            reconcile_objects(batch, batch.mapping.get(mapping.entity), targets)
        settled = settle_errors(self.store, report, targets_now, persons, started=started, at=self.clock())
        if settled.resolved:
            log.info("%d sync error(s) resolved: their records reconciled cleanly", len(settled.resolved))
        self._finish(report, carry)
        self.mapping = batch.mapping  # fields marked broken stay out of this reconciler's next batches
        return report, bool(targets_now)

    def _defer(self, notes: Sequence[Notification]) -> None:
        """Paused entities: their notifications wait on the queue and come back after the pause delay."""
        when = self.clock() + self.pause_delay
        stamp = self.clock().isoformat()
        messages = [
            notification_message(n.model_copy(update={"dedupe_key": f"{n.dedupe_key or ''}|paused@{stamp}"}), when)
            for n in notes
        ]
        self.queue.send(self.queue_name, messages)

    def _finish(self, report: BatchReport, carry: CarryRule | None = None) -> None:
        if report.requeued:
            when = self.clock() + REQUEUE_DELAY
            self.queue.send(self.queue_name, [notification_message(n, when) for n in report.requeued])
        if report.carried:  # they join a later batch's records (their marks hold them meanwhile)
            now = self.clock()
            flowed = carry is None or carry.fresh
            # held again by a batch of held records alone (the stream may have stopped): back on the fine grid
            held = [
                notification_message(n, hold_until(now, (flowed and call_group(self.mapping, t.entity)) or PERSONS))
                for t in report.carried
                for n in held_again(t, now, now.isoformat(), flowed)
            ]
            self.queue.send(self.queue_name, held)
        for entity, _, decision in report.decisions:
            # Decisions carried out, counted as made: when two instances race on one record, both carried
            # out the same resolution (the loser is re-decided), so a collision can count twice.
            report.count(entity, decision)
        for error in report.errors:  # recorded by settle_errors; field errors are counted with their decision
            report.counts[error.entity]["errors"] += 1 if error.field is None else 0
        for entity, counts in report.counts.items():
            self.store.add_counts(entity, {k: v for k, v in counts.items() if v}, at=self.clock())
        record_history(self.store, report)  # the records' history: a few requests per batch
