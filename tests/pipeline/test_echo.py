"""A Marketo change that only repeats what the sync agreed, or is writing right now, is its own echo."""

from __future__ import annotations

from shared.core.intent import intents
from shared.core.mapping import SyncMapping, load_mapping
from shared.pipeline.echo import MarketoChange, classify_marketo_change
from shared.services import ROOT
from shared.store.model import Link
from shared.store.sqlite import sqlite_store

MAPPING: SyncMapping = load_mapping((ROOT / "config" / "mapping.json").read_text())
LEAD = "7d1a0f52-9a43-4e1c-9d2b-000000000001"


def _classify(link: Link, changes: list[tuple[str, object]]) -> MarketoChange:
    return classify_marketo_change(sqlite_store(), MAPPING, "42", changes, link=link)


def test_the_value_a_reconcile_is_writing_to_marketo_is_an_echo_before_its_baseline_is_saved() -> None:
    """Marketo's webhook for the sync's own write can arrive while the write is under way: the link then holds
    the value as its intent (saved before the write), not yet as its baseline."""
    writing = Link("lead", LEAD, "42", {"jobtitle": "Engineer"}, intent=intents({"jobtitle": "Director"}, {}))

    assert _classify(writing, [("title", "Director")]) is MarketoChange.ECHO
    assert _classify(writing, [("title", "Engineer")]) is MarketoChange.ECHO  # the baseline's, as before
    assert _classify(writing, [("title", "Manager")]) is MarketoChange.SYNC  # a Marketo user's own edit


def test_a_value_written_to_dynamics_is_no_echo_of_a_marketo_change() -> None:
    """Only what the sync writes to Marketo can echo from Marketo; a Dynamics-side intent proves nothing there."""
    to_dynamics = Link("lead", LEAD, "42", {"jobtitle": "Engineer"}, intent=intents({}, {"jobtitle": "Director"}))

    assert _classify(to_dynamics, [("title", "Director")]) is MarketoChange.SYNC
