"""Write intents, as a table: which intended writes turn into the baseline (the written side holds the value)."""

from __future__ import annotations

import pytest

from shared.core.intent import intents, settled_baseline

BASE = {"jobtitle": "old", "telephone1": "old"}


@pytest.mark.parametrize(
    ("intent", "dynamics", "marketo", "settled"),
    [
        ({}, {"jobtitle": "v4"}, {"jobtitle": "v2"}, BASE),  # nothing intended: the baseline as saved
        # the sync wrote v2 to Marketo and died before saving it; Dynamics moved on to v4 since
        (intents({"jobtitle": "v2"}, {}), {"jobtitle": "v4"}, {"jobtitle": "v2"}, {**BASE, "jobtitle": "v2"}),
        # the write to Marketo never happened: the old baseline stands (Dynamics' v2 proves nothing)
        (intents({"jobtitle": "v2"}, {}), {"jobtitle": "v2"}, {"jobtitle": "old"}, BASE),
        # a Marketo change written to Dynamics before the crash; Marketo moved on since
        (intents({}, {"telephone1": "m1"}), {"telephone1": "m1"}, {"telephone1": "m2"}, {**BASE, "telephone1": "m1"}),
        (intents({}, {"telephone1": "m1"}), {"telephone1": "old"}, {"telephone1": "m1"}, BASE),
        (intents({"jobtitle": "v2"}, {}), {"jobtitle": "v2"}, None, BASE),  # no person to look at
    ],
)
def test_an_intended_write_counts_once_its_side_holds_the_value(
    intent: dict[str, object],
    dynamics: dict[str, object],
    marketo: dict[str, object] | None,
    settled: dict[str, object],
) -> None:
    assert settled_baseline(BASE, intent, dynamics, marketo) == settled  # type: ignore[arg-type]
