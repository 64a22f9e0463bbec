"""The two ports the pipeline shares beyond the store and the clients: the changes queue and the live mapping.

Pipeline functions take what they use (the store, a client, the mapping, these) rather than the composition
root, so each one's signature says what it touches; the composition root builds these once per process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.core.mapping import MappingError, SyncMapping
from shared.errors import NotPossible
from shared.pipeline.notification import Notification, notification_message
from shared.queueing import OutgoingMessage, QueueSender
from shared.store.mapping import Change, MappingRepository


@dataclass(frozen=True, slots=True)
class ChangesQueue:
    """Where notifications wait for the reconcile function."""

    sender: QueueSender
    name: str

    def send(self, notes: Iterable[Notification]) -> list[OutgoingMessage]:
        """All or nothing (the sender raises :class:`RetryLater` / :class:`StopSync`); nothing is sent for none."""
        messages = [notification_message(n) for n in notes]
        if messages:
            self.sender.send(self.name, messages)
        return messages


@dataclass(frozen=True, slots=True)
class LiveMapping:
    """The stored mapping document and this process's cached copy of it.

    ``current()`` re-reads the document (a request that edits the mapping must check against the latest one);
    ``update()`` saves a change through the repository and refreshes this process's copy at once, so the live
    sync here sees the edit immediately and other instances within their refresh interval.
    """

    repository: MappingRepository
    reload: Callable[[], SyncMapping]  # re-reads the document into this process's cache and returns it

    def current(self) -> SyncMapping:
        return self.reload()

    def update(self, change: Change) -> SyncMapping:
        """Apply ``change`` (it raises to refuse); an edit that leaves the mapping unusable is refused too."""
        try:
            self.repository.update(change)
        except MappingError as exc:
            raise NotPossible(f"the mapping would not be valid: {exc}", code="invalid-mapping") from exc
        return self.reload()
