"""The simulator's control surface: fault injection and inspection over plain HTTP, under ``/_simulator``.

It exists only in the simulator (Marketo has no such paths: every real one starts ``/rest``, ``/bulk`` or
``/identity``). It is served by the same handler as the API, so ``make run`` exposes it on the simulator's
loopback URL (``$MK``) and tests reach it through ``httpx.MockTransport`` or ``local.loopback.serve`` alike. It is
a loopback test tool: it asks for no token, and its calls are charged to no limit (rate, concurrency, quota) and
appear in no API statistic. Underneath it drives the simulator's own Python controls (``sim.faults``,
``sim.outage``, ``sim.expire_tokens``, ``sim.set_quota_used``, ``sim.delivery``): one mechanism, two doors.

Bodies are JSON objects (whatever the Content-Type says, so ``curl -d '{...}'`` works); answers are JSON. Bad
input answers 400 ``{"error": {"code": "bad-request", "message": ...}}`` naming the problem; an unknown control
404, a wrong method 405 (with ``Allow``). Times are seconds on the simulator's clock (the fake clock in tests).
The reading, answering and dispatching, and the controls both simulators serve alike, are
``local/simulators/control_surface.py`` (shared with the Dataverse simulator); what is Marketo's own is here.

====== ======================== ==================================================================================
GET    /_simulator              what this is, and every control with an example
GET    /_simulator/faults       the planned faults still to fire (outages included)
POST   /_simulator/faults       plan one: exactly one of ``code`` (a Marketo error code: "606", "615", "604",
                                "611", "1029", ...), ``status`` (an HTTP status: 502, 503, ...) or ``timeout: true``
                                (``delay``: real seconds to hold the answer; without it the simulator's
                                ``timeout_mode``), with ``times`` (default 1), ``path`` (exact, or a prefix ending
                                ``*``) and ``for_seconds`` (every matching call for that long; ``times`` then caps)
DELETE /_simulator/faults       drop every planned fault and any outage; ``/_simulator/faults/{id}`` drops one
GET    /_simulator/outage       the running outage, if any
POST   /_simulator/outage       ``{"seconds": 150, "status": 503}``: every call answers that status (default 503)
                                until the time passes: REST, bulk and identity alike, before any token check, as in
                                a maintenance window; a new outage replaces the running one. The webhook step
                                is left alone (switch it with ``/_simulator/webhooks``)
DELETE /_simulator/outage       end it now
POST   /_simulator/tokens/expire  every issued token expires (the next call with one gets 602)
POST   /_simulator/tokens/revoke  every issued token is forgotten (the next call with one gets 601)
GET    /_simulator/quota        today's quota: limit, used, remaining, when it resets
POST   /_simulator/quota        ``{"remaining": 0}`` or ``{"used": N}``, and/or ``{"limit": N}``
POST   /_simulator/seed         ``{"count": N, "values": {"email": "b{i}@example.com"}}``: N leads put in place at
                                once (consecutive ids, no activity, no webhook; ``local/simulators/seeding.py``)
GET    /_simulator/webhooks     the Call Webhook step's switches and counters
POST   /_simulator/webhooks     ``{"enabled": false}``; ``{"enabled": true, "drop": 0.3, "seed": 7}`` loses a share
                                of the calls at random (seeded: the same calls every run)
GET    /_simulator/calls        calls by endpoint, in flight, quota, rejections, fired faults, the recent errors
====== ======================== ==================================================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from local.simulators.control_surface import (
    CONTROL_PREFIX,
    BadInput,
    ControlSurface,
    answer,
    only,
    seconds,
    whole,
)
from local.simulators.marketo.faults import ENVELOPE_CODES, HTTP_CODES, TIMEOUT, Fault
from local.simulators.seeding import seed_marketo
from local.simulators.webhook_switch import WebhookSwitch

if TYPE_CHECKING:
    from local.simulators.marketo.simulator import MarketoSimulator

__all__ = ["CONTROLS", "CONTROL_PREFIX", "Control"]

_KNOWN_CODES = ", ".join(sorted(ENVELOPE_CODES, key=int))


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _seconds(body: dict[str, Any], name: str) -> float | None:
    return seconds(body, name, one_message=True)  # "must be a positive number of seconds", whatever is wrong


class Control(ControlSurface[Fault]):
    """Answers ``/_simulator`` requests for one simulator (see the module docstring)."""

    sim: MarketoSimulator

    def __init__(self, sim: MarketoSimulator) -> None:
        own = {
            "/tokens/revoke": {"POST": self.revoke_tokens},
            "/quota": {"GET": self.show_quota, "POST": self.set_quota},
            "/seed": {"POST": lambda body, rest: seed_marketo(self.sim, body)},
        }
        super().__init__(sim, "Marketo simulator control surface", ABOUT, CONTROLS, own)

    def switch(self) -> WebhookSwitch:
        return self.sim.delivery

    def describe_outage(self, outage: Fault, now: float) -> dict[str, object]:
        return _outage(outage, now)

    # --- the controls ------------------------------------------------------------------------------------------

    def add_fault(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, {"code", "status", "timeout", "delay", "times", "path", "for_seconds"})
        chosen = [name for name in ("code", "status", "timeout") if body.get(name) not in (None, False)]
        if len(chosen) != 1:
            raise BadInput("give exactly one of code (a Marketo error code), status (an HTTP status) or timeout")
        if chosen[0] == "code":
            code = str(body["code"])
            if isinstance(body["code"], bool) or code not in ENVELOPE_CODES:
                raise BadInput(f"code {body['code']!r} is not a Marketo error code the simulator knows: {_KNOWN_CODES}")
        elif chosen[0] == "status":
            status = whole(body, "status", minimum=400, maximum=599)
            code = str(status)
            if code not in HTTP_CODES:
                raise BadInput(f"status {status} is not an HTTP error status")
        else:
            if body["timeout"] is not True:
                raise BadInput(f"timeout must be true, not {body['timeout']!r}")
            code = TIMEOUT
        delay = _seconds(body, "delay")
        if delay is not None and code != TIMEOUT:
            raise BadInput("delay goes with timeout only")
        path = body.get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise BadInput(f"path must be a URL path starting with '/', not {path!r}")
        for_seconds = _seconds(body, "for_seconds")
        times = whole(body, "times", minimum=1)
        if times is None and for_seconds is None:
            times = 1
        fault = self.sim.faults.inject(code, times=times, path=path, for_seconds=for_seconds, delay=delay)
        return answer(201, {"fault": fault.describe(self.sim.clock())})

    def start_outage(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, {"seconds", "status"})
        length = _seconds(body, "seconds")
        if length is None:
            raise BadInput("seconds is required: how long the outage lasts")
        status = whole(body, "status", minimum=500, maximum=599) or 503
        if str(status) not in HTTP_CODES:
            raise BadInput(f"status {status} is not an HTTP server error status")
        outage = self.sim.outage(length, status)
        return answer(201, {"outage": _outage(outage, self.sim.clock())})

    def expire_tokens(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, set())
        return answer(200, {"expired": self.sim.expire_tokens(), "next_call_gets": "602"})

    def revoke_tokens(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, set())
        return answer(200, {"revoked": self.sim.revoke_tokens(), "next_call_gets": "601"})

    def show_quota(self, body: dict[str, Any], rest: str) -> httpx.Response:
        return answer(200, self._quota())

    def set_quota(self, body: dict[str, Any], rest: str) -> httpx.Response:
        only(body, {"remaining", "used", "limit"})
        if not body:
            raise BadInput("give remaining or used, and/or limit")
        if body.get("remaining") is not None and body.get("used") is not None:
            raise BadInput("give remaining or used, not both")
        limit = whole(body, "limit", minimum=0)
        used = whole(body, "used", minimum=0)
        remaining = whole(body, "remaining", minimum=0)
        quota = self.sim.limits.config.daily_quota if limit is None else limit
        if remaining is not None and remaining > quota:
            raise BadInput(f"remaining {remaining} is more than the daily quota of {quota}")
        if limit is not None:
            self.sim.set_daily_quota(limit)
        if used is not None or remaining is not None:
            self.sim.set_quota_used(used if used is not None else quota - (remaining or 0))
        return answer(200, self._quota())

    def _quota(self) -> dict[str, object]:
        now, limits = self.sim.clock(), self.sim.limits
        used, limit = limits.usage.used(now), limits.config.daily_quota
        return {
            "date": limits.usage.day(now).isoformat(),
            "limit": limit,
            "used": used,
            "remaining": max(limit - used, 0),
            "resets_at": iso(limits.usage.resets_at(now)),
            "time_zone": limits.config.quota_timezone,
            "reset_hour": limits.config.quota_reset_hour,
        }

    def webhooks(self) -> dict[str, object]:
        config = self.sim.webhook
        return {"url": None if config is None else config.url, **self.sim.delivery.state()}

    def show_calls(self, body: dict[str, Any], rest: str) -> httpx.Response:
        sim = self.sim
        calls = sim.call_counts()
        return answer(
            200,
            {
                "calls": calls,
                "total": sum(calls.values()),
                "in_flight": sim.limits.in_flight,
                "max_in_flight": sim.limits.max_in_flight,
                "quota": self._quota(),
                "rejections": dict(sorted(sim.rejections.items())),
                "faults_fired": dict(sorted(sim.faults.fired.items())),
                "faults_pending": sim.faults.pending,
                "recent_errors": list(sim.recent_errors),
                "webhooks": self.webhooks(),
            },
        )


def _outage(fault: Fault, now: float) -> dict[str, object]:
    left = 0.0 if fault.until is None else max(fault.until - now, 0.0)
    return {"id": fault.id, "status": int(fault.code), "seconds_left": round(left, 3), "ends_at": iso(now + left)}


ABOUT = (
    "Fault injection and inspection for the simulated Marketo instance. It exists only in the simulator, needs "
    "no token, and is charged to no rate limit or quota. Send JSON bodies; times are seconds on the simulator's clock."
)
CONTROLS: list[dict[str, object]] = [
    {"method": "GET", "path": "/_simulator", "does": "this list"},
    {"method": "GET", "path": "/_simulator/faults", "does": "the planned faults still to fire"},
    {
        "method": "POST",
        "path": "/_simulator/faults",
        "does": "plan a fault: one of code (Marketo error code), status (HTTP) or timeout; times, path, for_seconds",
        "examples": [
            {"code": "606", "times": 3},
            {"code": "611", "path": "/rest/v1/leads.json", "for_seconds": 60},
            {"status": 502, "times": 2},
            {"timeout": True, "delay": 35, "path": "/rest/v1/activities/leadchanges.json"},
        ],
    },
    {"method": "DELETE", "path": "/_simulator/faults", "does": "drop every planned fault and any outage"},
    {"method": "DELETE", "path": "/_simulator/faults/{id}", "does": "drop one planned fault"},
    {"method": "GET", "path": "/_simulator/outage", "does": "the running outage, if any"},
    {
        "method": "POST",
        "path": "/_simulator/outage",
        "does": "every call, identity included, answers status (default 503) for seconds",
        "examples": [{"seconds": 150, "status": 503}],
    },
    {"method": "DELETE", "path": "/_simulator/outage", "does": "end the outage now"},
    {"method": "POST", "path": "/_simulator/tokens/expire", "does": "every issued token expires: next call gets 602"},
    {"method": "POST", "path": "/_simulator/tokens/revoke", "does": "every issued token is forgotten: 601"},
    {"method": "GET", "path": "/_simulator/quota", "does": "today's daily quota: limit, used, remaining, reset"},
    {
        "method": "POST",
        "path": "/_simulator/quota",
        "does": "exhaust or set today's usage, or change the daily quota",
        "examples": [{"remaining": 0}, {"used": 49990}, {"limit": 10000}],
    },
    {
        "method": "POST",
        "path": "/_simulator/seed",
        "does": "put count leads in place from templates of {i} (no activity, no webhook): local/simulators/seeding.py",
        "examples": [{"count": 1000, "values": {"email": "b{i}@example.com", "firstName": "F{i}"}}],
    },
    {"method": "GET", "path": "/_simulator/webhooks", "does": "the Call Webhook step's switches and counters"},
    {
        "method": "POST",
        "path": "/_simulator/webhooks",
        "does": "stop the webhook calls, or lose a seeded random share of them",
        "examples": [{"enabled": False}, {"enabled": True, "drop": 0.3, "seed": 7}],
    },
    {"method": "GET", "path": "/_simulator/calls", "does": "calls by endpoint, in flight, quota, recent errors"},
]
