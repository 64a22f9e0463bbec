"""What the rules of the sync say both systems must hold once the product is quiet, and the checks.

Every edit a scenario makes is noted per record and field, with ``activity``: how many batches and timer runs had
worked so far. Between two quiet points (a :class:`~local.chaos.plan.Quiesce`) a field's final value must be:

- no edit: the value both sides held at the last quiet point;
- edits on one side only: that side's last value (a change made in one system only flows to the other);
- the last edit on the side that wins collisions (Marketo for leads, Dynamics for contacts and one-way data): its
  value (a collision goes to it, and so does a plain later change);
- edits on both sides with no batch or timer run in between: a certain collision, so the winner's last value;
- otherwise (the loser edited last, with work in between): the winner's last value or the loser's, depending on
  whether the winner's edit had been synced before the loser's was made. Both sides must still agree.

On top: every live, syncing record is in step field by field; a filtered-out record's person holds no value written
in Dynamics while it was filtered out; a person deleted in Dynamics carries the deleted flag; a qualified lead's
person follows its contact; no e-mail has two persons; nothing is dead-lettered; nothing is pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from local.chaos.plan import Record, Side

WINNER: dict[str, Side] = {"lead": "marketo", "contact": "dynamics"}  # any other entity: Dynamics


@dataclass
class FieldLog:
    settled: Any = None
    known: bool = True  # False: nobody knows what it held at the last quiet point (a record just qualified)
    edits: list[tuple[Side, Any, int]] = field(default_factory=list)  # side, value, activity when made

    def expected(self, entity: str) -> set[Any] | None:
        """The values the rules allow, or None: any, as long as both sides agree."""
        if not self.edits:
            return {self.settled} if self.known else None
        last: dict[Side, Any] = {side: value for side, value, _ in self.edits}
        if len(last) == 1:
            return {self.edits[-1][1]}
        winner = WINNER.get(entity, "dynamics")
        if self.edits[-1][0] == winner or self.edits[0][2] == self.edits[-1][2]:
            return {last[winner]}
        return set(last.values())


@dataclass
class Tracked:
    record: Record
    dynamics_id: str
    email: str | None  # persons only
    fields: dict[str, FieldLog]
    state: str = "live"  # live, deleted, qualified
    syncs: bool = True  # new_synctomkto
    hidden: set[str] = field(default_factory=set)  # values written in Dynamics while filtered out
    contact_of: str | None = None  # a qualified lead: the label of its contact
    extra: dict[str, str] = field(default_factory=dict)  # fields added on the way: Dynamics column -> Marketo field

    @property
    def columns(self) -> dict[str, str]:
        return {**self.record.fields, **self.extra}


@dataclass
class Violation:
    rule: str
    record: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.record}: {self.detail}"


@dataclass
class Oracle:
    tracked: dict[str, Tracked] = field(default_factory=dict)
    emails: set[str] = field(default_factory=set)

    def add(self, record: Record, dynamics_id: str, email: str | None, values: dict[str, Any], *, known: bool) -> None:
        logs = {column: FieldLog(values.get(column), known) for column in record.fields}
        self.tracked[record.label] = Tracked(record, dynamics_id, email, logs)
        if email:
            self.emails.add(email)

    def edited(self, label: str, side: Side, column: str, value: str, activity: int) -> None:
        t = self.tracked[label]
        t.fields[column].edits.append((side, value, activity))
        if side == "dynamics" and not t.syncs:
            t.hidden.add(value)

    def live(self, label: str) -> Tracked | None:
        t = self.tracked.get(label)
        return t if t is not None and t.state == "live" else None


def compare(
    t: Tracked, row: dict[str, Any] | None, other: dict[str, Any] | None, persons: int
) -> tuple[list[Violation], dict[str, Any]]:
    """One live record against its rules; the values it settled at (Dynamics' own) to start the next round."""
    label, entity = t.record.label, t.record.entity
    out: list[Violation] = []
    if row is None:
        return [Violation("lost", label, f"the {entity} is gone from Dynamics")], {}
    settled = {column: row.get(column) for column in t.fields}
    if t.record.person and persons > 1:
        out.append(Violation("duplicate person", label, f"{persons} persons with {t.email}"))
    if not t.syncs:
        if other is not None:
            leaked = {c: other.get(m) for c, m in t.columns.items() if other.get(m) in t.hidden}
            if leaked:
                out.append(
                    Violation("sync filter", label, f"values written while filtered out reached Marketo: {leaked}")
                )
        return out, settled
    if other is None:
        return [*out, Violation("lost", label, f"no Marketo {'person' if t.record.person else 'record'}")], settled
    for column, marketo_field in t.columns.items():
        log = t.fields[column]
        mine, theirs = row.get(column), other.get(marketo_field)
        expected = log.expected(entity)
        if mine != theirs:
            out.append(
                Violation("out of step", label, f"{column}: Dynamics {mine!r}, Marketo {theirs!r}; {_story(log)}")
            )
        elif expected is not None and mine not in expected:
            rule = "collision" if len({s for s, _, _ in log.edits}) > 1 else "lost"
            out.append(Violation(rule, label, f"{column}: both hold {mine!r}, the rules allow {sorted(map(str, expected))}; {_story(log)}"))  # fmt: skip
    return out, settled


def _story(log: FieldLog) -> str:
    edits = ", ".join(f"{side[0].upper()}:{value}@{activity}" for side, value, activity in log.edits)
    return f"was {log.settled!r}, edits [{edits}]"
