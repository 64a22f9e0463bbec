"""What must persist between stateless function runs: links and baselines, checkpoints, the mapping, pause
state, sync errors and status counters. One interface (:class:`shared.store.base.StateStore`), two
implementations: Azure Table Storage for Azure and SQLite for the local host, held to one contract test suite.
"""
