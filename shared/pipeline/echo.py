"""Is a Marketo change worth a reconcile? Cheap checks against the stored baseline, before any API call.

The sync's own writes to Marketo come back as Change Data Value activities and as webhook calls. When every
mapped field the change names already holds the value both sides agreed on (the baseline, or the value a
reconcile is writing to Marketo right now: its intent), it is an echo: queueing it would only spend API calls
to conclude "in sync".
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from shared.core.intent import MARKETO, intent_key
from shared.core.mapping import SyncMapping
from shared.core.values import ConversionError, from_marketo
from shared.store.base import StateStore
from shared.store.model import Link


class _Unset:
    """Marks "not looked up yet" apart from "looked up: no link"."""


_UNSET = _Unset()


class MarketoChange(StrEnum):
    SYNC = "sync"
    UNLINKED = "the Marketo person is not linked to a Dynamics record: not pushed (use 'sync person to Dynamics')"
    ECHO = "every changed field already holds the synced value: the sync's own write, not echoed back"
    UNMAPPED = "no synced field changed"


def classify_marketo_change(
    store: StateStore,
    mapping: SyncMapping,
    lead_id: str,
    changes: Iterable[tuple[str, object]],
    *,
    link: Link | _Unset | None = _UNSET,
) -> MarketoChange:
    """``link``: the person's link when the caller already looked it up (None: it has none)."""
    if isinstance(link, _Unset):
        link = store.find_by_marketo("lead", lead_id)
    if link is None:
        return MarketoChange.UNLINKED
    entity = mapping.by_entity.get(link.entity)
    if entity is None:
        return MarketoChange.UNMAPPED
    mapped = 0
    for name, new_value in changes:
        field = entity.by_marketo.get(name.casefold())
        if field is None:
            continue
        mapped += 1
        value = from_marketo(field, new_value)
        if isinstance(value, ConversionError) or value not in _agreed(link, field.dynamics):
            return MarketoChange.SYNC
    return MarketoChange.ECHO if mapped else MarketoChange.UNMAPPED


def _agreed(link: Link, column: str) -> list[object]:
    """The values both sides agree on for a column: the baseline's, and the one a reconcile is writing to Marketo
    now (its intent, saved before the write: Marketo's webhook for that write can arrive before the new baseline
    is saved)."""
    agreed: list[object] = [link.baseline[column]] if column in link.baseline else []
    written = intent_key(MARKETO, column)
    if written in link.intent:
        agreed.append(link.intent[written])
    return agreed
