"""Person claims ("sync person to Dynamics"): made only if absent, changed only on their ETag, on both backends;
and the whole action on Azure Table Storage (Azurite), where racing calls still make one lead."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from shared.errors import Conflict
from shared.pipeline.person_to_dynamics import Outcome, PersonSynced, sync_person_to_dynamics
from shared.store.base import StateStore
from shared.store.model import ClaimState, Link, PersonClaim
from shared.store.tables import TableRows

if TYPE_CHECKING:
    from local.stack import LocalStack

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEAD = "5a4b3c2d-0000-4000-8000-00000000000a"


class SignallingStore(StateStore):
    """The store, telling callers waiting for the winner (their injected sleep) that a link was saved."""

    def __init__(self, rows: TableRows) -> None:
        super().__init__(rows)
        self.linked = threading.Event()

    def save_link(self, link: Link) -> Link:
        saved = super().save_link(link)
        self.linked.set()
        return saved


def _race(calls: int, call: Callable[[int], object]) -> list[object]:
    """Run ``call`` from ``calls`` threads released together; each result, or the exception it raised."""
    start = threading.Barrier(calls)

    def one(index: int) -> object:
        start.wait()
        try:
            return call(index)
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(max_workers=calls) as pool:
        return list(pool.map(one, range(calls)))


def test_a_person_claim_is_made_once_and_read_back(store: StateStore) -> None:
    made = store.save_person_claim(PersonClaim("1001", "instance-a", AT, LEAD))
    assert made.etag
    read = store.get_person_claim("1001")
    assert read == made
    assert read.state is ClaimState.CREATING
    with pytest.raises(Conflict):
        store.save_person_claim(PersonClaim("1001", "instance-b", AT, "another-lead-id"))
    assert store.get_person_claim("1002") is None


def test_a_claim_changes_only_on_its_current_etag(store: StateStore) -> None:
    made = store.save_person_claim(PersonClaim("1001", "instance-a", AT, LEAD))
    done = store.save_person_claim(replace(made, state=ClaimState.DONE, entity="lead", dynamics_id=LEAD))
    with pytest.raises(Conflict):
        store.save_person_claim(replace(made, owner="instance-b", claimed_at=AT + timedelta(minutes=5)))
    assert store.get_person_claim("1001") == done


def test_of_many_racing_first_claims_exactly_one_is_made(store: StateStore) -> None:
    results = _race(16, lambda i: store.save_person_claim(PersonClaim("1001", f"caller-{i}", AT, f"lead-{i}")))
    won = [r for r in results if isinstance(r, PersonClaim)]
    assert len(won) == 1
    assert Counter(type(r) for r in results)[Conflict] == 15
    assert store.get_person_claim("1001") == won[0]


def test_of_many_racing_takeovers_on_one_etag_exactly_one_wins(store: StateStore) -> None:
    stale = store.save_person_claim(PersonClaim("1001", "crashed", AT, LEAD))
    later = AT + timedelta(minutes=5)
    results = _race(16, lambda i: store.save_person_claim(replace(stale, owner=f"caller-{i}", claimed_at=later)))
    won = [r for r in results if isinstance(r, PersonClaim)]
    assert len(won) == 1
    current = store.get_person_claim("1001")
    assert current is not None
    assert (current.owner, current.lead_id) == (won[0].owner, LEAD)


@pytest.mark.azurite
def test_racing_calls_make_one_lead_with_the_claim_on_table_storage(stack: LocalStack, azurite_endpoint: str) -> None:
    rows = TableRows.for_azurite(azurite_endpoint)
    rows.table_suffix = "claimrace"
    rows.ensure_tables()
    store = SignallingStore(rows)
    assert stack.tenants is not None
    person_id = str(stack.tenants.marketo.add_lead(email="tara@example.com", firstName="Tara", lastName="Table"))
    svc = stack.services

    def wait_for_link(seconds: float) -> None:  # injected sleep: look again once the winner saved the link
        assert store.linked.wait(timeout=30), "no caller saved the link"

    def call(_: int) -> PersonSynced:
        return sync_person_to_dynamics(
            store, svc.mapping, svc.dataverse, svc.marketo, person_id, clock=lambda: AT, sleep=wait_for_link
        )

    answers = [a for a in _race(12, call) if isinstance(a, PersonSynced)]
    assert len(answers) == 12
    leads = stack.tenants.dataverse.rows("lead")
    assert len(leads) == 1
    assert Counter(a.outcome for a in answers) == {Outcome.CREATED: 1, Outcome.ALREADY_LINKED: 11}
    assert {a.id for a in answers} == {leads[0]["leadid"]}
    claim = store.get_person_claim(person_id)
    assert claim is not None
    assert (claim.state, claim.dynamics_id) == (ClaimState.DONE, leads[0]["leadid"])
