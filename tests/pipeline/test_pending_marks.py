"""Pending marks, as rules: what a mark becomes on a change, a deferral, a resend and a clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.pending import Change, MarkKey, PendingMark, clearable, deferred, first_version, marked, resent

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
KEY = MarkKey("contact", "c1")
V1 = first_version(T0)


def _change(deleted: bool = False, text: str = "n") -> Change:
    return Change(KEY, text, deleted)


def test_a_first_change_marks_the_record_due_after_the_grace_period() -> None:
    mark = marked(None, _change(), T0, GRACE)
    assert (mark.version, mark.attempts, mark.first_seen, mark.next_due_at) == (V1, 0, T0, T0 + GRACE)


@pytest.mark.parametrize(
    ("before", "after", "deleted"),
    [
        (False, False, False),
        (False, True, True),
        (True, False, True),  # a delete is sticky: a late update does not undo it
        (True, True, True),
    ],
)
def test_a_later_change_replaces_the_notification_and_a_delete_sticks(before: bool, after: bool, deleted: bool) -> None:
    first = marked(None, _change(before, "first"), T0, GRACE)
    second = marked(first, _change(after, "second"), T0 + timedelta(seconds=10), GRACE)
    assert (second.notification, second.deleted, second.version) == ("second", deleted, V1 + 1)
    assert second.first_seen == T0
    assert second.last_seen == T0 + timedelta(seconds=10)


def test_a_change_to_a_deferred_record_keeps_it_waiting_for_the_probe() -> None:
    probe = T0 + timedelta(hours=1)
    held = deferred(marked(None, _change(), T0, GRACE), _change(), T0, probe, "503", "marketo")
    again = marked(held, _change(), T0 + timedelta(minutes=1), GRACE)
    assert again.next_due_at == probe
    assert (again.attempts, again.waiting_on) == (1, "marketo")


@pytest.mark.parametrize(
    ("existing", "attempts", "version"),
    [(None, 1, V1), ("marked", 1, V1), ("deferred", 2, V1)],
)
def test_a_deferral_counts_an_attempt_and_keeps_the_version(existing: str | None, attempts: int, version: int) -> None:
    probe = T0 + timedelta(seconds=30)
    mark: PendingMark | None = None
    if existing is not None:
        mark = marked(None, _change(), T0, GRACE)
    if existing == "deferred":
        mark = deferred(mark, _change(), T0, probe, "503", "marketo")
    after = deferred(mark, _change(), T0, probe, "Marketo 503", "marketo")
    assert (after.attempts, after.version, after.next_due_at, after.last_error) == (
        attempts,
        version,
        probe,
        "Marketo 503",
    )


def test_a_resent_mark_is_due_again_a_grace_period_later() -> None:
    mark = marked(None, _change(), T0, GRACE)
    assert resent(mark, T0 + timedelta(hours=1), GRACE).next_due_at == T0 + timedelta(hours=1) + GRACE
    assert resent(mark, T0, GRACE).version == mark.version


@pytest.mark.parametrize(
    ("current_version", "read_version", "clears"),
    [(1, 1, True), (2, 1, False), (None, 1, False)],  # the first, second... version of a mark
)
def test_a_reconcile_clears_only_the_version_it_read(
    current_version: int | None, read_version: int, clears: bool
) -> None:
    current = None
    if current_version is not None:
        current = marked(None, _change(), T0, GRACE)
        for _ in range(current_version - 1):
            current = marked(current, _change(), T0, GRACE)
    assert clearable(current, V1 + read_version - 1) is clears


def test_a_mark_made_again_after_a_clear_is_not_cleared_by_a_batch_that_read_the_first() -> None:
    first = marked(None, _change(), T0, GRACE)
    again = marked(None, _change(), T0 + timedelta(microseconds=1), GRACE)  # cleared, then a new change
    assert not clearable(again, first.version)


# --- a property: any order of events leaves a mark iff an accepted change was not reconciled after it -----------

Event = tuple[str, int]  # ("change", _), ("start", batch), ("done", batch), ("fail", batch)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["change", "start", "done", "fail"]), st.integers(0, 2)), max_size=30))
def test_a_mark_remains_iff_some_accepted_change_was_not_reconciled_after_it(events: list[Event]) -> None:
    mark: PendingMark | None = None
    now = T0
    read: dict[int, int | None] = {}  # batch -> the mark version it read at its start
    covered: dict[int, int] = {}  # batch -> how many changes it will have seen (accepted before its start)
    accepted = 0
    reconciled_through = 0  # every change up to this one was re-read by a batch that finished
    for kind, batch in events:
        now += timedelta(seconds=1)
        if kind == "change":
            accepted += 1
            mark = marked(mark, _change(), now, GRACE)
        elif kind == "start" and batch not in read:
            read[batch] = mark.version if mark else None
            covered[batch] = accepted
        elif kind == "fail" and batch in read:
            mark = deferred(mark, _change(), now, now + timedelta(seconds=30), "503", "marketo") if mark else None
            del read[batch]
        elif kind == "done" and batch in read:
            version = read.pop(batch)
            reconciled_through = max(reconciled_through, covered.pop(batch))
            if version is not None and clearable(mark, version):
                mark = None
    assert (mark is not None) == (accepted > reconciled_through)
