"""A batch's history written at its end: each entry settled (done, failed, requeued), and a store that cannot take
it never fails the batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.history import HistoryEntry, Outcome
from shared.errors import RetryLater
from shared.pipeline.history import Retention, record_entries, record_history
from shared.pipeline.reconcile.batch import BatchReport
from shared.store.base import BATCH_LIMIT, HISTORY, StateStore, Write
from shared.store.model import TO_MARKETO, SyncErrorRecord
from shared.store.sqlite import sqlite_store
from tests.pipeline.reconcile_harness import Stack, stack

__all__ = ["stack"]

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RETENTION = Retention(days=14, entries=50)


def _entry(record: str) -> HistoryEntry:
    return HistoryEntry("contact", record, T0, "sync", "reconciled", (), "dataverse_webhook", "dynamics")


def _error(record: str) -> SyncErrorRecord:
    return SyncErrorRecord(
        entity="contact",
        record_id=record,
        operation="update",
        direction=TO_MARKETO,
        code="1003",
        message="refused",
        last_seen=T0,
    )


def test_each_entry_is_written_with_what_became_of_its_decision() -> None:
    store = sqlite_store()
    report = BatchReport(history=[_entry("c1"), _entry("c2"), _entry("c3")])
    report.errors.append(_error("c2"))
    report.redecided.add(("contact", "c3"))
    assert record_history(store, report) == 3
    outcomes = {
        rid: record_entries(store, "contact", rid, now=T0, retention=RETENTION)[0].outcome for rid in ("c1", "c2", "c3")
    }
    assert outcomes == {"c1": Outcome.DONE, "c2": Outcome.FAILED, "c3": Outcome.REQUEUED}


def test_a_batch_without_entries_costs_nothing() -> None:
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the store was called: {name}")

    assert record_history(StateStore(NoCalls()), BatchReport()) == 0


def test_a_store_that_cannot_take_the_history_does_not_fail_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    store = sqlite_store()

    def down(table: str, pk: str, writes: Sequence[Write]) -> dict[str, str | None]:
        raise RetryLater("state store unavailable (HTTP 503)")

    store.rows.write_many = down  # type: ignore[method-assign]
    assert record_history(store, BatchReport(history=[_entry("c1")])) == 0
    assert "1 entries not written (RetryLater)" in caplog.text


def test_what_is_read_is_capped_by_the_retention_whatever_the_limit_asked() -> None:
    store = sqlite_store()
    record_history(store, BatchReport(history=[_entry("c1") for _ in range(5)]))
    tight = Retention(days=14, entries=3)
    assert len(record_entries(store, "contact", "c1", now=T0, retention=tight)) == 3
    assert len(record_entries(store, "contact", "c1", now=T0, retention=tight, limit=100)) == 3
    assert len(record_entries(store, "contact", "c1", now=T0, retention=tight, limit=2)) == 2


class HistoryRequests:
    """The store's rows, counting the requests made to the history table (write_many: one per 100 rows)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(table: str, *args: Any, **kwargs: Any) -> Any:
            if table == HISTORY:
                self.requests += math.ceil(len(args[1]) / BATCH_LIMIT) if name == "write_many" else 1
            return method(table, *args, **kwargs)

        return counted


def test_a_reconcile_of_300_records_writes_its_history_in_3_requests_and_its_echoes_in_none(stack: Stack) -> None:
    ids = [
        stack.create("contact", firstname=f"F{i}", lastname=f"L{i}", emailaddress1=f"p{i}@example.com")
        for i in range(300)
    ]
    counting = HistoryRequests(stack.store.rows)
    stack.store.rows = counting
    created = stack.sync(*(stack.changed("contact", rid) for rid in ids))
    assert not created.errors
    assert len(created.history) == 300
    assert counting.requests == 3 + 1  # 300 entries, and the day's marker (once per process and day)
    counting.requests = 0
    echo = stack.sync(*(stack.changed("contact", rid) for rid in ids))  # nothing changed since
    assert (len(echo.decisions), echo.history, counting.requests) == (300, [], 0)
    for rid in ids:
        stack.update("contact", rid, jobtitle="Engineer")
    changed = stack.sync(*(stack.changed("contact", rid) for rid in ids))
    assert (len(changed.history), counting.requests) == (300, 3)
