"""A busy batch makes only full Marketo calls: the records beyond each call group's last 300 wait for the next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.core.mapping import SyncMapping, load_mapping
from shared.pipeline.notification import Notification, Source
from shared.pipeline.reconcile.batch import Target
from shared.pipeline.reconcile.carry import (
    HOLD_DELAY,
    HOLD_GRID,
    OBJECT_HOLD_GRID,
    PERSONS,
    CarryRule,
    busy,
    call_group,
    flowing,
    fresh,
    held_again,
    hold_until,
    split_for_full_calls,
)
from shared.services import ROOT

MAPPING: SyncMapping = load_mapping((ROOT / "config" / "mapping.json").read_text())
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _targets(entity: str, count: int, *, since: datetime | None = None, start: int = 0) -> list[Target]:
    return [
        Target(
            entity,
            f"{i:08d}-0000-0000-0000-000000000000",
            [Notification(source=Source.DATAVERSE_WEBHOOK, entity=entity, dynamics_id=f"{i:08d}", held_since=since)],
        )
        for i in range(start, start + count)
    ]


def test_persons_form_one_call_group_and_each_one_way_object_its_own_and_sales_persons_are_never_held() -> None:
    assert call_group(MAPPING, "lead") == call_group(MAPPING, "contact") == PERSONS
    assert call_group(MAPPING, "account") == "account"
    assert call_group(MAPPING, "opportunity") == "opportunity"
    assert call_group(MAPPING, "new_project") == "new_project"
    assert call_group(MAPPING, "systemuser") is None


def test_a_busy_batch_keeps_whole_calls_per_group_and_holds_the_rest() -> None:
    leads, contacts, accounts = _targets("lead", 500), _targets("contact", 220, start=500), _targets("account", 120)
    users = _targets("systemuser", 7)
    targets = {"lead": leads, "contact": contacts, "account": accounts, "systemuser": users}

    now, held = split_for_full_calls(targets, MAPPING, CarryRule(busy=True, now=NOW))

    # 720 persons: two full calls go (the batch's order), 120 wait; 120 accounts: all wait; users: never held
    assert sum(len(now.get(e, [])) for e in ("lead", "contact")) == 600
    assert now["lead"] == leads
    assert now["contact"] == contacts[:100]
    assert "account" not in now
    assert now["systemuser"] == users
    assert held == contacts[100:] + accounts


def test_records_held_before_go_first_and_a_group_with_one_held_too_long_goes_out_whole() -> None:
    old = _targets("account", 100, since=NOW - timedelta(seconds=10))
    new = _targets("account", 250, start=100)
    rule = CarryRule(busy=True, now=NOW, max_hold=timedelta(seconds=60))

    now, held = split_for_full_calls({"account": new + old}, MAPPING, rule)

    assert now["account"] == new[:200] + old  # the batch's order is kept for what goes now
    assert held == new[200:]

    stale = _targets("account", 10, since=NOW - timedelta(seconds=60))
    now, held = split_for_full_calls({"account": new + stale}, MAPPING, rule)
    assert (now["account"], held) == (new + stale, [])


def test_a_batch_that_is_not_busy_takes_everything() -> None:
    targets = {"lead": _targets("lead", 299), "account": _targets("account", 3)}
    assert split_for_full_calls(targets, MAPPING, CarryRule(busy=False, now=NOW)) == (targets, [])


def test_a_held_record_goes_back_with_since_when_it_waits_and_fresh_ids_and_is_not_fresh_then() -> None:
    (target,) = _targets("account", 1)
    (again,) = held_again(target, NOW, "stamp")
    assert again.held_since == NOW
    assert again.message_id != target.notes[0].message_id  # past duplicate detection
    (later,) = held_again(Target("account", target.dynamics_id, [again]), NOW + timedelta(seconds=5), "later")
    assert later.held_since == NOW  # waits since it was first held
    assert fresh([target.notes[0], again, later]) == 1


def test_a_batch_is_busy_when_the_host_filled_it_and_fresh_changes_are_among_them() -> None:
    assert busy(300, 300, 300)
    assert busy(900, 1, 300)
    assert not busy(299, 299, 300)  # formed by the host's wait: the stream is slow, nothing is held
    assert not busy(700, 0, 300)  # only records held by held records: the stream stopped, they go out


def test_records_a_flowing_batch_held_keep_a_batch_of_their_own_busy_once_then_go_out() -> None:
    (target,) = _targets("account", 1)
    (held,) = held_again(target, NOW, "a")  # by a batch with fresh changes
    assert (fresh([held]), flowing([held]), held.held_flowing) == (0, 1, True)
    # held records come back together, often as a batch of their own between fresh ones: still busy
    assert busy(700, flowing([held] * 700), 300)

    (again,) = held_again(Target("account", target.dynamics_id, [held]), NOW, "b", flowing=False)
    assert not again.held_flowing
    assert not busy(700, flowing([again] * 700), 300)  # held by held records alone: the stream stopped
    assert flowing([again, target.notes[0]]) == 1  # a fresh change says the stream flows


def test_records_held_within_one_interval_come_back_at_the_same_moment() -> None:
    # NOW is on the grid; batches, or instances, holding records at any moment of one interval
    start = NOW - HOLD_DELAY
    times = [start + timedelta(milliseconds=1), start + HOLD_GRID / 2, start + HOLD_GRID]
    assert {hold_until(t) for t in times} == {NOW + HOLD_GRID}
    assert hold_until(start) == NOW  # on the grid already


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_a_held_record_comes_back_on_the_grid_after_at_least_the_hold_delay_and_less_than_one_interval_more(
    at: datetime,
) -> None:
    due = hold_until(at)
    assert HOLD_DELAY <= due - at < HOLD_DELAY + HOLD_GRID
    assert (due - NOW) % HOLD_GRID == timedelta(0)


GROUPS = sorted({g for e in MAPPING.by_entity for g in [call_group(MAPPING, e)] if g not in (None, PERSONS)})


def test_every_one_way_type_comes_back_at_its_own_odd_second_of_the_object_grid() -> None:
    assert GROUPS  # account, opportunity, the custom object
    marks = {g: (hold_until(NOW, g) - NOW) % OBJECT_HOLD_GRID for g in GROUPS}
    assert all(mark.seconds % 2 == 1 for mark in marks.values())  # never on the persons' even seconds
    assert len(set(marks.values())) == len(GROUPS)  # apart from each other
    assert hold_until(NOW, PERSONS) == hold_until(NOW)


@given(
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(GROUPS or ["account"]),
)
def test_a_held_object_comes_back_on_its_mark_after_at_least_the_hold_delay_and_less_than_one_object_interval_more(
    at: datetime, group: str
) -> None:
    due = hold_until(at, group)
    assert HOLD_DELAY <= due - at < HOLD_DELAY + OBJECT_HOLD_GRID
    assert (due - hold_until(NOW, group)) % OBJECT_HOLD_GRID == timedelta(0)  # the same second of every interval


def test_objects_held_within_one_object_interval_come_back_at_the_same_moment() -> None:
    for group in GROUPS:
        due = hold_until(NOW, group)
        start = due - HOLD_DELAY - OBJECT_HOLD_GRID  # held just after this, any time up to the due moment - delay
        times = [start + timedelta(milliseconds=1), start + OBJECT_HOLD_GRID / 2, start + OBJECT_HOLD_GRID]
        assert {hold_until(t, group) for t in times} == {due}
