"""The scenarios are worth running: over the seeds ``make test`` plays, every kind of step, fault and crash point
occurs, and a seed always makes the same scenario."""

from __future__ import annotations

from collections import Counter

from local.chaos import plan

SEEDS = range(500)
QUOTA_SEED = 8  # its scenario spends Marketo's daily quota: the longest wait, until the reset


def _kinds() -> Counter[str]:
    seen: Counter[str] = Counter()
    for seed in SEEDS:
        for step in plan.generate(seed).steps:
            seen[type(step).__name__] += 1
            if isinstance(step, plan.Fault):
                seen[f"fault {step.service} {step.kind}"] += 1
            if isinstance(step, plan.Crash):
                seen[f"crash {step.point} {'after' if step.after else 'before'}"] += 1
            if isinstance(step, plan.Notifications):
                seen[f"notifications {step.kind}"] += 1
            if isinstance(step, plan.Edit):
                seen[f"edit {step.side}"] += 1
    return seen


def test_every_kind_of_step_fault_and_crash_occurs() -> None:
    seen = _kinds()
    expected = {"Edit", "Create", "Delete", "Qualify", "Filter", "Pause", "Tick", "Fault", "Webhooks", "Notifications",
                "Crash", "Quiesce", "edit dynamics", "edit marketo"}  # fmt: skip
    expected |= {
        f"fault {s} {k}" for s in ("dataverse", "marketo") for k in ("outage", "throttle", "5xx", "timeout", "tokens")
    }
    expected |= {"fault marketo 615", "fault marketo quota"}
    expected |= {f"crash {p} {w}" for p in plan.CRASH_POINTS for w in ("before", "after")}
    expected |= {f"notifications {k}" for k in ("duplicate", "delay", "reorder", "drop")}
    missing = expected - set(seen)
    assert not missing, f"never generated: {sorted(missing)}"
    assert seen["fault marketo outage"] + seen["fault dataverse outage"] >= 100


def test_outages_run_from_seconds_to_hours() -> None:
    lengths = {
        s.seconds
        for seed in SEEDS
        for s in plan.generate(seed).steps
        if isinstance(s, plan.Fault) and s.kind == "outage"
    }
    assert min(lengths) <= 5
    assert max(lengths) >= 6 * 3600


def test_a_seed_makes_the_same_scenario() -> None:
    assert plan.generate(42) == plan.generate(42)
    assert plan.generate(42) != plan.generate(43)


def test_a_seed_replays_the_same_run() -> None:
    """The clock, the backoff jitter and every id come from the seed: the same calls, the same verdict."""
    import logging

    from local.chaos.runner import run

    logging.disable(logging.WARNING)
    try:
        for seed in (3, 5, QUOTA_SEED):
            first, again = run(seed), run(seed)
            assert (first.calls, first.changes, first.convergence, first.restarts) == (
                again.calls,
                again.changes,
                again.convergence,
                again.restarts,
            )
            assert first.calls > 50
    finally:
        logging.disable(logging.NOTSET)
