"""One rule for "may the sync user read this column (and write it back)": every case, with its words."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.core.access import Access, column_access, writes_back
from shared.core.mapping import load_mapping


@dataclass(frozen=True)
class Column:
    logical_name: str = "new_notes"
    valid_for_read: bool = True
    valid_for_update: bool = True
    is_secured: bool = False


@dataclass(frozen=True)
class Privileges:
    can_read: bool
    can_update: bool


SECURED = Column(is_secured=True)
READ = Privileges(can_read=True, can_update=False)
READ_UPDATE = Privileges(can_read=True, can_update=True)
NONE = Privileges(can_read=False, can_update=False)


@pytest.mark.parametrize(
    ("column", "privileges", "written_back", "expected"),
    [
        (Column(), None, False, Access.GRANTED),
        (Column(), None, True, Access.GRANTED),
        (Column(valid_for_read=False), None, False, Access.NOT_VALID_FOR_READ),
        (Column(valid_for_read=False, is_secured=True), READ_UPDATE, True, Access.NOT_VALID_FOR_READ),
        (SECURED, None, False, Access.NO_READ_PRIVILEGE),
        (SECURED, NONE, False, Access.NO_READ_PRIVILEGE),
        (SECURED, NONE, True, Access.NO_READ_PRIVILEGE),
        (SECURED, READ, False, Access.GRANTED),
        (SECURED, READ, True, Access.NO_UPDATE_PRIVILEGE),
        (SECURED, READ_UPDATE, True, Access.GRANTED),
        (Column(valid_for_update=False), None, False, Access.GRANTED),
        (Column(valid_for_update=False), None, True, Access.READ_ONLY_COLUMN),
        (Column(valid_for_update=False, is_secured=True), READ_UPDATE, True, Access.READ_ONLY_COLUMN),
        (Column(), NONE, False, Access.GRANTED),  # privileges only matter for a secured column
    ],
)
def test_a_field_syncs_if_readable_and_writes_back_only_if_updatable_too(
    column: Column, privileges: Privileges | None, written_back: bool, expected: Access
) -> None:
    verdict = column_access(column, privileges, writes_back=written_back)
    assert verdict.access is expected
    assert verdict.granted is (expected is Access.GRANTED)
    assert verdict.access.readable is (expected not in (Access.NOT_VALID_FOR_READ, Access.NO_READ_PRIVILEGE))


@pytest.mark.parametrize(
    ("column", "privileges", "written_back", "words"),
    [
        (SECURED, None, False, "the sync user cannot read new_notes: add it to a field security profile with Read"),
        (Column(valid_for_read=False), None, False, "new_notes cannot be read through the Web API"),
        (SECURED, READ, True, "has no Update privilege on it"),
        (SECURED, READ, True, 'or map it one way ("one_way": true)'),
        (Column(valid_for_update=False), None, True, "read-only in Dynamics, and a two-way field writes it back: map"),
    ],
)
def test_a_refused_column_is_named_with_the_missing_privilege_and_the_fix(
    column: Column, privileges: Privileges | None, written_back: bool, words: str
) -> None:
    assert words in str(column_access(column, privileges, writes_back=written_back))


MAPPING = load_mapping(
    {
        "entities": [
            {
                "entity": "lead",
                "fields": [
                    {"dynamics": "jobtitle", "marketo": "title", "type": "text"},
                    {"dynamics": "new_score", "marketo": "score", "type": "integer", "one_way": True},
                    {"dynamics": "parentaccountid", "marketo": "accountId", "type": "lookup"},
                ],
            },
            {"entity": "account", "fields": [{"dynamics": "name", "marketo": "company", "type": "text"}]},
        ]
    }
)


@pytest.mark.parametrize(
    ("entity", "column", "expected"),
    [("lead", "jobtitle", True), ("lead", "new_score", False), ("lead", "parentaccountid", False),
     ("account", "name", False)],
)  # fmt: skip
def test_only_two_way_fields_that_are_neither_one_way_nor_lookups_write_back(
    entity: str, column: str, expected: bool
) -> None:
    mapped = MAPPING.get(entity)
    assert writes_back(mapped, mapped.by_column[column]) is expected
