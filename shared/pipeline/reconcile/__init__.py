"""Reconcile a batch of notifications: read both sides in bulk, decide per record, write in bulk, save baselines.

Calls per batch, per entity, in the steady state: one Dataverse read, one Marketo read (persons only), one
Marketo write, one Dataverse ``$batch`` when Marketo-side changes flow back. New records add one Marketo lookup
by e-mail. Everything the decision needs is re-read, so a notification's age or order does not matter.

What can go wrong, and where it goes:

* a whole call fails transiently (throttled past the client's retries, service down, Marketo's quota spent): the
  service's circuit opens, the batch's pending marks wait for its probe and the batch completes (the marks hold
  the work, docs/durability.md); only a failure of the state store itself, or a bug, propagates for Service Bus
  to redeliver (dead-letter after its max delivery count);
* a record reconciled (synced, nothing to do, a sync error recorded, ignored for good) has its pending mark
  cleared, if no change arrived since the batch read it;
* one record fails (bad value, Marketo skipped it, no privilege): a sync error with operation, direction, code and
  message; the rest of the batch goes on and that record's baseline keeps its old values;
* a mapped column or field no longer exists: it is marked broken and reported once, the rest keeps syncing;
* a record changed under us (Dataverse 412, a baseline saved by another instance): the notification is put back
  on the queue to be decided again, up to :data:`MAX_ATTEMPTS` times, then recorded as a sync error.

One module per concept:

* :mod:`.reconciler` the batch flow (plan, reconcile each entity, requeue, errors and counters; marks, circuits);
* :mod:`.batch` the batch as values (targets, the plan, the report) and what the work goes through;
* :mod:`.matching` which person each lead or contact is; :mod:`.persons` leads and contacts, two-way;
* :mod:`.objects` one-way entities; :mod:`.roles` an opportunity's primary contact role;
* :mod:`.broken` columns and fields that disappear; :mod:`.links` saving links and baselines.

The sync error records are worded in :mod:`shared.pipeline.sync_errors`, and a vanished field is marked broken
in :mod:`shared.pipeline.field_states`: Quick Sync records and marks them the same way.
"""

from __future__ import annotations

from shared.pipeline.reconcile.batch import MAX_ATTEMPTS, BatchReport
from shared.pipeline.reconcile.reconciler import Reconciler

__all__ = ["MAX_ATTEMPTS", "BatchReport", "Reconciler"]
