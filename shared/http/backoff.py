"""Retry timing: exponential backoff with full jitter, bounded by a time budget.

A pure value object so the clients' retry loops stay small and tests can run them with a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.5
    cap: float = 20.0
    budget: float = 60.0
    max_attempts: int = 6

    def delay(
        self, attempt: int, *, retry_after: float | None = None, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1).

        A server's ``Retry-After`` is honoured as a floor: never retry earlier than the service asked.
        """
        jittered = rand() * min(self.cap, self.base * 2.0 ** (attempt - 1))
        return max(jittered, retry_after or 0.0)

    def allows(self, attempt: int, elapsed: float, next_delay: float) -> bool:
        """Whether another attempt fits in both the attempt count and the time budget."""
        return attempt < self.max_attempts and elapsed + next_delay <= self.budget
