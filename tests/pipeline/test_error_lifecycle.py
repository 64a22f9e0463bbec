"""A sync error's life in the reconcile: one per record, field and cause (a repeat counts), the right direction,
the record's label and Marketo id; resolved by the sync once the record reconciles cleanly, and cheap to check."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.pending import PERSON
from shared.pipeline.sync_errors import pending_gave_up
from shared.store.base import ERRORS
from shared.store.model import TO_DYNAMICS, ErrorStatus
from tests.pipeline.reconcile_harness import ADA, GRACE, Stack, stack

__all__ = ["stack"]


class ErrorTableCalls:
    """The store's rows, counting the requests that touch the sync errors' table."""

    def __init__(self, rows: Any) -> None:
        self._rows = rows
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._rows, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if args and args[0] == ERRORS:
                self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def test_a_bad_marketo_value_is_one_open_error_towards_dynamics_counted_on_repeats_then_resolved(
    stack: Stack,
) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    stack.mk.change_lead(person["id"], leadRating="Tepid")  # no such option in Dynamics
    stack.sync(stack.changed_in_marketo(person["id"]))
    (error,) = stack.store.list_errors()
    assert (error.record_id, error.field, error.code, error.direction) == (
        lead_id,
        "leadqualitycode",
        "conversion",
        TO_DYNAMICS,
    )
    assert (error.status, error.count, error.label) == (ErrorStatus.OPEN, 1, "Ada Lovelace <ada@example.com>")
    assert error.marketo_id == str(person["id"])

    stack.mk.change_lead(person["id"], title="Chief Engineer")  # another edit: the bad value is met again
    stack.sync(stack.changed_in_marketo(person["id"]))
    stack.sync(stack.changed("lead", lead_id))
    (again,) = stack.store.list_errors()
    assert (again.id, again.count, again.status) == (error.id, 3, ErrorStatus.OPEN)
    assert stack.dv.get("lead", lead_id)["jobtitle"] == "Chief Engineer"  # type: ignore[index]  # the rest synced

    stack.mk.change_lead(person["id"], leadRating="Warm")  # fixed in Marketo
    stack.sync(stack.changed_in_marketo(person["id"]))
    resolved = stack.store.get_error(error.id)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by, resolved.count) == (ErrorStatus.RESOLVED, "sync", 3)
    assert stack.dv.get("lead", lead_id)["leadqualitycode"] == 2  # type: ignore[index]


def test_a_record_level_failure_resolves_when_the_record_syncs_and_reopens_counted_when_it_fails_again(
    stack: Stack,
) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    column = stack.dv.tables["lead"].columns["jobtitle"]
    stack.dv.tables["lead"].columns["jobtitle"] = replace(column, max_length=10)  # Dataverse refuses longer titles
    stack.mk.change_lead(person["id"], title="Chief Engineer")
    stack.sync(stack.changed_in_marketo(person["id"]))
    (error,) = stack.store.list_errors()
    assert (error.field, error.direction, error.status) == (None, TO_DYNAMICS, ErrorStatus.OPEN)

    stack.store.errors.move(error.id, ErrorStatus.RETRYING, by="admin", at=error.last_seen)
    stack.sync(stack.changed("lead", lead_id))  # the retry: fails again
    failed = stack.store.get_error(error.id)
    assert failed is not None
    assert (failed.status, failed.count, failed.attempts) == (ErrorStatus.OPEN, 2, 1)

    stack.dv.tables["lead"].columns["jobtitle"] = column  # fixed in Dynamics
    stack.sync(stack.changed("lead", lead_id))
    resolved = stack.store.get_error(error.id)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by) == (ErrorStatus.RESOLVED, "sync")
    assert stack.dv.get("lead", lead_id)["jobtitle"] == "Chief Engineer"  # type: ignore[index]


def test_an_ignored_error_stays_ignored_when_met_again(stack: Stack) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    stack.mk.change_lead(person["id"], leadRating="Tepid")
    stack.sync(stack.changed_in_marketo(person["id"]))
    (error,) = stack.store.list_errors()
    stack.store.errors.move(error.id, ErrorStatus.IGNORED, by="admin", at=error.last_seen)
    stack.sync(stack.changed("lead", lead_id))
    again = stack.store.get_error(error.id)
    assert again is not None
    assert (again.status, again.count) == (ErrorStatus.IGNORED, 2)
    stack.mk.change_lead(person["id"], leadRating="Hot")
    stack.sync(stack.changed_in_marketo(person["id"]))
    assert stack.store.get_error(error.id).status is ErrorStatus.IGNORED  # type: ignore[union-attr]


def test_with_no_open_errors_a_clean_batch_reads_the_error_index_once_per_entity(stack: Stack) -> None:
    lead_id, _ = stack.synced_person("lead", **ADA)
    contact_id, _ = stack.synced_person("contact", **GRACE)
    account_id = stack.create("account", name="Contoso")
    counting = ErrorTableCalls(stack.store.rows)
    stack.store.rows = counting
    stack.update("lead", lead_id, jobtitle="CTO")
    stack.update("contact", contact_id, jobtitle="Commodore")
    report = stack.sync(
        stack.changed("lead", lead_id), stack.changed("contact", contact_id), stack.changed("account", account_id)
    )
    assert not report.errors
    assert dict(counting.calls) == {"get_many": 2}  # leads and contacts together, accounts: one index read each


def test_a_marketo_persons_parked_change_resolves_when_its_linked_record_reconciles(stack: Stack) -> None:
    lead_id, person = stack.synced_person("lead", **ADA)
    parked = stack.store.add_error(
        pending_gave_up(PERSON, str(person["id"]), TO_DYNAMICS, 20, None, at=datetime.now(UTC) - timedelta(minutes=1))
    )
    stack.mk.change_lead(person["id"], title="Countess")
    stack.sync(stack.changed_in_marketo(person["id"]))
    resolved = stack.store.get_error(parked.id)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by) == (ErrorStatus.RESOLVED, "sync")
    assert stack.dv.get("lead", lead_id)["jobtitle"] == "Countess"  # type: ignore[index]
