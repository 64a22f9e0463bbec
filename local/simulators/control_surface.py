"""What both simulators' control surfaces (``/_simulator``) have in common: reading, answering, dispatching.

Each simulator documents its own controls, with their bodies and answers, in its ``control.py``
(``local/simulators/dataverse/control.py``, ``local/simulators/marketo/control.py``); this module is the
machinery under them, so the two answer alike:

- a body is a JSON object whatever the Content-Type says (an empty body is ``{}``); anything else, and any bad
  field, answers 400 ``{"error": {"code": "bad-request", "message": ...}}`` naming the problem (:class:`BadInput`
  and the readers :func:`only`, :func:`whole`, :func:`seconds`, :func:`boolean`, :func:`text`);
- an unknown control answers 404 ``not-found`` listing the controls, a wrong method 405 ``method-not-allowed``
  with ``Allow``; ``DELETE /_simulator/faults/{id}`` is routed by prefix;
- the controls both serve alike are here, in :class:`ControlSurface`: ``GET /_simulator`` (name, about, the
  controls), ``GET``/``DELETE /_simulator/faults``, ``DELETE /_simulator/faults/{id}``, ``GET``/``DELETE
  /_simulator/outage`` and ``GET``/``POST /_simulator/webhooks`` (``enabled``, ``drop``, ``seed`` for the
  simulator's :class:`~local.simulators.webhook_switch.WebhookSwitch`). A simulator adds what is its own: how a
  fault and an outage are planned, its tokens, its counters (and Marketo its quota).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import httpx

from local.simulators.webhook_switch import WebhookSwitch

CONTROL_PREFIX = "/_simulator"
_JSON = {"content-type": "application/json"}

Action = Callable[[dict[str, Any], str], httpx.Response]
Routes = dict[str, Mapping[str, Action]]


class BadInput(Exception):
    """Raised while reading a control's body: answered 400, the message names the problem."""


def answer(status: int, body: object, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers={**_JSON, **(headers or {})})


