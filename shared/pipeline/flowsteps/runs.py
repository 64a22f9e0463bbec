"""Accepting, running and sweeping flow-step runs: the store's run record first, the queue only says "run it now".

1. **Accept** (the webhook): authenticate (the Marketo webhook's shared secret, constant time), check the body,
   record the run (:class:`shared.store.flow_runs.FlowRuns`, due again a grace period later), then send a nudge on
   ``FLOW_STEPS_QUEUE``. A nudge that cannot be sent is only logged: the run is recorded, the sweep sends it. The
   same run delivered again finds its record and is not run twice (its answer says so).
2. **Run** (the queue function): read the run; finished already, nothing to do. Otherwise run the step; an
   outcome finishes it ``done``; a refusal (no such person, no owner, not linked...) finishes it ``failed`` with a
   sync error; a service that is down or busy leaves it open, due after a backoff; anything else raises (the
   message is redelivered, and the run stays open for the sweep).
3. **Sweep** (with the pending sweep's schedule): every open run that is due is sent again and pushed a grace
   period out; one re-sent ``max_attempts`` times is finished ``failed`` with a ``flow-step-gave-up`` sync error.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.core.json_text import JsonTextError, load_json
from shared.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    NotPossible,
    QuotaExhausted,
    RetryLater,
    SkipRecord,
    SyncError,
    TooLarge,
    Unauthenticated,
)
from shared.pipeline.flowsteps.request import parse_body, request_key, step_named, stored_request
from shared.pipeline.flowsteps.steps import Ports, run_step
from shared.pipeline.sync_errors import sync_error
from shared.pipeline.webhooks import MAX_BODY_BYTES, WebhookCall
from shared.queueing import OutgoingMessage, QueueSender
from shared.settings import Settings
from shared.store.base import StateStore
from shared.store.flow_runs import FlowRun, FlowRuns, RunState
from shared.store.model import RESOLVED_BY_SYNC, TO_DYNAMICS

log = logging.getLogger(__name__)

BACKOFF_BASE = 30.0  # seconds before a run that met an outage is due again, doubling per attempt
BACKOFF_MAX = 900.0


@dataclass(frozen=True, slots=True)
class Accepted:
    key: str
    step: str
    state: RunState
    duplicate: bool

    def view(self) -> dict[str, str]:
        status = ("duplicate" if self.duplicate else "queued") if self.state is RunState.QUEUED else self.state.value
        return {"status": status, "step": self.step, "requestKey": self.key}


def runs_of(store: StateStore) -> FlowRuns:
    return FlowRuns(store.rows)


def _authenticate(call: WebhookCall, settings: Settings) -> None:
    secret = settings.marketo_webhook_secret.get_secret_value()
    if not secret:
        raise Unauthenticated("MARKETO_WEBHOOK_SECRET is not set: flow-step calls are refused", code="not-configured")
    given = call.header(settings.marketo_webhook_header)
    if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
        raise Unauthenticated(
            f"missing or wrong secret (header '{settings.marketo_webhook_header}')", code="unauthorized"
        )


def nudge_message(key: str, now: datetime) -> OutgoingMessage:
    return OutgoingMessage(
        body=json.dumps({"run": key}).encode(),
        message_id=f"flow:{key}:{now.isoformat()}:{uuid.uuid4().hex[:8]}",  # a re-send is never dropped
        subject="flow-step",
        application_properties={"run": key},
    )


def nudged_run(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    run = doc.get("run") if isinstance(doc, dict) else None
    return run if isinstance(run, str) else None


def _nudge(sender: QueueSender, queue: str, key: str, now: datetime) -> bool:
    try:
        sender.send(queue, [nudge_message(key, now)])
    except SyncError as exc:
        log.warning("flow step %s recorded, not queued (the sweep sends it): %s", key, exc)
        return False
    return True


def accept(
    call: WebhookCall,
    step_text: str,
    *,
    settings: Settings,
    store: StateStore,
    sender: QueueSender,
    now: datetime,
) -> Accepted:
    """Check, record, queue (see the module); refusals raise before anything is recorded."""
    _authenticate(call, settings)
    step = step_named(step_text)
    if len(call.body) > MAX_BODY_BYTES:
        raise TooLarge(f"body over the {MAX_BODY_BYTES} byte limit", code="too-large", field="body")
    try:
        payload = load_json(call.body, bom=True)
    except JsonTextError as exc:
        raise InvalidRequest(str(exc), code="bad-json", field="body") from None
    body = parse_body(step, payload)
    grace = timedelta(seconds=settings.pending_grace_seconds)
    wanted = FlowRun(
        key=request_key(step, body),
        step=step.value,
        person_id=str(body.personId),
        request=stored_request(body),
        received_at=now,
        due_at=now + grace,
    )
    run, new = runs_of(store).add(wanted)
    if new:
        _nudge(sender, settings.flow_steps_queue, run.key, now)
    return Accepted(run.key, run.step, run.state, duplicate=not new)


def run_once(key: str, ports: Ports) -> FlowRun | None:
    """Run one recorded run (see the module); the run as saved, or None when there is no such run."""
    runs = runs_of(ports.store)
    run = runs.get(key)
    if run is None or run.finished:
        return run
    now = ports.clock()
    try:
        outcome = run_step(run, ports)
    except (RetryLater, QuotaExhausted) as exc:
        wait = _backoff(run.attempts, exc)
        log.warning("flow step %s waits %.0f s: %s", key, wait, exc.code or type(exc).__name__)
        return _save(
            runs, replace(run, attempts=run.attempts + 1, due_at=now + timedelta(seconds=wait), error=str(exc))
        )
    except (NotPossible, NotFound, SkipRecord, InvalidRequest) as exc:
        code = exc.code or "flow-step-refused"
        ports.store.add_error(
            replace(
                sync_error("person", run.person_id, f"flow:{run.step}", TO_DYNAMICS, code, exc.message, at=now),
                marketo_id=run.person_id,
            )
        )
        log.info("flow step %s (%s) failed: %s", key, run.step, code)
        return _finish(runs, replace(run, state=RunState.FAILED, error=f"[{code}] {exc.message}"))
    log.info("flow step %s (%s): %s", key, run.step, outcome.get("status"))
    operation = f"flow:{run.step}"  # this step's earlier sync errors for the person are resolved by its success
    ports.store.errors.resolve(
        [("person", run.person_id)], lambda e: e.operation == operation, at=now, by=RESOLVED_BY_SYNC
    )
    return _finish(runs, replace(run, state=RunState.DONE, outcome=outcome, error=None))


def _backoff(attempts: int, exc: SyncError) -> float:
    wait: float = min(BACKOFF_MAX, BACKOFF_BASE * float(1 << min(attempts, 10)))
    hinted = exc.retry_after if isinstance(exc, RetryLater) else None
    return max(wait, float(hinted)) if hinted is not None else wait


def _save(runs: FlowRuns, run: FlowRun) -> FlowRun | None:
    try:
        return runs.save(run)
    except Conflict:  # another delivery saved it meanwhile: its state stands
        return runs.get(run.key)


def _finish(runs: FlowRuns, run: FlowRun) -> FlowRun | None:
    try:
        return runs.finish(run)
    except Conflict:
        return runs.get(run.key)


@dataclass(frozen=True, slots=True)
class SweepReport:
    open: int
    sent: int
    gave_up: int


def sweep(
    store: StateStore,
    sender: QueueSender,
    queue: str,
    *,
    now: datetime,
    grace: timedelta,
    max_attempts: int,
    page: int = 1000,
) -> SweepReport:
    """Re-send every due open run (see the module)."""
    runs = runs_of(store)
    open_count = sent = gave_up = 0
    for key in list(runs.open_keys(page)):
        run = runs.get(key)
        if run is None or run.finished:
            continue
        open_count += 1
        if run.due_at is not None and run.due_at > now:
            continue
        if run.attempts >= max_attempts:
            message = f"the flow step was tried {run.attempts} times without finishing: {run.error or 'no reason kept'}"
            error = sync_error(
                "person", run.person_id, f"flow:{run.step}", TO_DYNAMICS, "flow-step-gave-up", message, at=now
            )
            store.add_error(replace(error, marketo_id=run.person_id))
            _finish(runs, replace(run, state=RunState.FAILED))
            gave_up += 1
            continue
        if _save(runs, replace(run, attempts=run.attempts + 1, due_at=now + grace)) is not None:
            sent += _nudge(sender, queue, key, now)
    return SweepReport(open_count, sent, gave_up)
