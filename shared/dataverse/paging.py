"""Paging and change-tracking state as small objects: feed each page in, ask where to go next.

Dataverse pages with ``@odata.nextLink`` (``$skip`` is not supported) and, under ``Prefer: odata.track-changes``,
ends the last page with ``@odata.deltaLink``: the checkpoint to call next time for what changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class NextLinkPaginator:
    """Follows ``@odata.nextLink`` until a page has none; remembers ``@odata.deltaLink`` if one appears."""

    next_url: str | None = None
    delta_link: str | None = None
    pages: int = 0
    _done: bool = field(default=False, repr=False)

    @property
    def has_more(self) -> bool:
        return not self._done

    def update_state(self, page: Mapping[str, Any]) -> None:
        self.pages += 1
        next_link = page.get("@odata.nextLink")
        self.next_url = next_link if isinstance(next_link, str) and next_link else None
        delta = page.get("@odata.deltaLink")
        if isinstance(delta, str) and delta:
            self.delta_link = delta
        self._done = self.next_url is None
