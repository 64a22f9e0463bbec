"""Sync person to Dynamics: one Dynamics lead per Marketo person, however many calls race, in one process or many.

The calls go through the real pipeline function against the Dataverse and Marketo simulators. Time is injected:
:class:`Clock` moves only when a test (or the pipeline's injected sleep) moves it, and a caller waiting for the
winner is woken by the winner's saved link (:class:`WakeOnLink`) instead of sleeping.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions.admin import _person_answer
from local.stack import IN_PROCESS_HOST, LocalStack
from shared.errors import InvalidRequest, NotFound, NotPossible
from shared.pipeline import admin
from shared.pipeline.person_to_dynamics import (
    POLLS,
    ClaimStep,
    Outcome,
    PersonSynced,
    claim_step,
    sync_person_to_dynamics,
)
from shared.services import Services, build_dataverse, build_marketo
from shared.store.base import StateStore
from shared.store.model import ClaimState, Link, PersonClaim
from shared.store.sqlite import SqliteRows
from tests.stacks import PROMPT_BATCHING, running_stack

TIMEOUT = 60.0
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """Injected time: ``sleep`` moves it on and returns at once."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


class WakeOnLink:
    """An injected sleep for racing callers: it returns as soon as any store of the test saves a link (the
    winner's), so a loser's next look finds it; the bound only turns a hang into a failure."""

    def __init__(self) -> None:
        self.saved = threading.Event()

    def sleep(self, seconds: float) -> None:
        assert self.saved.wait(timeout=30), "no caller saved the link"


class SignallingStore(StateStore):
    def __init__(self, rows: Any, wake: WakeOnLink) -> None:
        super().__init__(rows)
        self.wake = wake

    def save_link(self, link: Link) -> Link:
        saved = super().save_link(link)
        self.wake.saved.set()
        return saved


class Crash(BaseException):
    """The process dying: no ``except Exception`` handler runs, the claim stays as it was."""


class CrashBeforeLink(StateStore):
    """The store of a process that dies after the Dataverse create, before the link is saved."""

    def save_link(self, link: Link) -> Link:
        raise Crash


class StallsAfterClaiming(StateStore):
    """The store of an instance that stalls (under load, say) right after making the claim, until told to go on."""

    def __init__(self, rows: Any) -> None:
        super().__init__(rows)
        self.claimed = threading.Event()
        self.go_on = threading.Event()

    def save_person_claim(self, claim: PersonClaim) -> PersonClaim:
        saved = super().save_person_claim(claim)
        if claim.etag is None:
            self.claimed.set()
            assert self.go_on.wait(timeout=30)
        return saved


@dataclass
class Process:
    """What one Functions instance holds: its own clients and its own connection to the shared store."""

    services: Services
    store: StateStore

    def sync(self, person_id: str, *, sleep: Callable[[float], None], clock: Callable[[], datetime]) -> PersonSynced:
        svc = self.services
        return sync_person_to_dynamics(
            self.store,
            svc.mapping,
            svc.dataverse,
            svc.marketo,
            person_id,
            claim_timeout=TIMEOUT,
            clock=clock,
            sleep=sleep,
        )


@pytest.fixture
def product(tmp_path: Path) -> Iterator[LocalStack]:
    """The product on the simulated tenants, its state in a SQLite file other "processes" can open too."""
    batching = replace(PROMPT_BATCHING, concurrency=2)
    with running_stack(batching=batching, state_path=str(tmp_path / "state.sqlite3")) as running:
        yield running


def _process(product: LocalStack, store: StateStore) -> Process:
    s = product.settings
    services = Services(s, store, product.broker, build_dataverse(s, product.http), build_marketo(s, product.http))
    return Process(services, store)


def _person(product: LocalStack, email: str = "nina@example.com") -> str:
    assert product.tenants is not None
    return str(product.tenants.marketo.add_lead(email=email, firstName="Nina", lastName="New", title="Buyer"))


def _leads(product: LocalStack) -> list[dict[str, Any]]:
    assert product.tenants is not None
    return product.tenants.dataverse.rows("lead")


def _race(calls: int, call: Callable[[int], PersonSynced]) -> list[PersonSynced]:
    start = threading.Barrier(calls)

    def one(index: int) -> PersonSynced:
        start.wait()
        return call(index)

    with ThreadPoolExecutor(max_workers=calls) as pool:
        return list(pool.map(one, range(calls)))


def _one_lead_answered_to_all(product: LocalStack, person_id: str, answers: list[PersonSynced]) -> str:
    leads = _leads(product)
    assert len(leads) == 1, f"{len(leads)} leads for one person"
    lead_id = str(leads[0]["leadid"])
    assert Counter(a.outcome for a in answers) == {Outcome.CREATED: 1, Outcome.ALREADY_LINKED: len(answers) - 1}
    assert {(a.entity, a.id) for a in answers} == {("lead", lead_id)}
    link = product.services.store.find_by_marketo("lead", person_id)
    assert link is not None
    assert link.dynamics_id == lead_id
    assert product.tenants is not None
    assert product.tenants.marketo.lead(int(person_id))["dynamicsLeadId"] == lead_id  # type: ignore[index]
    return lead_id


