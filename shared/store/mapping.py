"""The sync mapping as one document in the state store, read and changed on its ETag.

Every instance reads the same document; a change (a field added or removed at runtime, a field marked broken by
a reconcile, a Quick Sync job moving a field's state) is applied to the freshest copy and saved conditionally on
its ETag. When another instance saved first, the change is re-applied to what they saved, so its checks always
see the latest mapping. The document is seeded once from the mapping file the app ships with.

A change is a function that edits the decoded document in place and says whether it changed anything
(:data:`UNCHANGED` spares the store a write). To refuse, it raises: the error reaches the caller unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.core.mapping import SyncMapping, load_mapping
from shared.errors import Conflict, StopSync
from shared.store.base import MAPPING_DOCUMENT, StateStore

CHANGED = True
UNCHANGED = False
SAVE_ATTEMPTS = 10

Change = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class StoredMapping:
    mapping: SyncMapping
    etag: str


class MappingRepository:
    def __init__(self, store: StateStore, seed: Callable[[], str]) -> None:
        self.store = store
        self.seed = seed  # the mapping file's text, read only when the store has no document yet

    def etag(self) -> str | None:
        """The stored document's ETag (cheap: lets a process see whether its cached mapping is stale)."""
        stored = self.store.get_document(MAPPING_DOCUMENT)
        return stored[1] if stored is not None else None

    def load(self) -> StoredMapping:
        text, etag = self._document()
        return StoredMapping(load_mapping(text), etag)

    def update(self, change: Change) -> SyncMapping:
        """Apply ``change`` to the freshest document and save it on its ETag; returns the mapping now stored.

        The changed document is validated like any mapping before it is saved (:class:`MappingError` when it is
        not usable), so a bad change never reaches another instance.
        """
        for _ in range(SAVE_ATTEMPTS):
            text, etag = self._document()
            document: dict[str, Any] = json.loads(text)
            if change(document) is UNCHANGED:
                return load_mapping(text)
            mapping = load_mapping(document)
            try:
                self.store.save_document(MAPPING_DOCUMENT, json.dumps(document, indent=2), etag)
            except Conflict:
                continue
            return mapping
        raise Conflict("the mapping document kept changing under us; try again")

    def _document(self) -> tuple[str, str]:
        stored = self.store.get_document(MAPPING_DOCUMENT)
        if stored is not None:
            return stored
        text = self.seed()
        load_mapping(text)  # a broken mapping file is refused before it is stored
        try:
            return text, self.store.save_document(MAPPING_DOCUMENT, text, None)
        except Conflict:  # another instance seeded it first: use theirs
            stored = self.store.get_document(MAPPING_DOCUMENT)
            if stored is None:
                raise StopSync("the mapping document could not be seeded in the state store") from None
            return stored


def entity_document(document: dict[str, Any], entity: str) -> dict[str, Any] | None:
    """The entity's part of a decoded mapping document (entity names compare case-insensitively)."""
    return next((e for e in document.get("entities", []) if str(e.get("entity", "")).lower() == entity), None)
