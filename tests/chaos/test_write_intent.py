"""Found by chaos seed 111, replayed step by step on the chaos world (one thread, one simulated clock): the sync
wrote v2 to Marketo and the host died before the baseline was saved; the user then set v4 in Dynamics before the
redelivered message was worked. Without the write intent (shared/core/intent.py), Marketo's v2 looked like a
Marketo edit since the last sync, a lead's collision goes to Marketo, and the user's v4 was overwritten."""

from __future__ import annotations

import pytest

from local.chaos.clock import SimClock
from local.chaos.faults import Crash, CrashPoint
from local.chaos.plan import Crash as CrashStep
from local.chaos.world import ChaosWorld, start_time


@pytest.mark.parametrize("point", ["save-link", "marketo-write"])
def test_a_newer_dynamics_edit_after_a_crash_between_the_write_and_the_baseline_wins(point: str) -> None:
    world = ChaosWorld(SimClock(start_time()))
    crash = CrashPoint()
    try:
        lead = world.create("lead", firstname="Ida", lastname="Intent", emailaddress1="ida@example.com", jobtitle="v1")
        world.run_for(120)
        (person,) = world.persons("ida@example.com")
        crash.arm(CrashStep(point, after=point == "marketo-write", keep_queue=True))
        world.update("lead", lead, jobtitle="v2")
        with pytest.raises(Crash):
            world.run_for(30)
        crash.disarm()
        assert world.mk.lead(int(person["id"]))["title"] == "v2"  # type: ignore[index]  # written before it died
        world.crashed(keep_queue=True)  # the message is redelivered once its lock expires
        world.update("lead", lead, jobtitle="v4")  # ...but the user is quicker
        world.run_for(600)
        assert world.dv.get("lead", lead)["jobtitle"] == "v4"  # type: ignore[index]
        assert world.mk.lead(int(person["id"]))["title"] == "v4"  # type: ignore[index]
        assert world.stack.services.pending.all() == []
    finally:
        crash.disarm()
        world.stop()
