"""The process's Dataverse gate (shared/dataverse/concurrency.py): one cap for both lanes, and a backfill's
requests leave ``keep`` places of it to live requests."""

from __future__ import annotations

import threading
from contextlib import ExitStack

from shared.dataverse.concurrency import ConcurrencyGate


def _enter_in_thread(gate: ConcurrencyGate, keep: int, release: threading.Event) -> threading.Event:
    """A request that takes a place (``entered`` set) and holds it until ``release``."""
    entered = threading.Event()

    def run() -> None:
        with gate.slot(keep):
            entered.set()
            release.wait(30)

    threading.Thread(target=run, daemon=True).start()
    return entered


def test_a_backfill_leaves_its_reserve_to_live_requests_and_both_stay_under_the_cap() -> None:
    gate = ConcurrencyGate(4)
    with ExitStack() as held:
        held.enter_context(gate.slot(keep=2))
        held.enter_context(gate.slot(keep=2))  # the backfill's two: 4 - 2 kept
        release = threading.Event()
        third_backfill = _enter_in_thread(gate, 2, release)
        assert not third_backfill.wait(0.2)  # waits: the last two places are the live reserve's
        held.enter_context(gate.slot())
        held.enter_context(gate.slot())  # live takes them at once
        assert gate.in_flight == 4
        fifth_live = _enter_in_thread(gate, 0, release)
        assert not fifth_live.wait(0.2)  # the cap holds for live requests too
        held.close()  # the four leave: both waiters fit (one live, one backfill)
        assert fifth_live.wait(10)
        assert third_backfill.wait(10)
        assert gate.peak == 4
        release.set()


def test_a_backfill_keeps_one_place_of_its_own_when_the_reserve_is_the_whole_cap() -> None:
    gate = ConcurrencyGate(2)
    with gate.slot(keep=5):  # never starved: one place at least
        assert gate.in_flight == 1
