"""Quick Sync: a field added while the sync runs is refreshed from Dynamics to Marketo for every linked record.

* :mod:`.jobs` - one job per added field, kept in the state store as a checkpoint row, saved on its ETag;
* :mod:`.timer` - the timer run: works the queued and running jobs within a time budget, moves the field's state;
* :mod:`.backfill` - one page of one job: read the column from Dynamics, write it to Marketo, save baselines;
* :mod:`.status` - what the status view and the jobs endpoint show.

The field's state in the mapping document moves ``awaiting_quick_sync`` -> ``quick_sync_running`` -> ``active``;
the live sync meanwhile refreshes records it touches from Dynamics (``Reason.QUICK_SYNC`` in the policy).
"""
