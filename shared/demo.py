"""A scripted walk through the decision core, printed as it decides (``make run`` until the local host lands).

Each scene states a situation from sync-rules.md, runs the real :func:`shared.core.policy.decide` on it with the
shipped mapping (``config/mapping.json``), and prints what the sync would write where, and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.core.entities import Side
from shared.core.mapping import SyncMapping, load_mapping
from shared.core.policy import Action, Decision, RecordState, Trigger, decide
from shared.core.values import Canonical, ConversionError, read_dynamics_record, read_marketo_record

MAPPING_FILE = Path(__file__).resolve().parent.parent / "config" / "mapping.json"


def _scene(
    mapping: SyncMapping,
    entity: str,
    title: str,
    *,
    baseline: Mapping[str, Any] | None,
    dynamics: Mapping[str, Any] | None,
    marketo: Mapping[str, Any] | None,
    sync_filter: bool | None = None,
    trigger: Trigger | None = None,
) -> Decision:
    m = mapping.get(entity)
    base: dict[str, Canonical] = {}
    if baseline is not None:
        read = read_dynamics_record(m.fields, baseline).items()
        base = {k: v for k, v in read if not isinstance(v, ConversionError)}
    state = RecordState(
        dynamics=None if dynamics is None else read_dynamics_record(m.fields, dynamics),
        marketo=None if marketo is None else read_marketo_record(m.fields, marketo),
        baseline=base,
        sync_filter=sync_filter,
        trigger=trigger,
    )
    decision = decide(m, state)
    print(f"\n== {title}")
    print(f"   {entity}: {decision.action.value} ({decision.reason})")
    for f in decision.fields:
        if f.action is Action.NONE:
            continue
        arrow = {"write_marketo": "-> Marketo ", "write_dynamics": "-> Dynamics", "error": "!! error   "}[f.action]
        winner = f" [collision: {f.winner.value} wins]" if f.winner else ""
        detail = f.error.reason if f.error else f"{f.wire!r}"
        print(f"   {arrow} {f.field:<28} {detail}  ({f.reason.value}){winner}")
    return decision


def main() -> None:
    mapping = load_mapping(MAPPING_FILE.read_text())
    print(f"Decision core demo, mapping {MAPPING_FILE.name}: " + ", ".join(e.entity for e in mapping.entities))
    lead = {"firstname": "Ada", "jobtitle": "Engineer", "leadqualitycode": 2, "telephone1": "+44 20 7946 0000"}
    lead_mkto = {"firstName": "Ada", "title": "Engineer", "leadRating": "Warm", "phone": "+44 20 7946 0000"}
    _scene(
        mapping, "lead", "A lead's job title changed in Dynamics only",
        baseline=lead, dynamics={**lead, "jobtitle": "CTO"}, marketo=lead_mkto,
    )  # fmt: skip
    _scene(
        mapping, "lead", "The lead's rating changed in Marketo only",
        baseline=lead, dynamics=lead, marketo={**lead_mkto, "leadRating": "Hot"},
    )  # fmt: skip
    _scene(
        mapping, "lead", "Collision on a lead: both systems changed the title (Marketo wins)",
        baseline=lead, dynamics={**lead, "jobtitle": "CTO"}, marketo={**lead_mkto, "title": "Chief Scientist"},
    )  # fmt: skip
    _scene(
        mapping, "contact", "Collision on a contact: both systems changed the title (Dynamics wins)",
        baseline=lead, dynamics={**lead, "jobtitle": "CTO"}, marketo={**lead_mkto, "title": "Chief Scientist"},
    )  # fmt: skip
    account = {"name": "Analytical Engines", "numberofemployees": 240}
    _scene(
        mapping, "account", "A Marketo edit of a one-way account field is overwritten",
        baseline=account, dynamics=account, marketo={"company": "Analytical Engines", "numberOfEmployees": 999},
    )  # fmt: skip
    _scene(
        mapping, "lead", "The sync's own write comes back as a Marketo change: an echo, nothing to do",
        baseline={**lead, "jobtitle": "CTO"}, dynamics={**lead, "jobtitle": "CTO"},
        marketo={**lead_mkto, "title": "CTO"}, trigger=Trigger(Side.MARKETO, by_sync=True),
    )  # fmt: skip
    _scene(
        mapping, "lead", "new_synctomkto = No keeps a record out of the sync",
        baseline=lead, dynamics={**lead, "jobtitle": "CTO"}, marketo=lead_mkto, sync_filter=False,
    )  # fmt: skip
    _scene(mapping, "contact", "A contact deleted in Dynamics", baseline=lead, dynamics=None, marketo=lead_mkto)
    _scene(
        mapping, "lead", "A new Dynamics lead with no Marketo person yet",
        baseline=None, dynamics={**lead, "emailaddress1": "ada@example.com", "new_interests": "100000001"},
        marketo=None,
    )  # fmt: skip
    _scene(
        mapping, "lead", "A Marketo rating with no matching Dynamics option is a field error, the rest syncs",
        baseline=lead, dynamics={**lead, "jobtitle": "CTO"}, marketo={**lead_mkto, "leadRating": "Lukewarm"},
    )  # fmt: skip
    print("\nThe full local host (HTTP endpoints, queues, timers, simulators) is being built; see README.")


if __name__ == "__main__":
    main()
