"""A scenario as values: a seed in, the records it starts with and a list of steps out. Nothing here runs anything.

The records are few on purpose (two leads, two contacts, an account, a custom-entity row, more created on the way):
collisions, crashes and faults then land on the same records again and again, which is where a sync breaks.
Values are unique per edit (``v17``), so a value seen anywhere names the edit it came from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Side = Literal["dynamics", "marketo"]
Service = Literal["dataverse", "marketo"]

PERSON_FIELDS = {"jobtitle": "title", "telephone1": "phone", "address1_city": "city"}
"""Two-way fields of both leads and contacts: Dynamics column -> Marketo field."""
ONE_WAY_FIELDS = {
    "account": {"name": "company", "address1_city": "billingCity"},
    "new_project": {"new_name": "projectName"},
}
PERSONS = ("lead", "contact")


@dataclass(frozen=True)
class Record:
    label: str  # "lead-0", "contact-1", "account-0", "new_project-0", "lead-2" (created on the way)
    entity: str

    @property
    def person(self) -> bool:
        return self.entity in PERSONS

    @property
    def fields(self) -> dict[str, str]:
        return PERSON_FIELDS if self.person else ONE_WAY_FIELDS[self.entity]


@dataclass(frozen=True)
class Edit:
    side: Side
    record: str
    field: str  # the Dynamics column
    value: str


@dataclass(frozen=True)
class Create:
    record: Record


@dataclass(frozen=True)
class Delete:
    record: str


@dataclass(frozen=True)
class Qualify:
    record: str  # a lead; its contact is called ``record + ">contact"``


@dataclass(frozen=True)
class Filter:
    record: str
    syncs: bool  # new_synctomkto


@dataclass(frozen=True)
class AddField:
    """A customiser adds a text column to the Dynamics table and fills it for every record; the admin then adds it
    as a synced field (its Marketo field made for it), and Quick Sync backfills it to Marketo."""

    entity: str  # lead or contact
    column: str
    marketo: str


@dataclass(frozen=True)
class Pause:
    paused: bool


@dataclass(frozen=True)
class Tick:
    seconds: float


@dataclass(frozen=True)
class Fault:
    """``kind``: outage (``seconds``), throttle / 5xx / 615 / timeout (the next ``times`` calls), tokens (expired
    now), quota (Marketo's daily quota spent, until its reset)."""

    kind: str
    service: Service
    seconds: float = 0.0
    times: int = 0


@dataclass(frozen=True)
class Webhooks:
    side: Side
    on: bool


@dataclass(frozen=True)
class Notifications:
    """The next ``count`` messages sent to the changes queue are duplicated, delayed, reordered or dropped."""

    kind: Literal["duplicate", "delay", "reorder", "drop"]
    count: int


@dataclass(frozen=True)
class Crash:
    """The host process dies at the next call of ``point`` (before it does its work, or just after), then a fresh
    one starts over the same store and tenants; the queue survives (``keep_queue``) or its messages are lost."""

    point: str
    after: bool
    keep_queue: bool


@dataclass(frozen=True)
class Quiesce:
    """Every fault ends; the product is left alone until nothing is pending; then every rule is checked."""


Step = (
    Edit
    | Create
    | Delete
    | Qualify
    | Filter
    | AddField
    | Pause
    | Tick
    | Fault
    | Webhooks
    | Notifications
    | Crash
    | Quiesce
)

CRASH_POINTS = (
    "reconcile",  # a batch received, nothing done yet
    "marketo-write",  # with after: the Marketo write made, the baseline not saved
    "dataverse-write",  # with after: the Dynamics write made, the baseline not saved
    "save-link",  # the baseline save
    "clear-mark",  # the reconcile done, the mark not cleared
    "enqueue",  # the marks written, the message not (or, after, not acknowledged)
    "checkpoint",  # a catch-up or feed page marked and sent, its checkpoint not moved
)


@dataclass
class Scenario:
    seed: int
    records: list[Record]
    steps: list[Step] = field(default_factory=list)


@dataclass
class _Draft:
    """What the generator must know to make steps that make sense: which records live, and how."""

    rng: random.Random
    live: dict[str, Record]
    filtered: set[str] = field(default_factory=set)
    created: int = 0
    values: int = 0
    added: list[AddField] = field(default_factory=list)  # fields added; edited once a quiet point has passed
    editable: list[AddField] = field(default_factory=list)

    def value(self) -> str:
        self.values += 1
        return f"v{self.values}"

    def persons(self) -> list[str]:
        return sorted(label for label, r in self.live.items() if r.person)


def generate(seed: int, *, steps: tuple[int, int] = (8, 18)) -> Scenario:
    rng = random.Random(seed)  # noqa: S311 - a replayable scenario, not a secret
    records = [
        Record("lead-0", "lead"),
        Record("lead-1", "lead"),
        Record("contact-0", "contact"),
        Record("contact-1", "contact"),
        Record("account-0", "account"),
        Record("new_project-0", "new_project"),
    ]
    draft = _Draft(rng, {r.label: r for r in records})
    scenario = Scenario(seed, records)
    for _ in range(rng.randint(*steps)):
        scenario.steps.extend(_step(draft))
        if rng.random() < 0.08 or (draft.added and rng.random() < 0.3):
            scenario.steps.append(Quiesce())
            draft.editable += draft.added  # its Quick Sync is done by now: its values may change on either side
            draft.added = []
    scenario.steps.append(Quiesce())
    return scenario


def _edit(draft: _Draft, label: str, side: Side | None = None) -> Edit:
    record = draft.live[label]
    two_way = record.person and label not in draft.filtered
    chosen: Side = "dynamics"
    if side is not None:
        chosen = side
    elif two_way:
        chosen = "marketo" if draft.rng.choice(("dynamics", "marketo")) == "marketo" else "dynamics"
    extra = [f.column for f in draft.editable if f.entity == record.entity]
    column = draft.rng.choice(sorted(record.fields) + extra)
    return Edit(chosen, label, column, draft.value())


def _step(draft: _Draft) -> list[Step]:
    rng = draft.rng
    kind = rng.choices(
        ["edit", "collide", "burst", "create", "delete", "qualify", "filter", "pause", "tick", "fault", "webhooks",
         "notifications", "crash", "add-field"],
        weights=[16, 8, 4, 2, 1, 1, 2, 2, 8, 9, 3, 4, 6, 1],
    )[0]  # fmt: skip
    persons = [p for p in draft.persons() if p not in draft.filtered]
    if kind == "edit" or (kind in {"collide", "burst", "delete", "qualify", "filter"} and not persons):
        return [_edit(draft, rng.choice(sorted(draft.live)))]
    if kind == "collide":  # the same field changed on both sides, nothing in between
        label = rng.choice(persons)
        first = _edit(draft, label, "dynamics")
        second = Edit("marketo", label, first.field, draft.value())
        return [first, second] if rng.random() < 0.5 else [second, first]
    if kind == "burst":  # many changes of one record at once (a flow step, an import)
        label = rng.choice(persons)
        return [_edit(draft, label) for _ in range(rng.randint(2, 5))]
    if kind == "create":
        entity = rng.choice(PERSONS)
        draft.created += 1
        record = Record(f"{entity}-{draft.created + 1}", entity)
        draft.live[record.label] = record
        return [Create(record)]
    if kind == "delete":
        label = rng.choice(persons)
        del draft.live[label]
        return [Delete(label)]
    if kind == "qualify":
        leads = [p for p in persons if draft.live[p].entity == "lead"]
        if not leads:
            return [Tick(30)]
        label = rng.choice(leads)
        del draft.live[label]
        draft.live[f"{label}>contact"] = Record(f"{label}>contact", "contact")
        return [Qualify(label)]
    if kind == "filter":
        flip_back = sorted(draft.filtered)
        if flip_back and rng.random() < 0.6:
            label = rng.choice(flip_back)
            draft.filtered.discard(label)
            return [Filter(label, True)]
        label = rng.choice(persons)
        draft.filtered.add(label)
        return [Filter(label, False)]
    if kind == "add-field":
        n = len(draft.added) + len(draft.editable) + 1
        added = AddField(rng.choice(PERSONS), f"new_chaos{n}", f"chaos{n}")
        draft.added.append(added)
        return [added]
    if kind == "pause":
        return [Pause(True), *[_edit(draft, rng.choice(sorted(draft.live))) for _ in range(2)], Pause(False)]
    if kind == "tick":
        return [Tick(rng.choice([1, 5, 20, 60, 300, 900]))]
    if kind == "fault":
        return [_fault(rng)]
    if kind == "webhooks":
        side: Side = rng.choice(("dynamics", "marketo"))
        return [Webhooks(side, False), *[_edit(draft, rng.choice(sorted(draft.live))) for _ in range(2)],
                Tick(rng.choice([30, 120, 600])), Webhooks(side, True)]  # fmt: skip
    if kind == "notifications":
        return [Notifications(rng.choice(("duplicate", "delay", "reorder", "drop")), rng.randint(1, 6))]
    point = rng.choice(CRASH_POINTS)
    return [Crash(point, after=rng.random() < 0.5, keep_queue=rng.random() < 0.6)]


def _fault(rng: random.Random) -> Fault:
    service: Service = rng.choice(("dataverse", "marketo"))
    kind = rng.choices(
        ["outage", "throttle", "5xx", "615", "timeout", "tokens", "quota"], weights=[5, 4, 3, 2, 2, 2, 1]
    )[0]
    if kind == "outage":
        seconds = rng.choice([5, 30, 150, 600, 3600, 2 * 3600, 6 * 3600])
        return Fault("outage", service, seconds=seconds)
    if kind in {"615", "quota"}:
        service = "marketo"
    return Fault(kind, service, times=rng.randint(1, 40))
