"""Write intents: what the sync was about to make both sides agree on, saved before it writes.

A reconcile saves the link with its *intent* (for each field it writes: the system written and the value) before
any write, and the new baseline (with the intent cleared) after them. When the process dies in between, or a
write times out and may or may not have been applied, the next reconcile finds the intent: a field whose written
side now holds the intended value was written, so its baseline is that value. Without it, the sync's own write
would look like an edit made on that side since the last sync, and a later edit on the other side would meet it
as a collision: for a lead, a Dynamics user's newer value overwritten by the value the sync had just sent.

Only the written side is trusted: the side the value came from holding it proves nothing about the write.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.core.values import Canonical, ConversionError

MARKETO = "marketo"
DYNAMICS = "dynamics"


def intent_key(side: str, column: str) -> str:
    return f"{side}:{column}"


def intents(
    marketo_columns: Mapping[str, Canonical], dynamics_columns: Mapping[str, Canonical]
) -> dict[str, Canonical]:
    """The intent of a decision: the new baseline value of each column it writes, by the side it writes."""
    out = {intent_key(MARKETO, c): v for c, v in marketo_columns.items()}
    out |= {intent_key(DYNAMICS, c): v for c, v in dynamics_columns.items()}
    return out


def settled_baseline(
    baseline: Mapping[str, Canonical],
    intent: Mapping[str, Canonical],
    dynamics: Mapping[str, Canonical | ConversionError],
    marketo: Mapping[str, Canonical | ConversionError] | None,
) -> dict[str, Canonical]:
    """The baseline as it stands once the writes an earlier reconcile intended are accounted for."""
    settled = dict(baseline)
    for key, value in intent.items():
        side, _, column = key.partition(":")
        now = (marketo or {}).get(column) if side == MARKETO else dynamics.get(column)
        if not isinstance(now, ConversionError) and now == value and (side == DYNAMICS or marketo is not None):
            settled[column] = value
    return settled
