"""The whole product in-process on the simulated tenants, started and stopped one way for every test that needs it.

The FunctionApp's own functions, the local broker and SQLite; timers fire only when a test fires them
(``stack.host.fire``), the job runner too (its nudges wait unless ``run_job_nudges=True``), and a failed batch is
retried after a short pause. A test with other needs passes
``LocalStack``'s own options (``batching``, ``overrides``, ``state_path``, ``clock``...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import function_app
from local.host import Batching
from local.stack import LocalStack

# Deliver what is there at once, one batch at a time: tests see a change reconciled without waiting for a batch
# to fill (host.json's batching is for throughput, and the benchmarks use it).
PROMPT_BATCHING = Batching(max_size=300, min_size=1, max_wait=0.0, concurrency=1)


@contextmanager
def running_stack(**options: Any) -> Iterator[LocalStack]:
    settings: dict[str, Any] = {
        "in_process": True,
        "run_timers": False,
        "retry_delay": 0.05,
        "run_job_nudges": False,  # jobs run when a test fires the quick_sync timer (or asks for nudges)
        **options,
    }
    stack = LocalStack(function_app.app, **settings).start()
    try:
        yield stack
    finally:
        stack.stop()
