"""The verification sweep of one-way records: its walk (pure), its checkpoint across runs, its call budget, and
what it queues (only records Marketo holds otherwise than sent); the one-way decision with Marketo's values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from local.stack import LocalStack
from shared.core.mapping import load_mapping
from shared.core.policy import Action, Reason, RecordAction, RecordState, decide, decide_one_way
from shared.core.values import Canonical, ConversionError
from shared.core.verification import PAGE_SIZE, Walk, cycle_minutes, drifted
from shared.pipeline.verify import CHECKPOINT, VerifyReport, verify_one_way
from shared.store.link_keys import address
from tests.stacks import PROMPT_BATCHING, running_stack

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ACCOUNT = load_mapping(
    {
        "entities": [
            {
                "entity": "account",
                "fields": [
                    {"dynamics": "name", "marketo": "company", "type": "text"},
                    {"dynamics": "numberofemployees", "marketo": "numberOfEmployees", "type": "integer"},
                ],
            }
        ]
    }
).get("account")


# --- the walk, the comparison and the bound (pure) ------------------------------------------------------------------


def test_the_walk_goes_page_by_page_then_entity_by_entity_and_wraps_into_a_new_cycle() -> None:
    entities = ["account", "team"]
    walk = Walk().resumed(entities, NOW)
    assert (walk.entity, walk.after, walk.cycles) == ("account", "", 0)
    walk = walk.advanced(entities, ["a", "b"], 2, NOW)  # a full page: on in the entity
    assert (walk.entity, walk.after) == ("account", "b")
    walk = walk.advanced(entities, ["c"], 2, NOW)  # a short page: the entity is done
    assert (walk.entity, walk.after) == ("team", "")
    walk = walk.advanced(entities, [], 2, NOW)  # past the last entity: a cycle is done
    assert (walk.entity, walk.after, walk.cycles, walk.cycle_started) == ("account", "", 1, NOW.isoformat())
    assert Walk.parse(walk.dump()) == walk


def test_a_walk_in_an_entity_no_longer_mapped_or_unreadable_starts_over() -> None:
    assert Walk("new_gone", "x", 4).resumed(["account"], NOW) == Walk("account", "", 4, NOW.isoformat())
    assert Walk.parse("not json") == Walk()
    assert Walk.parse('{"entity": 3, "after": null, "cycles": -1}') == Walk()


def test_drift_is_a_marketo_value_other_than_the_baseline_an_unreadable_one_or_a_gone_object() -> None:
    baseline: dict[str, Canonical] = {"name": "Analytical Engines", "numberofemployees": 240}
    assert drifted(ACCOUNT, baseline, {"name": "Analytical Engines", "numberofemployees": 240}) == ()
    assert drifted(ACCOUNT, baseline, {"name": "Renamed", "numberofemployees": 240}) == ("name",)
    bad = ConversionError("numberofemployees", "canonical", "expected a whole number", "marketo")
    assert drifted(ACCOUNT, baseline, {"name": "Analytical Engines", "numberofemployees": bad}) == (
        "numberofemployees",
    )
    assert drifted(ACCOUNT, baseline, None) == ("name", "numberofemployees")
    assert drifted(ACCOUNT, {"name": "Analytical Engines"}, {"name": "Analytical Engines"}) == ()  # not sent: not ours


def test_the_bound_is_one_cycle_of_pages_over_the_calls_a_run() -> None:
    assert cycle_minutes({"account": 10_000}, 3, 5) == 60  # ceil(10000 / 900) = 12 runs
    assert cycle_minutes({"account": 300, "team": 1}, 1, 5) == 10  # 2 pages
    assert cycle_minutes({}, 3, 5) == 0
    assert PAGE_SIZE == 300


def test_a_one_way_decision_with_marketos_values_restores_only_what_differs() -> None:
    dynamics: dict[str, Canonical] = {"name": "Analytical Engines", "numberofemployees": 240}
    edited = decide_one_way(ACCOUNT, dynamics, dynamics, linked=True, marketo={**dynamics, "name": "Renamed"})
    assert edited.action is RecordAction.UPSERT_IN_MARKETO
    assert edited.marketo_writes == {"name": "Analytical Engines", "numberofemployees": 240}  # the whole record
    reasons = {f.field: f.reason for f in edited.fields}
    assert reasons == {"name": Reason.ONE_WAY_OVERWRITE, "numberofemployees": Reason.REFRESH}
    assert edited.reason.startswith("restored from Dynamics")

    matching = decide_one_way(ACCOUNT, dynamics, dynamics, linked=True, marketo=dynamics)
    assert (matching.action, matching.has_writes) == (RecordAction.SYNC, False)  # put right meanwhile: no write

    gone = decide_one_way(ACCOUNT, dynamics, dynamics, linked=True, marketo={})
    assert gone.marketo_writes == dynamics  # the object is put back

    both = decide_one_way(
        ACCOUNT, {**dynamics, "name": "New name"}, dynamics, linked=True, marketo={**dynamics, "name": "Renamed"}
    )
    (name,) = [f for f in both.fields if f.field == "name"]
    assert (name.action, name.reason, name.winner) == (Action.WRITE_MARKETO, Reason.COLLISION_ONE_WAY, "dynamics")


LEAD = load_mapping(
    {
        "entities": [
            {
                "entity": "lead",
                "fields": [
                    {"dynamics": "ownerid", "marketo": "dynamicsOwnerId", "type": "lookup", "lookup_part": "id"},
                    {"dynamics": "telephone1", "marketo": "phone", "type": "integer", "one_way": True},
                    {"dynamics": "numberofemployees", "marketo": "numberOfEmployees", "type": "integer"},
                ],
            }
        ]
    }
).get("lead")
OWNER = "6f0c8b8e-3d0a-4c6e-9f8e-1a2b3c4d5e6f"


def test_a_one_way_field_or_lookup_marketo_holds_in_a_form_it_cannot_take_is_restored_not_an_error() -> None:
    def unreadable(column: str) -> ConversionError:
        return ConversionError(column, "canonical", "expected a record id (GUID), got 'Bob in Sales'", "marketo")

    dynamics: dict[str, Canonical] = {"ownerid": OWNER, "telephone1": 5, "numberofemployees": 7}
    marketo: dict[str, Canonical | ConversionError] = {
        "ownerid": unreadable("ownerid"),
        "telephone1": unreadable("telephone1"),
        "numberofemployees": 7,
    }
    decision = decide(LEAD, RecordState(dynamics, marketo, baseline=dynamics))
    assert decision.errors == ()
    assert decision.marketo_writes == {"ownerid": OWNER, "telephone1": 5}
    assert {f.reason for f in decision.fields if f.action is Action.WRITE_MARKETO} == {Reason.ONE_WAY_UNREADABLE}
    assert decision.new_baseline == dynamics

    two_way = decide(LEAD, RecordState(dynamics, {**dynamics, "numberofemployees": unreadable("numberofemployees")}))
    assert [e.field for e in two_way.errors] == ["numberofemployees"]  # a two-way field: still the user's error


# --- the sweep against the simulated tenants ------------------------------------------------------------------------


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with running_stack(batching=PROMPT_BATCHING) as started:
        yield started


def _accounts(stack: LocalStack, n: int) -> list[str]:
    assert stack.tenants is not None
    ids = [stack.tenants.user_create("account", name=f"Company {i:02}", numberofemployees=i) for i in range(n)]
    assert stack.drain(15)
    return sorted(ids, key=_cursor)  # the walk's order


def _cursor(account_id: str) -> str:
    at = address("account", account_id)
    return f"{at.pk}/{at.rk}"


def _verify(stack: LocalStack, max_calls: int, page_size: int = PAGE_SIZE) -> VerifyReport:
    svc = stack.services
    return verify_one_way(
        svc.store, svc.marketo, svc.mapping, svc.changes, max_calls=max_calls, now=svc.clock, page_size=page_size
    )


def _reads(stack: LocalStack) -> int:
    assert stack.tenants is not None
    return stack.tenants.marketo.calls.get("GET /rest/v1/companies.json", 0)


def _company(stack: LocalStack, account_id: str) -> dict[str, object]:
    assert stack.tenants is not None
    records = stack.tenants.marketo.objects["companies"].records.values()
    (found,) = [r for r in records if r.get("externalCompanyId") == account_id]
    return found


def test_nothing_is_queued_or_written_when_marketo_holds_what_was_sent(stack: LocalStack) -> None:
    _accounts(stack, 3)
    assert stack.tenants is not None
    writes = stack.tenants.marketo.calls.get("POST /rest/v1/companies/sync.json", 0)
    report = _verify(stack, max_calls=3)
    assert (report.calls, report.checked, report.queued, report.cycles) == (1, 3, 0, 1)  # came full circle: stop
    assert stack.drain(15)
    assert stack.tenants.marketo.calls.get("POST /rest/v1/companies/sync.json", 0) == writes
    assert stack.services.pending.all() == []


def test_the_checkpoint_resumes_across_runs_within_the_call_budget_and_a_cycle_covers_every_record(
    stack: LocalStack,
) -> None:
    ids = _accounts(stack, 7)
    last = ids[-1]
    name = _company(stack, last)["company"]
    _company(stack, last)["company"] = "Edited in Marketo"  # on the cycle's last page
    seen: list[int] = []
    queued: list[int] = []
    for _ in range(4):  # pages of 2, 2, 2 and 1: one a run
        before = _reads(stack)
        report = _verify(stack, max_calls=1, page_size=2)
        assert stack.drain(15)
        assert report.calls == 1  # the budget holds; a restore's reconcile reads its object once more
        assert _reads(stack) - before == report.calls + (1 if report.queued else 0)
        seen.append(report.checked)
        queued.append(report.queued)
    assert seen == [2, 2, 2, 1]  # every record once
    assert queued == [0, 0, 0, 1]  # found when its page came round
    checkpoint = stack.services.store.get_checkpoint(CHECKPOINT)
    assert checkpoint is not None
    walk = Walk.parse(checkpoint.value)  # past the entities without links (free): at the next cycle's first page
    assert (walk.entity, walk.after, walk.cycles) == ("account", "", 1)
    assert stack.drain(15)
    assert _company(stack, last)["company"] == name  # restored from Dynamics

    report = _verify(stack, max_calls=1, page_size=2)  # the next cycle starts over at the first page
    assert (report.checked, report.queued, report.walk.after) == (2, 0, _cursor(ids[1]))
    before = _reads(stack)
    assert _verify(stack, max_calls=0).calls == 0  # a budget of 0: the sweep is off
    assert _reads(stack) == before


def test_a_field_gone_from_marketos_object_leaves_that_entity_to_the_next_cycle(stack: LocalStack) -> None:
    _accounts(stack, 2)
    assert stack.tenants is not None
    team = stack.tenants.user_create("team", name="Field Marketing")
    assert stack.drain(15)
    companies = stack.tenants.marketo.objects["companies"]
    companies.fields = [f for f in companies.fields if f.name != "numberOfEmployees"]
    report = _verify(stack, max_calls=3)
    assert report.skipped == ["account"]
    assert (report.calls, report.checked, report.queued) == (2, 1, 0)  # the query refused, then the team's page
    assert report.walk.entity == "account"  # a cycle on: back at the first entity, to try again
    assert stack.services.store.get_link("team", team) is not None


def test_a_marketo_outage_stops_the_sweep_where_its_last_whole_page_left_it() -> None:
    with running_stack(batching=PROMPT_BATCHING, sleep=lambda seconds: None) as stack:
        _accounts(stack, 3)
        assert stack.tenants is not None
        stack.tenants.marketo.outage(3600)
        stack.host.fire("verify_sweep")  # returns normally: the circuit is told
        assert stack.services.store.get_checkpoint(CHECKPOINT) is None
        assert stack.services.circuits.get("marketo").is_open
        assert stack.services.pending.all() == []


def test_a_page_of_300_links_is_one_marketo_call(stack: LocalStack) -> None:
    """300 ids pass Marketo's 8 KB URI limit: the query goes as a form body with _method=GET, still one call."""
    from shared.pipeline import marketo_side

    assert stack.tenants is not None
    svc, mk = stack.services, stack.tenants.marketo
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(PAGE_SIZE)]
    svc.marketo.sync_companies([{"externalCompanyId": i, "company": f"Company {i[-3:]}"} for i in ids])
    before = sum(mk.call_counts().values())
    found = marketo_side.read_objects(svc.marketo, ACCOUNT, ids, marketo_side.object_fields(ACCOUNT))
    assert sum(mk.call_counts().values()) - before == 1
    assert sorted(found) == ids
    assert found[ids[7]]["company"] == "Company 007"
