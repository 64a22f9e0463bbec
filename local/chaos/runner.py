"""One scenario from its seed to its verdict: set up the records, play the steps, quiesce, check the rules.

:func:`run` plays one; :func:`run_many` plays a range of seeds and :func:`table` prints what the README quotes.
A scenario is deterministic in its seed: the steps, every random choice of the faults and the simulated clock.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from local.chaos import plan
from local.chaos.clock import SimClock
from local.chaos.faults import Crash, CrashPoint, NotificationFaults, end_faults, inject
from local.chaos.oracle import FieldLog, Oracle, Tracked, Violation, compare
from local.chaos.world import ChaosWorld, start_time
from local.simulators.dataverse.schema import Column
from shared.core.mapping import DELETED_FLAG_FIELD
from shared.pipeline.quicksync.status import quick_sync_status

STABLE_MINUTES = 4  # nothing queued, pending or held for this long, every catch-up timer running meanwhile
QUIET_MINUTES = 5
log = logging.getLogger("local.chaos")  # after convergence: no write to either system in this long (no echo loop)
QUIESCE_LIMIT_HOURS = 30  # a spent daily quota waits for its reset: up to a day


@dataclass
class Outcome:
    seed: int
    steps: int = 0
    changes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    dead_lettered: int = 0
    convergence: float = 0.0  # simulated seconds from the end of the last fault to quiet, the slowest quiesce
    restarts: int = 0
    open_errors: int = 0
    calls: int = 0  # every API call both simulators answered: a replay of the seed makes the same ones
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, *rules: str) -> int:
        return sum(1 for v in self.violations if v.rule in rules)


class Run:
    def __init__(self, scenario: plan.Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed * 7919 + 1)  # noqa: S311 - a replayable scenario, not a secret
        random.seed(scenario.seed)  # the clients' backoff jitter too: the same seed, the same waits
        ids = random.Random(scenario.seed)  # noqa: S311 - and the same record, message and token ids
        self._uuid4 = uuid.uuid4
        uuid.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)
        self.clock = SimClock(start_time())
        self.world = ChaosWorld(self.clock)
        self.oracle = Oracle()
        self.crash = CrashPoint()
        self.notes = NotificationFaults(self.clock, self.rng, self.world.stack.settings.changes_queue)
        self.notes.install(self.world.broker)
        self.outcome = Outcome(scenario.seed, steps=len(scenario.steps))
        self.paused = False
        self.added: dict[str, dict[str, str]] = {}  # fields added on the way, by entity: column -> Marketo field

    # --- the scenario ------------------------------------------------------------------------------------------

    def play(self) -> Outcome:
        started = time.perf_counter()
        try:
            for record in self.scenario.records:
                self._guarded(lambda r=record: self._create(r))
            self._quiesce(first=True)
            for step in self.scenario.steps:
                self._guarded(lambda s=step: self._apply(s))
        except Exception as exc:  # a failure of the product (or of this runner) is a verdict, not a crash
            detail = "".join(traceback.format_exception_only(exc)).strip()
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.outcome.violations.append(
                Violation("runner error", "-", f"{detail} at {where.filename}:{where.lineno}")
            )
        finally:
            uuid.uuid4 = self._uuid4
            self.crash.disarm()
            self.outcome.restarts = self.world.restarts
            self.outcome.calls = sum(self.world.mk.calls.values()) + sum(self.world.dv.calls.values())
            self.outcome.wall = time.perf_counter() - started
            self.world.stop()
        return self.outcome

    def _guarded(self, action: Any) -> None:
        """A step; if the process dies in it, a fresh one takes over (what the step did before it died stays)."""
        try:
            action()
        except Crash:
            fired = self.crash.last
            self.world.crashed(keep_queue=fired.keep_queue if fired else True)
            self.notes.install(self.world.broker)

    def _apply(self, step: plan.Step) -> None:
        w = self.world
        if isinstance(step, plan.Edit):
            self._edit(step)
        elif isinstance(step, plan.Create):
            self._create(step.record)
        elif isinstance(step, plan.Delete):
            t = self.oracle.live(step.record)
            if t is None:
                return  # never came to be (its lead could not be qualified)
            t.state = "deleted"
            self.outcome.changes += 1
            w.delete(t.record.entity, t.dynamics_id)
        elif isinstance(step, plan.Qualify):
            self._qualify(step.record)
        elif isinstance(step, plan.Filter):
            t = self.oracle.live(step.record)
            if t is None:
                return
            t.syncs = step.syncs
            if not step.syncs:
                t.hidden = set()
            self.outcome.changes += 1
            w.update(t.record.entity, t.dynamics_id, new_synctomkto=step.syncs)
        elif isinstance(step, plan.AddField):
            self._add_field(step)
        elif isinstance(step, plan.Pause):
            self.paused = step.paused
            answer = w.call("POST", "sync/pause" if step.paused else "sync/resume")
            if answer.status_code != 200:
                raise AssertionError(f"pause/resume answered {answer.status_code}: {answer.text[:200]}")
        elif isinstance(step, plan.Tick):
            self.notes.release(w.broker)
            w.run_for(step.seconds)
        elif isinstance(step, plan.Fault):
            self.outcome.faults[f"{step.service} {step.kind}"] += 1
            inject(step, w.dv, w.mk, self.rng)
        elif isinstance(step, plan.Webhooks):
            self.outcome.faults[f"{step.side} webhooks off"] += 0 if step.on else 1
            self._webhooks(step.side, on=step.on)
        elif isinstance(step, plan.Notifications):
            self.outcome.faults[f"notifications {step.kind}"] += step.count
            self.notes.plan(step)
        elif isinstance(step, plan.Crash):
            self.outcome.faults[f"crash at {step.point}{' (after)' if step.after else ''}"] += 1
            self.crash.arm(step)
        else:
            self._quiesce()

    # --- what people do in both systems -----------------------------------------------------------------------

    def _create(self, record: plan.Record) -> None:
        columns = [*record.fields, *self.added.get(record.entity, {})]
        values: dict[str, Any] = {column: f"{record.label}.{column}" for column in columns}
        email = None
        if record.person:
            email = f"{record.label}@chaos.example"
            values |= {"firstname": "Chaos", "lastname": record.label, "emailaddress1": email}
        self.oracle.add(record, "", email, {}, known=True)
        t = self.oracle.tracked[record.label]
        for column, marketo_field in self.added.get(record.entity, {}).items():
            t.extra[column] = marketo_field
            t.fields[column] = FieldLog()
        for column in columns:
            t.fields[column].edits.append(("dynamics", values[column], self.world.activity))
        self.outcome.changes += 1
        try:
            t.dynamics_id = self.world.create(record.entity, **values)
        finally:  # a crash in the create's webhook: the row is there all the same
            if not t.dynamics_id:
                t.dynamics_id = self._find(record.entity, values)

    def _find(self, entity: str, values: dict[str, Any]) -> str:
        key = f"{entity}id"
        rows = [r for r in self.world.dv.rows(entity) if all(r.get(c) == v for c, v in values.items())]
        return str(rows[0][key]) if rows else ""

    def _edit(self, step: plan.Edit) -> None:
        t = self.oracle.live(step.record)
        if t is None or step.field not in t.columns:
            return  # gone, never made, or a field whose adding was refused
        if step.side == "dynamics":
            self.oracle.edited(step.record, "dynamics", step.field, step.value, self.world.activity)
            self.outcome.changes += 1
            self.world.update(t.record.entity, t.dynamics_id, **{step.field: step.value})
            return
        persons = self.world.persons(t.email or "")
        if len(persons) != 1 or not t.syncs:
            return  # no person yet (its record not synced so far): nothing to edit in Marketo
        self.oracle.edited(step.record, "marketo", step.field, step.value, self.world.activity)
        self.outcome.changes += 1
        self.world.mk.change_lead(int(persons[0]["id"]), **{t.columns[step.field]: step.value})

    def _qualify(self, label: str) -> None:
        """A salesperson qualifies the lead. Its contact starts from the lead's values where it copied them (no change
        to carry) and from a Dynamics change where it did not; the person's changes in flight come along."""
        t = self.oracle.live(label)
        if t is None:
            return
        try:
            self.world.admin_app().qualify_lead(t.dynamics_id)
        except Exception:  # Dynamics failed the salesperson too (perhaps after qualifying: see below)
            log.info("qualifying %s failed", label, exc_info=True)
        finally:  # a crash in the qualification's webhooks: qualified all the same
            self._qualified(t, label)

    def _qualified(self, t: Tracked, label: str) -> None:
        made = [c for c in self.world.dv.rows("contact") if c.get("_originatingleadid_value") == t.dynamics_id]
        if not made:
            return  # the lead stays a lead
        contact_id = str(made[0]["contactid"])
        t.state, t.contact_of = "qualified", f"{label}>contact"
        self.outcome.changes += 1
        record = plan.Record(t.contact_of, "contact")
        self.oracle.add(record, contact_id, t.email, {}, known=False)
        contact = self.world.dv.get("contact", contact_id) or {}
        contact_log = self.oracle.tracked[record.label]
        for column, marketo_field in self.added.get("contact", {}).items():
            contact_log.extra[column] = marketo_field
            contact_log.fields[column] = FieldLog(known=False)
        for column, mine in contact_log.fields.items():
            lead, value = t.fields.get(column), contact.get(column)
            if lead is not None and lead.known and t.syncs:
                mine.settled, mine.known = lead.settled, True
                mine.edits = [e for e in lead.edits if e[0] == "marketo"]  # the person's changes in flight come along
                if value == lead.settled:
                    continue  # copied from the lead, whose person held it already: nothing changed
            mine.edits.append(("dynamics", value, self.world.activity))  # a Dynamics change, made by qualifying

    def _add_field(self, step: plan.AddField) -> None:
        """The column and its values first (a customiser's work, no sync involved), then the field through the
        admin API; Quick Sync backfills it. Refused (a service down), the column stays unmapped."""
        w = self.world
        table = w.dv.tables[step.entity]
        table.columns[step.column] = Column(step.column, "String", max_length=80, custom=True)
        filled = {}
        for t in self.oracle.tracked.values():
            if t.record.entity == step.entity and t.state == "live":
                filled[t.record.label] = f"{t.record.label}.{step.column}"
                w.update(step.entity, t.dynamics_id, **{step.column: filled[t.record.label]})
        body = {"dynamics": step.column, "marketo": step.marketo, "create_marketo_field": True}
        answer = w.call("POST", f"mapping/{step.entity}/fields", json=body)
        self.outcome.faults["fields added"] += 1
        if answer.status_code != 202:
            log.info("adding %s.%s refused: %s", step.entity, step.column, answer.text[:200])
            return
        self.added.setdefault(step.entity, {})[step.column] = step.marketo
        for label, value in filled.items():
            t = self.oracle.tracked[label]
            t.extra[step.column] = step.marketo
            t.fields[step.column] = FieldLog(edits=[("dynamics", value, w.activity)])
            if not t.syncs:
                t.hidden.add(value)

    def _webhooks(self, side: str, *, on: bool) -> None:
        w = self.world
        if side == "dynamics":
            w.dv.sender = w.deliver_dataverse if on else (lambda url, headers, body: 0)
        else:
            w.mk.delivery.configure(enabled=on)

    # --- quiet, then the checks --------------------------------------------------------------------------------

    def _quiesce(self, *, first: bool = False) -> None:
        w = self.world
        self.crash.disarm()
        self.notes.end(w.broker)
        end_faults(w.dv, w.mk)
        self._webhooks("dynamics", on=True)
        self._webhooks("marketo", on=True)
        if self.paused:
            self._apply(plan.Pause(False))
        began = self.clock.time()
        limit = began + QUIESCE_LIMIT_HOURS * 3600
        quiet_since: float | None = None
        while quiet_since is None or self.clock.time() - quiet_since < STABLE_MINUTES * 60:
            if self.clock.time() > limit:
                self.outcome.violations.append(Violation("never quiet", "-", self._why_not_quiet()))
                return
            if quiet_since is None:
                self._skip_idle()
            w.run_for(60)
            if not self._quiet():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = self.clock.time()
        self._check()
        if first:
            return
        self.outcome.convergence = max(self.outcome.convergence, quiet_since - began)
        before = w.writes()
        w.run_for(QUIET_MINUTES * 60)
        after = w.writes()
        if after != before:
            detail = ", ".join(f"{k}: {before.get(k, 0)}->{n}" for k, n in after.items() if before.get(k) != n)
            self.outcome.violations.append(Violation("echo loop", "-", f"not quiet after convergence: {detail}"))

    def _quiet(self) -> bool:
        svc = self.world.stack.services
        if self.world.queued() or svc.pending.all():
            return False
        if any(job["state"] in {"queued", "running"} for job in quick_sync_status(svc.store)):
            return False
        return not any(c.is_open for c in svc.circuits.all().values())

    def _why_not_quiet(self) -> str:
        svc = self.world.stack.services
        marks = [f"{m.key} due {m.next_due_at:%H:%M} ({m.last_error})" for m in svc.pending.all()[:5]]
        circuits = [f"{c.service} open since {c.open_since}" for c in svc.circuits.all().values() if c.is_open]
        return f"queued {self.world.queued()}, marks {marks}, circuits {circuits}"

    def _skip_idle(self) -> None:
        """Nothing to work on until a mark falls due or a probe: move the clock to a minute before it."""
        if self.world.queued():
            return
        svc = self.world.stack.services
        times = [m.next_due_at.timestamp() for m in svc.pending.all()]
        times += [c.next_probe_at.timestamp() for c in svc.circuits.all().values() if c.is_open and c.next_probe_at]
        if times and min(times) - 60 > self.clock.time():
            self.clock.advance_to(min(times) - 60)

    def _check(self) -> None:
        w = self.world
        out = self.outcome.violations
        for t in list(self.oracle.tracked.values()):
            persons = w.persons(t.email) if t.email else []
            if t.state == "deleted":
                link_field = "dynamicsLeadId" if t.record.entity == "lead" else "dynamicsContactId"
                linked = [p for p in persons if p.get(link_field) == t.dynamics_id]
                if any(p.get(DELETED_FLAG_FIELD) is not True for p in linked):
                    out.append(Violation("delete", t.record.label, "the person is not flagged deleted in Dynamics"))
                continue
            if t.state == "qualified":
                contact = self.oracle.tracked[t.contact_of or ""]
                if contact.state != "live" or not contact.syncs:
                    continue  # deleted (the delete rule covers it) or kept out by the sync filter: no person follows
                if len(persons) != 1 or persons[0].get("dynamicsContactId") != contact.dynamics_id:
                    out.append(
                        Violation("qualify", t.record.label, f"the person did not follow its contact: {persons}")
                    )
                continue
            row = w.dv.get(t.record.entity, t.dynamics_id)
            other = persons[0] if persons else self._marketo_record(t)
            found, settled = compare(t, row, other, len(persons))
            out.extend(found)
            for column, log in t.fields.items():
                log.settled, log.known, log.edits = settled.get(column), t.syncs, []
        self.outcome.dead_lettered = w.dead_lettered()
        if self.outcome.dead_lettered:
            out.append(Violation("dead-lettered", "-", f"{self.outcome.dead_lettered} message(s) dead-lettered"))
        self.outcome.open_errors = sum(1 for e in w.stack.services.store.list_errors() if e.status.value == "open")

    def _marketo_record(self, t: Tracked) -> dict[str, Any] | None:
        entity, mk = t.record.entity, self.world.mk
        if entity == "account":
            records = mk.objects["companies"].records.values()
            return next((r for r in records if r.get("externalCompanyId") == t.dynamics_id), None)
        if entity == "new_project":
            records = mk.custom_objects["project_c"].records.values()
            return next((r for r in records if r.get("dynamicsId") == t.dynamics_id), None)
        return None


def run(seed: int) -> Outcome:
    return Run(plan.generate(seed)).play()


def run_many(seeds: range) -> list[Outcome]:
    return [run(seed) for seed in seeds]
