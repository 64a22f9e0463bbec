"""The whole pipeline under load, against both simulators with their real rate limits.

    python -m bench.pipeline [--changes 10000,100000] [--rate 50] [--latency-seconds 30] [--scale 2000]
    python -m bench.pipeline --changes 900 --scale 300 --latency-seconds 5      # a quick look

Runs the product in-process (webhooks -> queue -> reconcile -> writes) with the Functions host's batching from
host.json, Marketo's 100 calls / 20 s and 10-concurrent limits enforced by its simulator on the wall clock, and
the client's limiter at its configured share. Phases:

1. initial sync: seeded Dynamics records pushed to Marketo by the catch-up timer;
2. throughput, once per ``--changes`` size: that many mixed changes (Dynamics lead/contact edits, Marketo person
   edits, one-way account, opportunity and custom-entity edits) made as fast as the simulators take them; Marketo
   person calls per 300 person changes (target <= 2) and, per object type, Marketo calls per 300 of its one-way
   edits (target <= 1), beside the floor ceil(n/300); changes per second, and a check that nothing was lost;
3. one-way only: 3,000 new accounts pushed by the catch-up timer, then each edited once through its webhook;
   Marketo calls per 300 against the target;
4. latency: changes at ``--rate`` per second for ``--latency-seconds``; p50/p95 from the change to the write
   arriving in the other system.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

import function_app
from local.host import HOST_JSON, Batching
from local.stack import LocalStack
from shared.core.values import read_dynamics_record, read_marketo_record
from shared.pipeline.dataverse_side import dataverse_select

TOKEN = re.compile(rb"T\d{7}")
PERSON_PATHS = ("/rest/v1/leads.json",)
OBJECT_PATHS = {  # Marketo object calls by the Dynamics entity whose one-way edits they carry
    "account": "/rest/v1/companies",
    "opportunity": "/rest/v1/opportunities",
    "new_project": "/rest/v1/customobjects",
}
OBJECT_LABELS = {"account": "company", "opportunity": "opportunity", "new_project": "custom object"}


@dataclass
class Probe:
    """Sees every request to the simulators: first arrival of each change token, calls by class."""

    seen: dict[bytes, float] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> None:
        path = request.url.path
        now = time.perf_counter()
        kind = None
        if request.url.host.endswith("mktorest.com"):
            entity = next((e for e, prefix in OBJECT_PATHS.items() if path.startswith(prefix)), None)
            if path.startswith(PERSON_PATHS):
                kind = "marketo_person"
            elif entity is not None:
                kind = "marketo_object"
            elif "identity" not in path:
                kind = "marketo_other"
        elif "/api/data/" in path:
            kind = "dataverse"
        with self.lock:
            if kind:
                self.calls[kind] += 1
            if kind == "marketo_object":
                self.calls[f"marketo_object:{entity}"] += 1
                self.calls[
                    f"marketo_object:{entity}:{'write' if request.method == 'POST' and 'delete' not in path else 'other'}"
                ] += 1
            if request.method in ("POST", "PATCH") and kind in ("marketo_person", "marketo_object", "dataverse"):
                for token in TOKEN.findall(request.content):
                    self.seen.setdefault(token, now)


@dataclass
class Population:
    leads: list[str]
    contacts: list[str]
    accounts: list[str]
    opportunities: list[str]
    projects: list[str]


def seed(stack: LocalStack, scale: int) -> Population:
    dv = stack.tenants.dataverse  # type: ignore[union-attr]
    rnd = random.Random(7)

    def person(i: int, kind: str) -> dict[str, Any]:
        return {
            "firstname": f"First{i}",
            "lastname": f"{kind.title()}{i}",
            "emailaddress1": f"{kind}{i}@example.com",
            "jobtitle": rnd.choice(["Engineer", "Manager", "Director"]),
        }

    return Population(
        leads=[dv.seed("lead", person(i, "lead")) for i in range(scale)],
        contacts=[dv.seed("contact", person(i, "contact")) for i in range(scale // 2)],
        accounts=[dv.seed("account", {"name": f"Account {i}", "numberofemployees": i}) for i in range(scale // 4)],
        opportunities=[
            dv.seed("opportunity", {"name": f"Deal {i}", "estimatedvalue": 1000 + i}) for i in range(scale // 8)
        ],
        projects=[dv.seed("new_project", {"new_name": f"Project {i}"}) for i in range(scale // 8)],
    )


class Changes:
    """Makes one change of the mix, tagged with a unique token that the probe looks for."""

    def __init__(self, stack: LocalStack, population: Population) -> None:
        assert stack.tenants is not None
        self.stack = stack
        self.dv = stack.tenants.dataverse
        self.mk = stack.tenants.marketo
        self.admin = stack.tenants.admin_user_id
        self.population = population
        self.rnd = random.Random(11)
        self.count = 0
        self.kinds: Counter[str] = Counter()
        links = stack.services.store
        self.person_ids = [
            int(link.marketo_id)
            for entity, ids in (("lead", population.leads), ("contact", population.contacts))
            for link in links.get_links(entity, ids).values()
            if link.marketo_id
        ]

    def make(self) -> tuple[bytes, str]:
        self.count += 1
        token = f"T{self.count:07d}"
        roll = self.rnd.random()
        p = self.population
        if roll < 0.45:
            kind, entity, rid, column = "dynamics_person", "lead", self.rnd.choice(p.leads), "jobtitle"
        elif roll < 0.65:
            kind, entity, rid, column = "dynamics_person", "contact", self.rnd.choice(p.contacts), "jobtitle"
        elif roll < 0.85:
            kind = "marketo_person"
            self.kinds[kind] += 1
            self.mk.change_lead(self.rnd.choice(self.person_ids), title=token)
            return token.encode(), kind
        elif roll < 0.93:
            kind, entity, rid, column = "one_way", "account", self.rnd.choice(p.accounts), "name"
        elif roll < 0.97:
            kind, entity, rid, column = "one_way", "opportunity", self.rnd.choice(p.opportunities), "name"
        else:
            kind, entity, rid, column = "one_way", "new_project", self.rnd.choice(p.projects), "new_name"
        self.kinds[kind] += 1
        if kind == "one_way":
            self.kinds[f"one_way:{entity}"] += 1
        self.dv.user_update(entity, rid, {column: token}, user_id=self.admin)
        return token.encode(), kind


def measure(probe: Probe, stack: LocalStack, action: Callable[[], object]) -> tuple[float, Counter[str]]:
    """Seconds from the start of ``action`` until the queue drained, and the API calls made meanwhile."""
    before = Counter(probe.calls)
    started = time.perf_counter()
    action()
    stack.drain(timeout=1800)
    elapsed = time.perf_counter() - started
    calls = Counter(probe.calls)
    calls.subtract(before)
    return elapsed, calls


def per_300(label: str, calls: int, changes: int, target: int) -> tuple[str, str, str]:
    """A table row: calls per 300 changes beside the target and the floor ceil(n/300)."""
    return (
        label,
        f"{calls:,} = {calls * 300 / max(1, changes):.2f} per 300",
        f"target <= {target} per 300; floor {math.ceil(changes / 300)}",
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def lost(stack: LocalStack, population: Population) -> int:
    """Records whose mapped fields differ between Dynamics and Marketo after the queue drained. The first few are
    printed with their link, pending mark and sync errors, and the queue's dead letters and open marks are counted,
    so a mismatch can be told apart from work the safety nets (off in this benchmark) would still pick up."""
    mapping = stack.services.mapping
    dv = stack.services.dataverse
    store = stack.services.store
    mk = stack.tenants.marketo  # type: ignore[union-attr]
    mismatched: list[str] = []
    for entity, ids in (("lead", population.leads), ("contact", population.contacts)):
        m = mapping.get(entity)
        records = dv.read_by_ids(entity, ids, dataverse_select(m))
        links = store.get_links(entity, ids)
        for rid, record in records.items():
            link = links.get(rid)
            person = mk.lead(int(link.marketo_id)) if link and link.marketo_id else None
            if link is None or person is None:
                mismatched.append(f"{entity} {rid}: no linked Marketo person (link {link})")
                continue
            ours, theirs = read_dynamics_record(m.fields, record.values), read_marketo_record(m.fields, person)
            if ours != theirs:
                differ = {
                    k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)
                }
                mismatched.append(
                    f"{entity} {rid} (person {link.marketo_id}): dynamics/marketo {differ}; baseline "
                    f"{ {k: link.baseline.get(k) for k in differ} }; intent {link.intent}; synced {link.synced_at}"
                )
    if mismatched:
        marks = list(store.pending.all())
        queue = stack.broker.queue(stack.settings.changes_queue)
        print(
            f"out of step: {len(mismatched)}; open pending marks {len(marks)}; dead letters {len(queue.dead_letters)}"
        )
        for line in mismatched[:10]:
            print("  " + line)
        for mark in marks[:10]:
            print(f"  mark {mark}")
        for error in store.list_errors(limit=10):
            print(f"  error {error}")
    return len(mismatched)


def throughput(stack: LocalStack, probe: Probe, changes: Changes, n: int) -> list[tuple[str, str, str]]:
    """``n`` mixed changes made as fast as the simulators take them: calls per 300 per class beside the targets."""
    before = Counter(changes.kinds)
    made = 0.0

    def make_all() -> None:
        nonlocal made
        begun = time.perf_counter()
        for _ in range(n):
            changes.make()
        made = time.perf_counter() - begun

    elapsed, calls = measure(probe, stack, make_all)
    kinds = Counter(changes.kinds)
    kinds.subtract(before)
    person_changes = kinds["dynamics_person"] + kinds["marketo_person"]
    rows = [
        (f"throughput, {n:,} changes", f"{n:,} changes in {elapsed:.1f} s (made in {made:.1f} s)",
         f"{n / elapsed:,.0f} changes/s"),
        ("  person changes (both ways)", f"{person_changes:,}", ""),
        per_300("  Marketo person calls", calls["marketo_person"], person_changes, 2),
        ("  one-way changes", f"{kinds['one_way']:,}", ""),
    ]  # fmt: skip
    for entity, label in OBJECT_LABELS.items():
        edits = kinds[f"one_way:{entity}"]
        rows.append(per_300(f"  Marketo {label} calls ({edits:,} {entity} edits)",
                            calls[f"marketo_object:{entity}"], edits, 1))  # fmt: skip
        written, other = calls[f"marketo_object:{entity}:write"], calls[f"marketo_object:{entity}:other"]
        rows.append(("    of which upserts · other calls", f"{written:,} · {other:,}", "other: describe, reads"))
    rows += [
        ("  Marketo calls per 1,000", f"{(calls['marketo_person'] + calls['marketo_object']) * 1000 / n:.1f}",
         f"floor {1000 / 300:.1f} (ceil(n/300) per 1,000)"),
        ("  Dataverse calls per 1,000", f"{calls['dataverse'] * 1000 / n:.1f}", f"floor {1000 / 300:.1f}"),
        ("  records out of step afterwards", f"{lost(stack, changes.population)}", "must be 0"),
    ]  # fmt: skip
    return rows


def sizes(text: str) -> list[int]:
    try:
        found = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of counts, e.g. 10000,100000") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError("at least one count, each at least 1")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--changes",
        type=sizes,
        default=[10_000, 100_000],
        help="throughput runs, comma-separated (default 10000,100000; e.g. 900 for a quick look)",
    )
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--scale", type=int, default=2000, help="seeded leads (contacts half, accounts a quarter, ...)")
    args = parser.parse_args(argv)  # fmt: skip

    probe = Probe()
    stack = LocalStack(
        function_app.app,
        in_process=True,
        run_timers=False,
        retry_delay=0.5,
        batching=Batching.from_host_json(HOST_JSON),
        observe=probe,
    ).start()
    rows: list[tuple[str, str, str]] = []
    try:
        population = seed(stack, args.scale)
        records = sum(len(v) for v in vars(population).values())
        started = time.perf_counter()
        stack.host.fire("dataverse_catchup")
        stack.drain(timeout=900)
        initial = time.perf_counter() - started
        rows.append(("initial sync", f"{records:,} records in {initial:.1f} s", f"{records / initial:,.0f} records/s"))
        rows.append(("  Marketo calls", f"{probe.calls['marketo_person'] + probe.calls['marketo_object']:,}",
                     f"floor {math.ceil(records / 300)} (ceil(n/300))"))  # fmt: skip

        # --- throughput, at each size ---------------------------------------------------------------------------
        changes = Changes(stack, population)
        for n in args.changes:
            rows += throughput(stack, probe, changes, n)

        # --- one-way only: 3,000 distinct accounts, pushed by the catch-up timer, then each edited once -------
        dv = stack.tenants.dataverse  # type: ignore[union-attr]
        burst = min(3000, max(args.changes))
        fresh = [dv.seed("account", {"name": f"Burst account {i}"}) for i in range(burst)]
        elapsed, calls = measure(probe, stack, lambda: stack.host.fire("dataverse_catchup"))
        rows += [
            (
                "one-way push (catch-up)",
                f"{burst:,} new accounts in {elapsed:.1f} s",
                f"{burst / elapsed:,.0f} records/s",
            ),
            per_300("  Marketo company calls", calls["marketo_object"], burst, 1),
        ]

        def edit_each_once() -> None:
            for rid in fresh:
                changes.count += 1
                dv.user_update("account", rid, {"name": f"T{changes.count:07d}"}, user_id=changes.admin)

        elapsed, calls = measure(probe, stack, edit_each_once)
        rows += [
            ("one-way edits (webhooks)", f"{burst:,} accounts edited once in {elapsed:.1f} s", f"{burst / elapsed:,.0f} changes/s"),
            per_300("  Marketo company calls", calls["marketo_object"], burst, 1),
        ]  # fmt: skip

        # --- latency at a steady rate ----------------------------------------------------------------------------
        time.sleep(21)  # let Marketo's 20-second window (and the client's limiter) empty after the burst above
        sent: dict[bytes, float] = {}
        total = int(args.rate * args.latency_seconds)
        started = time.perf_counter()
        for i in range(total):
            due = started + i / args.rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            token, _ = changes.make()
            sent[token] = t0
        stack.drain(timeout=600)
        latencies = [probe.seen[t] - t0 for t, t0 in sent.items() if t in probe.seen]
        missing = len(sent) - len(latencies)
        rows += [
            ("latency", f"{total:,} changes at {args.rate:g}/s", ""),
            ("  p50 change -> write", f"{statistics.median(latencies):.2f} s", ""),
            ("  p95 change -> write", f"{percentile(latencies, 0.95):.2f} s", "target < 5 s"),
            ("  max", f"{max(latencies):.2f} s", ""),
            ("  superseded before written", f"{missing}", "a later change to the same record won"),
        ]
        mk = stack.tenants.marketo  # type: ignore[union-attr]
        rows.append(("  Marketo 606/615 answered", f"{sum(mk.rejections.values())}", "limiter keeps it at 0"))
    finally:
        stack.stop()
    print(f"machine: {os.cpu_count()} cores; Marketo limits enforced by the simulator on the wall clock")
    width = max(len(r[0]) for r in rows) + 2
    for name, value, floor in rows:
        print(f"{name:<{width}}{value:<48}{floor}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