def problem(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return answer(status, {"error": {"code": code, "message": message}}, headers)


def read_body(request: httpx.Request) -> dict[str, Any]:
    if not request.content.strip():
        return {}
    try:
        body = json.loads(request.content)
    except ValueError:
        raise BadInput("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


# --- reading a body: each helper names the field and what it must be ----------------------------------------


def only(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadInput(f"unknown field {unknown[0]!r}; expected {', '.join(sorted(allowed)) or 'no fields'}")


def whole(body: Mapping[str, Any], name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name} must be a whole number, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise BadInput(f"{name} must be {bound}, not {value}")
    return value


def seconds(body: Mapping[str, Any], name: str, *, zero: bool = False, one_message: bool = False) -> float | None:
    """A number of seconds, positive (or with ``zero`` non-negative). A value that is no number at all is told
    so apart ("must be a number of seconds"), unless ``one_message``: then every bad value hears the one rule."""
    value = body.get(name)
    if value is None:
        return None
    rule = f"{name} must be a {'non-negative' if zero else 'positive'} number of seconds, not {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(rule if one_message else f"{name} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise BadInput(rule)
    return float(value)


def boolean(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise BadInput(f"{name} must be true or false, not {value!r}")
    return value


def text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise BadInput(f"{name} must be a non-empty string, not {value!r}")
    return value


# --- the controls both simulators serve alike -----------------------------------------------------------------


class PlannedFault(Protocol):
    @property
    def gateway(self) -> bool: ...  # an outage

    def describe(self, now: float) -> dict[str, object]: ...


F = TypeVar("F", bound=PlannedFault)


class FaultPlan(Protocol[F]):
    def active(self) -> list[F]: ...

    def clear(self, *, gateway: bool | None = None) -> int: ...

    def remove(self, fault_id: int) -> bool: ...


class Simulated(Protocol[F]):
    """What the shared controls need of a simulator: its clock and its planned faults."""

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def faults(self) -> FaultPlan[F]: ...


class ControlSurface(ABC, Generic[F]):
    """Answers ``/_simulator`` requests: dispatch, and the controls both simulators serve alike (module docstring).

    A simulator's control passes its name, about text and list of controls (``GET /_simulator``), and its own
    routes (they come after ``/tokens/expire`` and before ``/webhooks`` in the list a 404 gives).
    """

    sim: Simulated[F]

    def __init__(
        self,
        sim: Simulated[F],
        name: str,
        about: str,
        controls: list[dict[str, object]],
        own: Mapping[str, Mapping[str, Action]],
    ) -> None:
        self.sim = sim
        self._index = {"name": name, "about": about, "controls": controls}
        self._routes: Routes = {
            "": {"GET": self.index},
            "/faults": {"GET": self.list_faults, "POST": self.add_fault, "DELETE": self.clear_faults},
            "/outage": {"GET": self.show_outage, "POST": self.start_outage, "DELETE": self.end_outage},
            "/tokens/expire": {"POST": self.expire_tokens},
            **own,
            "/webhooks": {"GET": self.show_webhooks, "POST": self.set_webhooks},
            "/calls": {"GET": self.show_calls},
        }

    # --- what each simulator supplies ---------------------------------------------------------------------------

    @abstractmethod
    def switch(self) -> WebhookSwitch:
        """The simulator's webhook switch."""

    @abstractmethod
    def describe_outage(self, outage: F, now: float) -> dict[str, object]: ...

    @abstractmethod
    def webhooks(self) -> dict[str, object]:
        """What ``GET /_simulator/webhooks`` answers: where the posts go, and the switch's state."""

    @abstractmethod
    def add_fault(self, body: dict[str, Any], rest: str) -> httpx.Response: ...

    @abstractmethod
    def start_outage(self, body: dict[str, Any], rest: str) -> httpx.Response: ...

    @abstractmethod
    def expire_tokens(self, body: dict[str, Any], rest: str) -> httpx.Response: ...

    @abstractmethod
    def show_calls(self, body: dict[str, Any], rest: str) -> httpx.Response: ...

    # --- dispatch ---------------------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        rest = request.url.path[len(CONTROL_PREFIX) :].rstrip("/")
        methods = {"DELETE": self.drop_fault} if rest.startswith("/faults/") else self._routes.get(rest)
        if methods is None:
            known = ", ".join(CONTROL_PREFIX + path for path in self._routes)
            return problem(404, "not-found", f"no control at {request.url.path}; the controls: {known}")
        action = methods.get(request.method)
        if action is None:
            allow = ", ".join(methods)
            return problem(
                405, "method-not-allowed", f"{request.method} is not served here; use {allow}", {"Allow": allow}
            )
        try:
            return action(read_body(request), rest)
        except BadInput as exc:
            return problem(400, "bad-request", str(exc))

    # --- the shared controls ----------------------------------------------------------------------------------

    def index(self, body: dict[str, Any], rest: str) -> httpx.Response:
        return answer(200, self._index)

    def list_faults(self, body: dict[str, Any], rest: str) -> httpx.Response:
        now = self.sim.clock()
        return answer(200, {"faults": [fault.describe(now) for fault in self.sim.faults.active()]})

    def clear_faults(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, set())
        return answer(200, {"cleared": self.sim.faults.clear()})

    def drop_fault(self, body: dict[str, Any], rest: str) -> httpx.Response:
        raw = rest.removeprefix("/faults/")
        if not raw.isdigit():
            raise BadInput(f"fault id must be a number, not {raw!r}")
        if not self.sim.faults.remove(int(raw)):
            return problem(404, "not-found", f"no planned fault {raw}")
        return answer(200, {"cleared": 1})

    def show_outage(self, body: dict[str, Any], rest: str) -> httpx.Response:
        now = self.sim.clock()
        running = [fault for fault in self.sim.faults.active() if fault.gateway]
        return answer(200, {"outage": self.describe_outage(running[0], now) if running else None})

    def end_outage(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, set())
        return answer(200, {"cleared": self.sim.faults.clear(gateway=True)})

    def show_webhooks(self, body: dict[str, Any], rest: str) -> httpx.Response:
        return answer(200, self.webhooks())

    def set_webhooks(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, {"enabled", "drop", "seed"})
        if not body:
            raise BadInput("give enabled, drop and/or seed")
        enabled = boolean(body, "enabled")
        drop = body.get("drop")
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, int | float) or not 0 <= drop <= 1):
            raise BadInput(f"drop must be a share between 0 and 1, not {drop!r}")
        seed = whole(body, "seed", minimum=0)
        self.switch().configure(enabled=enabled, drop=None if drop is None else float(drop), seed=seed)
        return answer(200, self.webhooks())
