"""The product under chaos: the FunctionApp's own functions on the local host, pumped by this one thread.

No queue pump or timer thread runs: :meth:`ChaosWorld.run_for` moves the simulated clock, fires each timer when its
NCRONTAB schedule says (on the simulated clock), and hands every available message to the queue functions as the
Functions host would (complete on return; abandon, to be redelivered, on an exception). A crash is a
:class:`~local.chaos.faults.Crash` raised out of whatever was running; :meth:`ChaosWorld.crashed` then starts a
fresh process state over the same store and tenants, as a restarted host would.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from azure.functions.timer import TimerRequest
from pydantic import SecretStr

import function_app
from local.broker import LocalBroker
from local.chaos.clock import SimClock
from local.host import Batching, TimerJob, to_function_message
from local.stack import IN_PROCESS_HOST, LocalStack
from local.tenants import SimulatedTenants
from shared.dataverse.auth import forget_confidential_clients
from shared.dataverse.client import DataverseClient
from shared.services import build_dataverse

log = logging.getLogger("local.chaos")

BATCH = Batching(max_size=300, min_size=1, max_wait=0.0, concurrency=0)  # no pump threads: this thread pumps
STEP_SECONDS = 5.0  # the longest the clock moves between two looks at the queues
TIMERS = ("pending_sweep", "dataverse_catchup", "marketo_feed", "quick_sync")
WRITE_METHODS = {"PATCH", "POST", "DELETE"}
OVERRIDES = {
    "PAUSE_RECHECK_SECONDS": "30",
    # The safety nets run less often than the defaults (every 30 s and every minute): each run costs the same
    # in-process calls whatever it finds, and a slower net finds what a lost webhook left just as surely.
    "MARKETO_FEED_SCHEDULE": "0 */1 * * * *",
    "DATAVERSE_CATCHUP_SCHEDULE": "30 */3 * * * *",
    # Dataverse's limits per process, not through the shared ledger: a scenario's simulated hours of requests
    # through it cost a quarter of the suite's time, and the scenarios are about convergence under faults. The
    # shared budget has its own tests (tests/dataverse/test_shared_budget.py: processes, store down, 429s);
    # Marketo's shared budget stays on here.
    "DATAVERSE_BUDGET": "process",
}


class ChaosWorld:
    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        forget_confidential_clients()  # each scenario has tenants of its own
        self.stack = LocalStack(
            function_app.app,
            in_process=True,
            run_timers=False,
            retry_delay=1.0,
            batching=BATCH,
            overrides=OVERRIDES,
            clock=clock.now,
            sleep=clock.sleep,
            monotonic=clock.time,
            tenant_clock=clock.time,
        ).start()
        tenants = self.stack.tenants
        assert tenants is not None
        self.tenants: SimulatedTenants = tenants
        self.dv = tenants.dataverse
        self.mk = tenants.marketo
        self.deliver_dataverse = self.dv.sender  # what the plug-in steps send through, to switch off and on
        self.activity = 0  # batches and timer runs that did any work: edits with none in between collide
        self.timer_failures: dict[str, int] = {}
        self.restarts = 0
        self._due = {job.name: self._next(job) for job in self._timers()}

    # --- time ------------------------------------------------------------------------------------------------

    def _timers(self) -> list[TimerJob]:
        return [job for job in self.stack.host.functions.timers if job.name in TIMERS]

    def _next(self, job: TimerJob) -> float:
        return job.schedule.next_after(self.clock.now()).timestamp()

    def run_for(self, seconds: float) -> None:
        """Time passes: timers fire when due, and the queues are worked until nothing is available."""
        end = self.clock.time() + seconds
        self.pump()
        while True:
            job = min(self._timers(), key=lambda j: self._due[j.name])
            due = self._due[job.name]
            step_end = min(end, self.clock.time() + STEP_SECONDS)
            if due <= step_end:
                self.clock.advance_to(due)
                self._due[job.name] = self._next(job)
                self.fire(job)
            else:
                self.clock.advance_to(step_end)
            self.pump()
            if self.clock.time() >= end:
                return

    def fire(self, job: TimerJob) -> None:
        try:
            job.call(**{job.arg: TimerRequest(past_due=False)})
        except Exception as exc:  # the Functions host logs a failed run and fires the next one on schedule
            self.timer_failures[job.name] = self.timer_failures.get(job.name, 0) + 1
            log.info("timer %s failed: %s: %s", job.name, type(exc).__name__, exc)
        self.activity += 1

    # --- queues ----------------------------------------------------------------------------------------------

    def pump(self, limit: int = 10_000) -> int:
        """Every available message to its function, batch after batch; how many batches ran."""
        batches = 0
        for _ in range(limit):
            worked = False
            for consumer in self.stack.host.functions.queues:
                queue = self.broker.queue(consumer.queue)
                delivered = queue.receive(BATCH.max_size if consumer.many else 1, timeout=0)
                if not delivered:
                    continue
                worked = True
                batches += 1
                self.activity += 1
                messages = [to_function_message(d) for d in delivered]
                try:
                    consumer.call(**{consumer.arg: messages if consumer.many else messages[0]})
                except Exception as exc:
                    queue.abandon(delivered, reason=f"{type(exc).__name__}: {exc}", retry_delay=1.0)
                else:
                    queue.complete(delivered)
            if not worked:
                return batches
        raise AssertionError(f"the queues never emptied after {limit} batches (an echo loop?)")

    @property
    def broker(self) -> LocalBroker:
        return self.stack.broker

    def queued(self) -> int:
        return sum(len(q.peek()) for q in self.broker.queues().values())

    def dead_lettered(self) -> int:
        return sum(len(q.dead_letters) for q in self.broker.queues().values())

    # --- a crash and a fresh process -------------------------------------------------------------------------

    def crashed(self, *, keep_queue: bool) -> None:
        """The process died: a fresh one over the same store and tenants. The queue's messages survive (the locks
        the dead process held expire, their delivery counts kept) or, with ``keep_queue`` False, are lost."""
        self.restarts += 1
        self.stack.restart(keep_queue=keep_queue)
        for queue in self.broker.queues().values():
            queue.expire_locks()

    # --- the people using both systems -------------------------------------------------------------------------

    def create(self, entity: str, **values: Any) -> str:
        return self.tenants.user_create(entity, **values)

    def update(self, entity: str, record_id: str, **values: Any) -> None:
        self.tenants.user_update(entity, record_id, **values)

    def delete(self, entity: str, record_id: str) -> None:
        self.tenants.user_delete(entity, record_id)

    def admin_app(self) -> DataverseClient:
        """The admin's own app registration (a salesperson's tool): its changes are human ones."""
        settings = self.stack.settings.model_copy(
            update={
                "dataverse_client_id": self.tenants.demo_client_id,
                "dataverse_client_secret": SecretStr(self.tenants.secrets.demo_client_secret),
            }
        )
        return build_dataverse(settings, self.stack.http, sleep=self.clock.sleep, clock=self.clock.time)

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.stack.host.handle_http(httpx.Request(method, f"{IN_PROCESS_HOST}/api/{path}", **kw))

    def persons(self, email: str) -> list[dict[str, Any]]:
        return self.mk.find_leads("email", email)

    def writes(self) -> dict[str, int]:
        """Calls that change data in either system, by route (an echo loop shows here)."""
        counts = {f"Marketo {k}": n for k, n in self.mk.calls.items() if k.startswith("POST") and "identity" not in k}
        counts |= {
            f"Dataverse {k}": n
            for k, n in self.dv.calls.items()
            if k.split(" ", 1)[0] in WRITE_METHODS and not k.endswith("token")
        }
        return counts

    def stop(self) -> None:
        self.stack.stop()

    def __enter__(self) -> ChaosWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_time() -> datetime:
    """Noon UTC today: where the simulated clock starts. The same time of day for every run, so the timers'
    schedules and Marketo's daily quota reset fall at the same simulated moments and a seed replays exactly; the
    same day as the real clock, which a few libraries read (MSAL's token cache)."""
    return datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
