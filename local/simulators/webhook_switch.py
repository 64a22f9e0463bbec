"""The switch in front of a simulator's outgoing webhooks: on or off, and a share lost on the way (seeded).

Both simulators post to the product when something changes (the Dataverse plug-in steps, the Marketo "Call
Webhook" step); each asks its :class:`WebhookSwitch` before a post goes out. ``POST /_simulator/webhooks`` drives
it (``enabled``, ``drop``, ``seed``; see ``control_surface.py``) and ``GET /_simulator/webhooks`` shows
:meth:`WebhookSwitch.state`. The random share is drawn from a generator seeded with ``seed``, so the same posts
are lost every run. A post switched off or dropped is never sent; how a failed one is retried (or not) is the
simulator's own business, it only tells the switch with :meth:`WebhookSwitch.fail`.
"""

from __future__ import annotations

import random
import threading


class WebhookSwitch:
    """Whether each webhook post goes out, and the counts: sent, failed, dropped, suppressed (switched off)."""

    fields: tuple[str, ...] = ("enabled", "drop", "seed", "sent", "failed", "dropped", "suppressed")  # state()

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.enabled = True
        self.drop = 0.0
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - chooses which calls a test loses, not a secret
        self.sent = 0
        self.failed = 0  # sent, but the receiver did not take it (no 2xx, or no answer)
        self.dropped = 0
        self.suppressed = 0  # not sent because webhooks were switched off

    def configure(self, *, enabled: bool | None = None, drop: float | None = None, seed: int | None = None) -> None:
        if drop is not None and not 0.0 <= drop <= 1.0:
            raise ValueError("drop must be between 0 and 1")
        with self._lock:
            if enabled is not None:
                self.enabled = enabled
            if drop is not None:
                self.drop = drop
            if seed is not None:
                self.seed = seed
                self._random = random.Random(seed)  # noqa: S311 - see __init__

    def admit(self) -> bool:
        """True if this post is to go out; books it as suppressed or dropped otherwise."""
        with self._lock:
            if not self.enabled:
                self.suppressed += 1
                return False
            if self.drop and self._random.random() < self.drop:
                self.dropped += 1
                return False
            self.sent += 1
            return True

    def fail(self) -> None:
        """Book a post that went out but did not get through."""
        with self._lock:
            self.failed += 1

    def state(self) -> dict[str, object]:
        with self._lock:
            return {name: getattr(self, name) for name in self.fields}
