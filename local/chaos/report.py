"""The table of a chaos run (the README quotes one), and the replay line of every scenario that failed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from local.chaos.runner import Outcome

LOST = ("lost", "out of step", "never quiet")
RULES = ("collision", "sync filter", "delete", "qualify", "echo loop", "runner error")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def table(outcomes: Sequence[Outcome], wall: float) -> str:
    faults: Counter[str] = Counter()
    for o in outcomes:
        faults.update(o.faults)
    quota = [o for o in outcomes if o.faults.get("marketo quota")]
    others = [o for o in outcomes if not o.faults.get("marketo quota")]
    slowest = max(others, key=lambda o: o.convergence, default=None)
    slowest_quota = max(quota, key=lambda o: o.convergence, default=None)
    failed = [o for o in outcomes if not o.ok]
    rows = [
        ("scenarios", f"{len(outcomes)} ({len(outcomes) - len(failed)} converged, {len(failed)} failed)"),
        ("steps played", str(sum(o.steps for o in outcomes))),
        ("changes made", str(sum(o.changes for o in outcomes))),
        ("faults injected", str(sum(faults.values()))),
        *((f"  {kind}", str(n)) for kind, n in sorted(faults.items()) if n),
        ("host restarts (crashes)", str(sum(o.restarts for o in outcomes))),
        ("changes lost", str(sum(o.count(*LOST) for o in outcomes))),
        ("rules broken (collision, filter, delete, qualify, echo)", str(sum(o.count(*RULES) for o in outcomes))),
        ("duplicate persons", str(sum(o.count("duplicate person") for o in outcomes))),
        ("dead-lettered", str(sum(o.dead_lettered for o in outcomes))),
        ("sync errors left open", str(sum(o.open_errors for o in outcomes))),
        (
            "slowest convergence after the last fault",
            f"{_minutes(slowest.convergence)} simulated (seed {slowest.seed})" if slowest else "-",
        ),
        (
            "  with Marketo's daily quota spent (waits for its reset)",
            f"{_minutes(slowest_quota.convergence)} simulated (seed {slowest_quota.seed})" if slowest_quota else "-",
        ),
        ("wall time", f"{wall:.0f} s ({wall / max(len(outcomes), 1):.2f} s a scenario)"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"| {'-' * width} | ----- |"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def failures(outcomes: Sequence[Outcome]) -> str:
    lines = []
    for o in outcomes:
        if o.ok:
            continue
        lines.append(f"seed {o.seed} failed; replay: make chaos SEED={o.seed}")
        lines += [f"  {v}" for v in o.violations[:10]]
    return "\n".join(lines)
