"""Waiting for a local process to be told to stop: SIGTERM (``kill``, ``make`` stopping it) or Ctrl-C.

Used by ``python -m local.simulators`` and by ``python -m local`` (the product's local host), which both serve on
loopback until then and stop their servers afterwards.
"""

from __future__ import annotations

import signal
import threading
from contextlib import suppress


def wait_for_stop() -> None:
    """Block until SIGTERM or Ctrl-C (call it from the main thread: it installs the SIGTERM handler)."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with suppress(KeyboardInterrupt):
        stopped.wait()
