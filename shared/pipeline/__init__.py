"""The sync pipeline: changes in (intake), onto the queue, reconciled in batches, written out."""
