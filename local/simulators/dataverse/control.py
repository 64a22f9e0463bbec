"""The simulator's control surface: fault injection and inspection over plain HTTP, under ``/_simulator``.

It exists only in the simulator (Dataverse has no such paths: the Web API is under ``/api/data/v9.2``, the
simulated Entra under ``/{tenant}/...``). It is served by the same handler as the API, so ``make run`` and
``make sims`` expose it on the simulator's loopback URL (``$DV``), and tests reach it through
``httpx.MockTransport`` or ``local.loopback.serve`` alike. It is a loopback test tool: it asks for no token and
its calls are charged to no service protection limit and appear in no call count. Underneath it drives the
simulator's own Python controls (``sim.faults`` / ``sim.inject``, ``sim.outage``, ``sim.expire_tokens``,
``sim.plugins.switch``): one mechanism, two doors.

Bodies are JSON objects (whatever the Content-Type says, so ``curl -d '{...}'`` works); answers are JSON. Bad
input answers 400 ``{"error": {"code": "bad-request", "message": ...}}`` naming the problem; an unknown control
404, a wrong method 405 (with ``Allow``). Times are seconds on the simulator's clock (the fake clock in tests).
The reading, answering and dispatching, and the controls both simulators serve alike, are
``local/simulators/control_surface.py`` (shared with the Marketo simulator); what is Dataverse's own is here.

====== ======================== ==================================================================================
GET    /_simulator              what this is, and every control with an example
GET    /_simulator/faults       the planned faults still to fire (an outage included)
POST   /_simulator/faults       plan one: exactly one of ``status`` (an HTTP error status: 429, 503, 500, ...)
                                or ``timeout: true`` (``delay``: real seconds to hold the answer, default 0.3,
                                then the client sees a read timeout); with ``code`` (the Dataverse error code,
                                e.g. ``0x80072322``; 429 defaults to it, others to ``0x80040216``), ``message``,
                                ``retry_after`` (seconds, sent as ``Retry-After``; a 429 gets 5 unless given),
                                ``times`` (default 1), ``path`` (a piece of the URL the call must contain, e.g.
                                ``/contacts`` or ``$batch``), ``method`` and ``for_seconds`` (every matching call
                                for that long; ``times`` then caps)
DELETE /_simulator/faults       drop every planned fault and any outage; ``/_simulator/faults/{id}`` drops one
GET    /_simulator/outage       the running outage, if any
POST   /_simulator/outage       ``{"seconds": 150, "status": 503}``: every Web API call answers that status
                                (default 503) until the time passes, before any token check, as in a maintenance
                                window. The simulated Entra token endpoint stays up (Entra is another service)
                                unless ``"authority": true``: then token requests get Entra's 503
                                ``temporarily_unavailable`` too. A new outage replaces the running one. The
                                plug-in steps are left alone (switch them with ``/_simulator/webhooks``)
DELETE /_simulator/outage       end it now
POST   /_simulator/tokens/expire  every issued token stops working (the next call with one gets 401)
POST   /_simulator/seed         ``{"entity": "contact", "count": N, "id": "...{i:012x}", "values": {...}}``: N rows
                                put in place at once from templates (``local/simulators/seeding.py``)
POST   /_simulator/edit         ``{"entity": "contact", "id": "...", "values": {...}}``: a person's edit in the
                                app (its plug-in steps post to the product)
GET    /_simulator/webhooks     the plug-in steps' switches and counters
POST   /_simulator/webhooks     ``{"enabled": false}``: the steps post nothing to the product; ``{"enabled": true,
                                "drop": 0.3, "seed": 7}`` loses a share of the posts at random (seeded: the same
                                posts every run). What is not posted is caught up by change tracking
GET    /_simulator/calls        calls by endpoint, throttled (429) answers by code, fired faults, webhook
                                deliveries sent / failed / dropped / switched off
====== ======================== ==================================================================================
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

from local.simulators.control_surface import (
    CONTROL_PREFIX,
    BadInput,
    ControlSurface,
    answer,
    boolean,
    only,
    seconds,
    text,
    whole,
)
from local.simulators.dataverse.faults import InjectedFault
from local.simulators.seeding import edit_dataverse, seed_dataverse
from local.simulators.webhook_switch import WebhookSwitch

if TYPE_CHECKING:
    from local.simulators.dataverse.simulator import DataverseSimulator

__all__ = ["CONTROLS", "CONTROL_PREFIX", "Control"]

_CODE = re.compile(r"0x[0-9a-fA-F]{8}")

THROTTLE_MESSAGES = {
    "0x80072322": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    "0x80072321": "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over "
    "time window of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and "
    "try again later.",
    "0x80072326": "Number of concurrent requests exceeded the limit of 52.",
}
DEFAULT_CODE = "0x80040216"
DEFAULT_MESSAGE = "An unexpected error occurred."
THROTTLE_RETRY_AFTER = 5.0


class Control(ControlSurface[InjectedFault]):
    """Answers ``/_simulator`` requests for one simulated organisation (see the module docstring)."""

    sim: DataverseSimulator

    def __init__(self, sim: DataverseSimulator) -> None:
        own = {
            "/seed": {"POST": lambda body, rest: seed_dataverse(self.sim, body)},
            "/edit": {"POST": lambda body, rest: edit_dataverse(self.sim, body)},
        }
        super().__init__(sim, "Dataverse simulator control surface", ABOUT, CONTROLS, own)

    def switch(self) -> WebhookSwitch:
        return self.sim.plugins.switch

    def describe_outage(self, outage: InjectedFault, now: float) -> dict[str, object]:
        return _outage(outage, now)

    # --- the controls ------------------------------------------------------------------------------------------

    def add_fault(self, body: dict[str, Any], rest: str) -> httpx.Response:
        allowed = {"status", "timeout", "code", "message", "retry_after", "delay", "times", "path", "method"}
        only(body, allowed | {"for_seconds"})
        chosen = [name for name in ("status", "timeout") if body.get(name) not in (None, False)]
        if len(chosen) != 1:
            raise BadInput("give exactly one of status (an HTTP error status, e.g. 429 or 503) or timeout: true")
        code = text(body, "code")
        if code is not None and not _CODE.fullmatch(code):
            raise BadInput(f"code must be a Dataverse error code like 0x80072322, not {code!r}")
        message = text(body, "message")
        retry_after = seconds(body, "retry_after", zero=True)
        delay = seconds(body, "delay", zero=True)
        fault = InjectedFault()
        if chosen[0] == "status":
            status = whole(body, "status", minimum=400, maximum=599)
            assert status is not None
            fault.status = status
            fault.code = code or ("0x80072322" if status == 429 else DEFAULT_CODE)
            fault.message = message or THROTTLE_MESSAGES.get(fault.code, DEFAULT_MESSAGE)
            fault.retry_after = THROTTLE_RETRY_AFTER if retry_after is None and status == 429 else retry_after
            if delay is not None:
                raise BadInput("delay goes with timeout only")
        else:
            if body["timeout"] is not True:
                raise BadInput(f"timeout must be true, not {body['timeout']!r}")
            if code is not None or message is not None or retry_after is not None:
                raise BadInput("code, message and retry_after go with status only: a timeout has no answer")
            fault.kind = "timeout"
            if delay is not None:
                fault.delay = delay
        path = text(body, "path")
        method = text(body, "method")
        if method is not None and method.upper() not in {"GET", "POST", "PATCH", "PUT", "DELETE"}:
            raise BadInput(f"method must be GET, POST, PATCH, PUT or DELETE, not {method!r}")
        for_seconds = seconds(body, "for_seconds")
        times = whole(body, "times", minimum=1)
        fault.path_contains = path
        fault.method = method.upper() if method else None
        fault.times = 1 if times is None and for_seconds is None else times
        fault.until = None if for_seconds is None else self.sim.clock() + for_seconds
        self.sim.inject(fault)
        return answer(201, {"fault": fault.describe(self.sim.clock())})

    def start_outage(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, {"seconds", "status", "authority"})
        length = seconds(body, "seconds")
        if length is None:
            raise BadInput("seconds is required: how long the outage lasts")
        status = whole(body, "status", minimum=500, maximum=599) or 503
        outage = self.sim.outage(length, status, authority=bool(boolean(body, "authority")))
        return answer(201, {"outage": _outage(outage, self.sim.clock())})

    def expire_tokens(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, set())
        return answer(200, {"expired": self.sim.expire_tokens(), "next_call_gets": 401})

    def webhooks(self) -> dict[str, object]:
        sim = self.sim
        with sim.org.lock:
            endpoints = sorted({str(row.get("url")) for row in sim.org.state.rows.get("serviceendpoint", {}).values()})
            steps = len(sim.org.state.rows.get("sdkmessageprocessingstep", {}))
        return {"endpoints": endpoints or sim.webhook_urls, "steps": steps, **sim.plugins.switch.state()}

    def show_calls(self, body: dict[str, Any], rest: str) -> httpx.Response:
        sim = self.sim
        with sim.org.lock:
            calls = dict(sorted(sim.calls.items()))
            throttled = dict(sorted(sim.throttled.items()))
        return answer(
            200,
            {
                "calls": calls,
                "total": sum(calls.values()),
                "throttled": {"total": sum(throttled.values()), "by_code": throttled},
                "peak_in_flight": sim.peak_in_flight,
                "tokens_issued": sim.authority.issued,
                "faults_fired": dict(sorted(sim.faults.fired.items())),
                "faults_pending": sim.faults.pending,
                "webhooks": self.webhooks(),
            },
        )


def _outage(fault: InjectedFault, now: float) -> dict[str, object]:
    left = 0.0 if fault.until is None else max(fault.until - now, 0.0)
    return {"id": fault.id, "status": fault.status, "seconds_left": round(left, 3), "authority": fault.authority}


ABOUT = (
    "Fault injection and inspection for the simulated Dataverse organisation. It exists only in the simulator, "
    "needs no token, and is charged to no service protection limit. Send JSON bodies; times are seconds on the "
    "simulator's clock."
)
CONTROLS: list[dict[str, object]] = [
    {"method": "GET", "path": "/_simulator", "does": "this list"},
    {"method": "GET", "path": "/_simulator/faults", "does": "the planned faults still to fire"},
    {
        "method": "POST",
        "path": "/_simulator/faults",
        "does": "plan a fault: status (with code, message, retry_after) or timeout; times, path, method, for_seconds",
        "examples": [
            {"status": 429, "code": "0x80072322", "retry_after": 30, "times": 3},
            {"status": 503, "times": 2},
            {"status": 500, "path": "$batch", "for_seconds": 60},
            {"timeout": True, "delay": 35, "path": "/contacts"},
        ],
    },
    {"method": "DELETE", "path": "/_simulator/faults", "does": "drop every planned fault and any outage"},
    {"method": "DELETE", "path": "/_simulator/faults/{id}", "does": "drop one planned fault"},
    {"method": "GET", "path": "/_simulator/outage", "does": "the running outage, if any"},
    {
        "method": "POST",
        "path": "/_simulator/outage",
        "does": "every Web API call answers status (default 503) for seconds; authority: true takes Entra down too",
        "examples": [{"seconds": 150, "status": 503}, {"seconds": 60, "authority": True}],
    },
    {"method": "DELETE", "path": "/_simulator/outage", "does": "end the outage now"},
    {"method": "POST", "path": "/_simulator/tokens/expire", "does": "every issued token stops working: next call 401"},
    {
        "method": "POST",
        "path": "/_simulator/seed",
        "does": "put count rows in place from templates of {i}, columns added first: local/simulators/seeding.py",
        "examples": [
            {
                "entity": "contact",
                "count": 1000,
                "id": "00000000-0000-4000-8000-{i:012x}",
                "values": {"lastname": "L{i}"},
            }
        ],
    },
    {
        "method": "POST",
        "path": "/_simulator/edit",
        "does": "a person edits a record in the app: its plug-in steps post to the product",
        "examples": [
            {"entity": "contact", "id": "00000000-0000-4000-8000-000000000001", "values": {"jobtitle": "CTO"}}
        ],
    },
    {"method": "GET", "path": "/_simulator/webhooks", "does": "the plug-in steps' switches and counters"},
    {
        "method": "POST",
        "path": "/_simulator/webhooks",
        "does": "stop the plug-in steps' posts to the product, or lose a seeded random share of them",
        "examples": [{"enabled": False}, {"enabled": True, "drop": 0.3, "seed": 7}],
    },
    {"method": "GET", "path": "/_simulator/calls", "does": "calls by endpoint, throttled count, webhook deliveries"},
]
