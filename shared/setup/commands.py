"""The register and unregister flows: read what exists, decide, act, report (each step a value a test can check)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

from shared.core.mapping import SyncMapping
from shared.dataverse.client import DataverseClient
from shared.setup.registration import Action, Kind, Op, desired, plan, summary, teardown
from shared.setup.registry import Registry


@dataclass
class Outcome:
    actions: list[Action]
    applied: bool
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return summary(self.actions)

    @property
    def changed(self) -> bool:
        return any(a.op is not Op.UNCHANGED for a in self.actions)


def register(
    client: DataverseClient,
    mapping: SyncMapping,
    *,
    url: str,
    header: str,
    secret: SecretStr,
    dry_run: bool = False,
    on_done: Callable[[Action], None] | None = None,
) -> Outcome:
    if not secret.get_secret_value():
        raise ValueError("DATAVERSE_WEBHOOK_SECRET is empty: the webhook would accept anyone; set it first")
    registry = Registry(client)
    actions = plan(desired(mapping, url=url, header=header, secret=secret), registry.existing())
    if not dry_run:
        registry.apply(actions, on_done=on_done)
    return Outcome(actions, applied=not dry_run)


def unregister(
    client: DataverseClient, *, dry_run: bool = False, on_done: Callable[[Action], None] | None = None
) -> Outcome:
    registry = Registry(client)
    existing = registry.existing()
    actions = teardown(existing)
    notes = []
    for endpoint in existing.endpoints:
        foreign = registry.foreign_steps_on(endpoint.id)
        if foreign:  # steps someone else hung on our endpoint: deleting it would break (or cascade to) theirs
            actions = [a for a in actions if not (a.kind is Kind.ENDPOINT and a.id == endpoint.id)]
            notes.append(
                f"kept the service endpoint: {len(foreign)} step(s) not created by this tool use it "
                f"({', '.join(foreign[:3])}); remove them first, then run unregister again"
            )
    if not dry_run:
        registry.apply(actions, on_done=on_done)
    return Outcome(actions, applied=not dry_run, notes=notes)
