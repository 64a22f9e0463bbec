"""Jobs that run beside the live sync: Quick Sync (a field added while the sync runs is refreshed from Dynamics to
Marketo for every linked record) and the force resync.

* :mod:`.jobs` - one job per row in the state store (a checkpoint), saved on its ETag; progress, rate and ETA;
* :mod:`.timer` - one run of the job runner: works the queued and running jobs within a time budget, moves the
  field's state; started at once by a nudge (:mod:`.nudge`, ``QUICK_SYNC_QUEUE``), resumed by its timer;
* :mod:`.backfill` - one page of one Quick Sync job: read the column from Dynamics, write it to Marketo, baselines;
* :mod:`.resync` - the force resync: records queued for a reconcile both ways, or Marketo refreshed from Dynamics;
* :mod:`.start` and :mod:`.status` - starting a Quick Sync by hand; what the jobs endpoints and the status view show.

The field's state in the mapping document moves ``awaiting_quick_sync`` -> ``quick_sync_running`` -> ``active``;
the live sync meanwhile refreshes records it touches from Dynamics (``Reason.QUICK_SYNC`` in the policy).
"""
