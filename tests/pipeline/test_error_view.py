"""The Sync Errors view's own rules: filters read from query parameters (a bad one refused, naming it), rows as
people read them (labels, links, times to the second), and an export a spreadsheet cannot mistake for formulas."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from shared.core.record_links import RecordLinks, record_label
from shared.errors import InvalidRequest
from shared.pipeline.error_view import COLUMNS, error_query, error_row, export_errors
from shared.store.model import ErrorQuery, ErrorStatus, SyncErrorRecord
from shared.store.sqlite import sqlite_store

LINKS = RecordLinks("https://contoso.crm.dynamics.com/", "https://app-ab12.marketo.com")
AT = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _error(**changes: object) -> SyncErrorRecord:
    base = {
        "entity": "lead",
        "record_id": "5a4b3c2d-0000-4000-8000-00000000000a",
        "operation": "convert",
        "direction": "marketo_to_dynamics",
        "code": "conversion",
        "message": "unknown option label 'Tepid'",
        "last_seen": AT,
        "field": "leadqualitycode",
        "marketo_id": "1001",
        "label": "Ada Lovelace <ada@example.com>",
    }
    return SyncErrorRecord(**{**base, **changes})  # type: ignore[arg-type]


def test_filters_are_read_from_the_query_and_empty_ones_ignored() -> None:
    query = error_query(
        {
            "entity": "lead",
            "direction": "marketo_to_dynamics",
            "error_code": "conversion",
            "code": "the-function-key",  # Azure's key in the query: never a filter
            "status": "ignored",
            "q": " tepid ",
            "since": "2026-12-01T00:00:00Z",
            "until": "2026-12-02",
            "limit": "20",
        }
    )
    assert query == ErrorQuery(
        entity="lead",
        direction="marketo_to_dynamics",
        code="conversion",
        status=ErrorStatus.IGNORED,
        search="tepid",
        since=datetime(2026, 12, 1, tzinfo=UTC),
        until=datetime(2026, 12, 2, tzinfo=UTC),
        limit=20,
    )
    assert error_query({"status": "", "q": ""}) == ErrorQuery()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"direction": "sideways"}, "direction"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_a_bad_filter_is_refused_naming_the_parameter(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        error_query(params)
    assert refused.value.field == field
    assert refused.value.code == "bad-query"


def test_a_row_has_the_contracts_columns_links_and_times_to_the_second() -> None:
    row = error_row(_error(), LINKS)
    assert tuple(row) == COLUMNS
    assert row["dynamics_url"] == (
        "https://contoso.crm.dynamics.com/main.aspx?etn=lead&id=5a4b3c2d-0000-4000-8000-00000000000a&pagetype=entityrecord"
    )
    assert row["marketo_url"] == "https://app-ab12.marketo.com/leadDatabase/loadLeadDetail?leadId=1001"
    assert (row["first_seen"], row["last_seen"]) == ("2026-12-01T12:00:00+00:00", "2026-12-01T12:00:00+00:00")
    account = error_row(_error(entity="account", marketo_id="77"), LINKS)
    assert account["marketo_url"] is None  # only persons have a lead page
    person = error_row(_error(entity="person", record_id="88", marketo_id=None, field=None), LINKS)
    assert (person["marketo_id"], person["dynamics_url"]) == ("88", None)
    assert person["marketo_url"].endswith("leadId=88")


def test_labels_come_from_the_values_read() -> None:
    assert record_label({"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com"}) == (
        "Ada Lovelace <ada@example.com>"
    )
    assert record_label({"name": "Contoso"}) == "Contoso"
    assert record_label({"emailaddress1": "ada@example.com", "firstname": None}) == "ada@example.com"
    assert record_label({"jobtitle": "Engineer"}) == ""


def test_the_export_quotes_what_a_spreadsheet_would_run_as_a_formula() -> None:
    store = sqlite_store()
    store.add_error(_error(label='=HYPERLINK("http://evil")', message="+1 555 0100 is too long"))
    text = export_errors(store, ErrorQuery(), LINKS)
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["label"].startswith("'=")
    assert row["message"].startswith("'+1")
    assert row["direction"] == "marketo_to_dynamics"
