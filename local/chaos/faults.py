"""Faults a scenario injects: HTTP faults through the simulators' own fault plans, notification faults on the way
into the changes queue, and crashes at the step boundaries of the product.

A crash is :class:`Crash`, a ``BaseException``: no ``except Exception`` of the product catches it, so it leaves
whatever was running exactly where a killed process would stop (a batch's messages stay locked, a mark written but
its message not sent, a Marketo write made but its baseline not saved). The runner catches it and restarts.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from local.broker import LocalBroker
from local.chaos.clock import SimClock
from local.chaos.plan import Crash as CrashStep
from local.chaos.plan import Fault, Notifications
from local.simulators.dataverse.simulator import DataverseSimulator, InjectedFault
from local.simulators.marketo.simulator import MarketoSimulator
from shared.dataverse.writes import DataverseWrites
from shared.marketo.client import MarketoClient
from shared.pipeline.pending import PendingWork
from shared.pipeline.reconcile.reconciler import Reconciler
from shared.queueing import OutgoingMessage
from shared.store.base import StateStore


class Crash(BaseException):
    """The host process dies here."""


CRASH_TARGETS: dict[str, list[tuple[type, str]]] = {
    "reconcile": [(Reconciler, "run")],
    "marketo-write": [
        (MarketoClient, name)
        for name in ("sync_leads", "sync_companies", "sync_custom_objects", "sync_opportunities", "sync_sales_persons")
    ],
    "dataverse-write": [(DataverseWrites, "update"), (DataverseWrites, "execute_batch"), (DataverseWrites, "create")],
    "save-link": [(StateStore, "save_link")],
    "clear-mark": [(PendingWork, "clear")],
    "enqueue": [(LocalBroker, "send")],
    "checkpoint": [(StateStore, "save_checkpoint")],
}


class CrashPoint:
    """Armed by a scenario's crash step: the next call of one of the point's methods dies (before its work, or
    just after it). Disarmed once it fires, or when the scenario quiesces."""

    def __init__(self) -> None:
        self._patched: list[tuple[type, str, Any]] = []
        self.armed: CrashStep | None = None
        self.last: CrashStep | None = None  # the crash that fired last
        self.fired: Counter[str] = Counter()

    def arm(self, step: CrashStep) -> None:
        self.disarm()
        self.armed = step
        for owner, name in CRASH_TARGETS[step.point]:
            original = owner.__dict__[name]
            self._patched.append((owner, name, original))
            setattr(owner, name, self._dying(original, step))

    def _dying(self, original: Callable[..., Any], step: CrashStep) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.armed is not step:
                return original(*args, **kwargs)
            self.disarm()
            self.last = step
            self.fired[f"{step.point}{' (after)' if step.after else ''}"] += 1
            if step.after:
                original(*args, **kwargs)
            raise Crash(step.point)

        return call

    def disarm(self) -> None:
        self.armed = None
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched.clear()


@dataclass
class NotificationFaults:
    """Between the product and the changes queue: the next ``count`` messages are duplicated (delivered twice, as
    Service Bus may), delayed, reordered (held, then sent in reverse) or dropped (a broker that never got them)."""

    clock: SimClock
    rng: random.Random
    queue: str
    kind: str | None = None
    left: int = 0
    held: list[OutgoingMessage] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)

    def install(self, broker: LocalBroker) -> None:
        def send(queue: str, messages: Sequence[OutgoingMessage]) -> None:
            self._send(broker, queue, messages)

        broker.send = send  # type: ignore[method-assign]

    def plan(self, step: Notifications) -> None:
        self.kind, self.left = step.kind, step.count

    def _send(self, broker: LocalBroker, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        through: list[OutgoingMessage] = []
        for message in messages:
            if queue != self.queue or self.left <= 0 or self.kind is None:
                through.append(message)
                continue
            self.left -= 1
            self.done[self.kind] += 1
            if self.kind == "duplicate":
                through += [message, replace(message, message_id=f"{message.message_id}:again")]
            elif self.kind == "delay":
                later = self.clock.now() + timedelta(seconds=self.rng.choice([2, 30, 120, 900]))
                through.append(replace(message, scheduled_at=later))
            elif self.kind == "reorder":
                self.held.append(message)
            # drop: the broker never gets it
        if through:
            LocalBroker.send(broker, queue, through)  # looked up each time: a crash point may stand in for it

    def release(self, broker: LocalBroker) -> None:
        """The reordered messages go out, newest first."""
        held, self.held = self.held, []
        if held:
            LocalBroker.send(broker, self.queue, list(reversed(held)))

    def end(self, broker: LocalBroker) -> None:
        self.kind, self.left = None, 0
        self.release(broker)


def inject(fault: Fault, dv: DataverseSimulator, mk: MarketoSimulator, rng: random.Random) -> None:
    """An HTTP fault of either simulator, through its own fault plan (the same one its control surface drives)."""
    if fault.kind == "outage":
        (dv if fault.service == "dataverse" else mk).outage(fault.seconds, status=rng.choice([503, 502, 500]))
    elif fault.kind == "tokens":
        (dv if fault.service == "dataverse" else mk).expire_tokens()
    elif fault.kind == "quota":
        mk.set_quota_used(mk.limits.config.daily_quota)
    elif fault.service == "marketo":
        code = {"throttle": "606", "5xx": rng.choice(["500", "502", "503"]), "615": "615", "timeout": "timeout"}
        mk.faults.inject(code[fault.kind], times=fault.times)
    elif fault.kind == "timeout":
        dv.inject(InjectedFault(kind="timeout", delay=0.0, times=fault.times))
    elif fault.kind == "throttle":
        dv.inject(InjectedFault(status=429, code="0x80072322", retry_after=rng.choice([1, 5, 30]), times=fault.times))
    else:
        dv.inject(InjectedFault(status=rng.choice([500, 502, 503]), times=fault.times))


def end_faults(dv: DataverseSimulator, mk: MarketoSimulator) -> None:
    """Every planned fault ends. A spent daily quota is not a planned fault: it comes back at its reset."""
    dv.faults.clear()
    mk.faults.clear()
