from __future__ import annotations

from tests.marketo_harness import clock, h, loopback, mode

__all__ = ["clock", "h", "loopback", "mode"]
