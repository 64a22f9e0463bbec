"""May the sync user read a column, and write it back? One rule for the fields endpoints and for validate.

A field syncs only if the sync user can read its column: the column is valid for read through the Web API and,
when it is secured, the user's field (column) security privileges grant Read. A field the sync writes back to
Dynamics (on a two-way entity, neither one-way nor a lookup) also needs its column valid for update and, when
secured, the Update privilege. The verdict is a value: the first rule that fails, why, and what fixes it, so
every caller refuses (or reports) a column in the same words.

Pure: the caller reads the column's metadata and the user's privileges; anything with the attributes of
:class:`ColumnMetadata` and :class:`ColumnPrivileges` will do (the Dataverse client's ``AttributeInfo`` and
``ColumnPrivilege`` have them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shared.core.mapping import EntityMapping, FieldMapping

ONE_WAY = 'map it one way ("one_way": true)'


class ColumnMetadata(Protocol):
    @property
    def logical_name(self) -> str: ...
    @property
    def valid_for_read(self) -> bool: ...
    @property
    def valid_for_update(self) -> bool: ...
    @property
    def is_secured(self) -> bool: ...


class ColumnPrivileges(Protocol):
    """The sync user's field security privileges on one secured column."""

    @property
    def can_read(self) -> bool: ...
    @property
    def can_update(self) -> bool: ...


class Access(StrEnum):
    GRANTED = "granted"
    NOT_VALID_FOR_READ = "not_valid_for_read"  # the Web API cannot read the column, whoever asks
    NO_READ_PRIVILEGE = "no_read_privilege"  # secured, and the sync user's profiles do not grant Read
    READ_ONLY_COLUMN = "read_only_column"  # written back, but the column is not valid for update
    NO_UPDATE_PRIVILEGE = "no_update_privilege"  # written back, secured, and Update is not granted

    @property
    def readable(self) -> bool:
        return self not in (Access.NOT_VALID_FOR_READ, Access.NO_READ_PRIVILEGE)


@dataclass(frozen=True, slots=True)
class ColumnAccess:
    access: Access
    reason: str = ""
    fix: str = ""

    @property
    def granted(self) -> bool:
        return self.access is Access.GRANTED

    def __str__(self) -> str:
        return f"{self.reason}: {self.fix}" if self.reason else self.access.value


GRANTED = ColumnAccess(Access.GRANTED)


def writes_back(entity: EntityMapping, f: FieldMapping) -> bool:
    """Whether the sync writes this field to Dynamics (Marketo's changes to it flow back)."""
    return entity.rule.two_way and f.to_dynamics_allowed


def column_access(column: ColumnMetadata, privileges: ColumnPrivileges | None, *, writes_back: bool) -> ColumnAccess:
    """``privileges``: the sync user's on this column when it is secured (None: no privilege granted)."""
    name = column.logical_name
    if not column.valid_for_read:
        return ColumnAccess(
            Access.NOT_VALID_FOR_READ,
            f"{name} cannot be read through the Web API (it is not valid for read)",
            "map another column",
        )
    if column.is_secured and (privileges is None or not privileges.can_read):
        return ColumnAccess(
            Access.NO_READ_PRIVILEGE,
            f"the sync user cannot read {name}",
            "add it to a field security profile with Read",
        )
    if not writes_back:
        return GRANTED
    if not column.valid_for_update:
        return ColumnAccess(
            Access.READ_ONLY_COLUMN, f"{name} is read-only in Dynamics, and a two-way field writes it back", ONE_WAY
        )
    if column.is_secured and (privileges is None or not privileges.can_update):
        return ColumnAccess(
            Access.NO_UPDATE_PRIVILEGE,
            f"the sync user may read {name} but has no Update privilege on it, and a two-way field writes it back",
            f"allow Update on it in the field security profile, or {ONE_WAY}",
        )
    return GRANTED