# --- racing calls ----------------------------------------------------------------------------------------------------


def test_fifty_concurrent_calls_for_one_person_make_one_lead_and_all_answer_its_id(product: LocalStack) -> None:
    person_id = _person(product)
    wake = WakeOnLink()
    process = _process(product, SignallingStore(product.services.store.rows, wake))
    clock = Clock()
    answers = _race(50, lambda _: process.sync(person_id, sleep=wake.sleep, clock=clock))
    _one_lead_answered_to_all(product, person_id, answers)


def test_two_processes_sharing_only_the_store_file_make_one_lead(product: LocalStack, tmp_path: Path) -> None:
    person_id = _person(product)
    wake = WakeOnLink()
    path = tmp_path / "state.sqlite3"
    first = _process(product, SignallingStore(SqliteRows(path), wake))
    second = _process(product, SignallingStore(SqliteRows(path), wake))
    clock = Clock()
    answers = _race(20, lambda i: (first, second)[i % 2].sync(person_id, sleep=wake.sleep, clock=clock))
    _one_lead_answered_to_all(product, person_id, answers)


def test_a_caller_that_outwaits_the_poll_is_told_in_progress_and_nothing_is_created(product: LocalStack) -> None:
    person_id = _person(product)
    store = product.services.store
    store.save_person_claim(PersonClaim(person_id, "other-instance", START, "0f1e2d3c-0000-4000-8000-000000000001"))
    clock = Clock()
    answer = _process(product, store).sync(person_id, sleep=clock.sleep, clock=clock)
    assert (answer.outcome, answer.retry_after) == (Outcome.IN_PROGRESS, 5)
    assert len(clock.slept) == POLLS
    assert _leads(product) == []


def test_in_progress_is_a_409_with_retry_after() -> None:
    response = _person_answer(PersonSynced(Outcome.IN_PROGRESS, retry_after=5))
    assert (response.status_code, response.headers["Retry-After"]) == (409, "5")
    assert b'"code": "in-progress"' in response.get_body()


# --- a crashed winner ----------------------------------------------------------------------------------------------


def test_a_crash_between_create_and_link_save_leaves_one_lead_that_the_takeover_links(product: LocalStack) -> None:
    person_id = _person(product)
    store = product.services.store
    clock = Clock()
    with pytest.raises(Crash):
        _process(product, CrashBeforeLink(store.rows)).sync(person_id, sleep=clock.sleep, clock=clock)
    (lead,) = _leads(product)
    claim = store.get_person_claim(person_id)
    assert claim is not None
    assert (claim.state, claim.lead_id) == (ClaimState.CREATING, lead["leadid"])

    waiting = _process(product, store).sync(person_id, sleep=clock.sleep, clock=clock)
    assert waiting.outcome is Outcome.IN_PROGRESS, "the crashed claim is not stale yet"

    clock.now += timedelta(seconds=TIMEOUT)
    recovered = _process(product, store).sync(person_id, sleep=clock.sleep, clock=clock)
    assert (recovered.outcome, recovered.entity, recovered.id) == (Outcome.CREATED, "lead", lead["leadid"])
    assert len(_leads(product)) == 1
    link = store.find_by_marketo("lead", person_id)
    assert link is not None
    assert link.dynamics_id == lead["leadid"]


def test_a_slow_owner_whose_claim_was_taken_over_cannot_create_a_second_lead(product: LocalStack) -> None:
    assert product.tenants is not None
    person_id = str(product.tenants.marketo.add_lead(firstName="No", lastName="Email"))  # nothing to match by
    clock = Clock()
    slow_store = StallsAfterClaiming(product.services.store.rows)
    slow = _process(product, slow_store)
    with ThreadPoolExecutor(max_workers=1) as pool:
        stalled = pool.submit(slow.sync, person_id, sleep=clock.sleep, clock=clock)
        assert slow_store.claimed.wait(timeout=30)
        clock.now += timedelta(seconds=TIMEOUT)
        taker = _process(product, product.services.store).sync(person_id, sleep=clock.sleep, clock=clock)
        slow_store.go_on.set()
        late = stalled.result(timeout=30)
    (lead,) = _leads(product)
    assert (taker.outcome, taker.id) == (Outcome.CREATED, lead["leadid"])
    assert late.id == lead["leadid"], "its create with the claim's lead id was refused as a duplicate; it linked that"


# --- an existing Dynamics record with the e-mail -----------------------------------------------------------------


