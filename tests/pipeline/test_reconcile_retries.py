"""A record that changed under the reconcile is decided again, never overwritten from stale reads.

Another instance saving the baseline first, another user editing the Dynamics record between the read and the
write-back, a delete recorded while the link moves: each puts the notification back on the queue with one
attempt more, until :data:`MAX_ATTEMPTS`, when it becomes a ``retries-exhausted`` sync error.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.core.mapping import DELETED_FLAG_FIELD
from shared.pipeline.notification import Kind
from shared.pipeline.reconcile import MAX_ATTEMPTS
from tests.pipeline.reconcile_harness import ADA, QUEUE, Stack, stack

__all__ = ["stack"]


def test_a_baseline_saved_first_by_another_instance_requeues_the_record_with_one_attempt_more(stack: Stack) -> None:
    lead_id = stack.create("lead", **ADA)
    stack.store.lose_next_saves(1)
    before = datetime.now(UTC)

    report = stack.sync(stack.changed("lead", lead_id))

    assert [(n.dynamics_id, n.attempt) for n in report.requeued] == [(lead_id, 1)]
    ((queue, message),) = stack.queue.sent
    assert queue == QUEUE
    assert message.scheduled_at is not None
    assert message.scheduled_at > before  # decided again in a moment, not at once
    assert stack.store.get_link("lead", lead_id) is None  # the lost save stored nothing
    assert stack.store.list_errors() == []
    (again,) = stack.queue.notes()
    stack.sync(again)  # the person created the first time is found by e-mail, not created twice
    link = stack.store.get_link("lead", lead_id)
    assert link is not None
    assert link.marketo_id == str(stack.person("ada@example.com")["id"])
    assert len(stack.mk.find_leads("email", "ada@example.com")) == 1


def test_a_record_that_keeps_losing_the_race_becomes_a_retries_exhausted_error_at_max_attempts(stack: Stack) -> None:
    lead_id = stack.create("lead", **ADA)
    stack.store.lose_next_saves(1)

    report = stack.sync(stack.changed("lead", lead_id, attempt=MAX_ATTEMPTS - 1))

    assert report.requeued == []
    assert stack.queue.sent == []
    (error,) = stack.store.list_errors()
    assert (error.record_id, error.code, error.operation) == (lead_id, "retries-exhausted", "reconcile")
    assert "another instance saved this record's baseline first" in error.message


def test_a_dynamics_record_edited_between_read_and_write_back_is_requeued_not_overwritten(stack: Stack) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    baseline = stack.store.get_link("lead", lead_id).baseline  # type: ignore[union-attr]
    stack.mk.change_lead(person["id"], title="Chief Engineer")
    stack.dataverse.meanwhile = lambda: stack.update("lead", lead_id, jobtitle="Countess")  # the ETag moves: 412

    report = stack.sync(stack.changed_in_marketo(person["id"]))

    assert [(n.marketo_id, n.attempt) for n in report.requeued] == [(str(person["id"]), 1)]
    assert stack.dv.get("lead", lead_id)["jobtitle"] == "Countess"  # type: ignore[index]
    assert stack.store.get_link("lead", lead_id).baseline == baseline  # type: ignore[union-attr]
    assert stack.store.list_errors() == []
    (again,) = stack.queue.notes()
    stack.sync(again)  # decided again from fresh reads: both sides changed the title, a collision
    assert stack.store.get_link("lead", lead_id).baseline != baseline  # type: ignore[union-attr]


def test_a_delete_whose_link_save_loses_the_race_is_requeued_and_recorded_on_the_next_attempt(stack: Stack) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    stack.dv.user_delete("lead", lead_id, user_id=stack.tenants.admin_user_id)
    stack.store.lose_next_saves(1)

    report = stack.sync(stack.changed("lead", lead_id, kind=Kind.DELETE))

    assert stack.mk.lead(person["id"])[DELETED_FLAG_FIELD] is True  # type: ignore[index]
    assert stack.store.get_link("lead", lead_id).deleted_in_dynamics is False  # type: ignore[union-attr]
    assert [(n.kind, n.attempt) for n in report.requeued] == [(Kind.DELETE, 1)]
    (again,) = stack.queue.notes()
    stack.sync(again)
    assert stack.store.get_link("lead", lead_id).deleted_in_dynamics is True  # type: ignore[union-attr]
    assert stack.mk.lead(person["id"]) is not None  # flagged, never deleted
    assert stack.store.list_errors() == []