@pytest.mark.parametrize("entity", ["lead", "contact"])
def test_a_record_with_the_persons_email_is_linked_not_created(product: LocalStack, entity: str) -> None:
    assert product.tenants is not None
    dv = product.tenants.dataverse
    kept_out = {"lastname": "Old", "emailaddress1": "nina@example.com", "new_synctomkto": False}
    existing = dv.user_create(entity, kept_out, user_id=product.tenants.admin_user_id)
    assert product.drain(10)
    person_id = _person(product)
    clock = Clock()
    answer = _process(product, product.services.store).sync(person_id, sleep=clock.sleep, clock=clock)
    assert (answer.outcome, answer.entity, answer.id, answer.matched_by) == (
        Outcome.LINKED_EXISTING,
        entity,
        existing,
        "email",
    )
    assert len(dv.rows("lead")) == (1 if entity == "lead" else 0)
    link = product.services.store.find_by_marketo("lead", person_id)
    assert link is not None
    assert (link.entity, link.dynamics_id) == (entity, existing)
    field = "dynamicsLeadId" if entity == "lead" else "dynamicsContactId"
    assert product.tenants.marketo.lead(int(person_id))[field] == existing  # type: ignore[index]


def test_a_record_with_the_email_linked_to_another_person_is_refused_not_duplicated(product: LocalStack) -> None:
    assert product.tenants is not None
    values = {"lastname": "Old", "emailaddress1": "nina@example.com", "new_synctomkto": False}
    contact = product.tenants.dataverse.user_create("contact", values, user_id=product.tenants.admin_user_id)
    assert product.drain(10)
    store = product.services.store
    store.save_link(Link("contact", contact, "999999"))
    person_id = _person(product)
    clock = Clock()
    with pytest.raises(NotPossible) as refused:
        _process(product, store).sync(person_id, sleep=clock.sleep, clock=clock)
    assert refused.value.code == "email-linked-elsewhere"
    assert _leads(product) == []
    claim = store.get_person_claim(person_id)
    assert claim is not None
    assert claim.state is ClaimState.RELEASED, "released, so the call after the merge goes ahead at once"


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "marketo_id", ["abc", "12a", "-1", "0", "²", "١٢", "99999999999", "2147483648", "9" * 5000, ""]
)
def test_an_id_that_cannot_be_a_marketo_person_is_refused_before_anything_is_done(
    product: LocalStack, marketo_id: str
) -> None:
    svc = product.services
    with pytest.raises(InvalidRequest) as refused:
        admin.sync_person_to_dynamics(svc.store, svc.mapping, svc.dataverse, svc.marketo, marketo_id)
    assert (refused.value.code, refused.value.field) == ("bad-id", "marketo_id")
    assert _leads(product) == []


def test_a_person_marketo_does_not_have_is_not_found_and_nothing_is_claimed(product: LocalStack) -> None:
    svc = product.services
    with pytest.raises(NotFound):
        admin.sync_person_to_dynamics(svc.store, svc.mapping, svc.dataverse, svc.marketo, "424242")
    assert svc.store.get_person_claim("424242") is None
    assert _leads(product) == []


@pytest.mark.parametrize(
    ("marketo_id", "status", "code"),
    [("abc", 400, "bad-id"), ("99999999999", 400, "bad-id"), ("424242", 404, "not-found")],
)
def test_bad_input_over_http_is_a_4xx_json_naming_the_problem(
    product: LocalStack, marketo_id: str, status: int, code: str
) -> None:
    url = f"{IN_PROCESS_HOST}/api/marketo/persons/{marketo_id}/sync-to-dynamics"
    response = product.host.handle_http(httpx.Request("POST", url))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert _leads(product) == []


def test_leading_zeros_name_the_same_person(product: LocalStack) -> None:
    person_id = _person(product)
    svc = product.services
    first = admin.sync_person_to_dynamics(svc.store, svc.mapping, svc.dataverse, svc.marketo, f"00{person_id}")
    again = admin.sync_person_to_dynamics(svc.store, svc.mapping, svc.dataverse, svc.marketo, person_id)
    assert (first.outcome, again.outcome, again.id) == (Outcome.CREATED, Outcome.ALREADY_LINKED, first.id)


# --- the claim decision --------------------------------------------------------------------------------------------


def _claim(state: ClaimState, age: float) -> PersonClaim:
    return PersonClaim("7", "someone", START - timedelta(seconds=age), "lead-id", state)


@pytest.mark.parametrize(
    ("claim", "step"),
    [
        (None, ClaimStep.MAKE),
        (_claim(ClaimState.CREATING, 0), ClaimStep.WAIT),
        (_claim(ClaimState.CREATING, TIMEOUT - 1), ClaimStep.WAIT),
        (_claim(ClaimState.CREATING, TIMEOUT), ClaimStep.TAKE_OVER),
        (_claim(ClaimState.RELEASED, 0), ClaimStep.TAKE_OVER),
        (_claim(ClaimState.DONE, 0), ClaimStep.TAKE_OVER),  # asked only when the link is gone
    ],
)
def test_claim_step_waits_only_for_a_live_creating_claim(claim: PersonClaim | None, step: ClaimStep) -> None:
    assert claim_step(claim, START, timedelta(seconds=TIMEOUT)) is step
