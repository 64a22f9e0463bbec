"""The field catalogue of a mapped entity: every Dynamics column, whether it is mapped (and to which Marketo
field), whether the sync user can read it, and whether the sync can convert its type.

One metadata read per entity (the columns with their labels), plus the sync user's column security privileges
when the table has secured columns, kept for :data:`CACHE_SECONDS` of the product's clock; the mapping part is
taken fresh from the mapping on every call, so a field just added shows as mapped at once. Readability follows
the rule adding a field applies (:func:`shared.core.access.column_access`, the sync user's Read), and
``writable`` the one a two-way field must pass too (valid for update, and Update when secured); the type
check is :func:`shared.core.fields.derive_type`'s (a DateTime column that is date-only syncs as a date, which
only adding the field reads).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.core.access import column_access
from shared.core.fields import ColumnFacts, derive_type
from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldMapping, FieldType, SyncMapping
from shared.dataverse.client import ColumnDescription, ColumnPrivilege, DataverseClient
from shared.errors import NotFound

CACHE_SECONDS = 60
MULTI_SELECT_METADATA = "MultiSelectPicklistAttributeMetadata"


@dataclass(frozen=True, slots=True)
class TableColumns:
    """What Dataverse said about one table's columns, and the sync user's privileges on its secured ones."""

    columns: list[ColumnDescription]
    privileges: dict[str, ColumnPrivilege]  # by attribute MetadataId; empty when nothing is secured
    read_at: datetime


def sync_type(column: ColumnDescription) -> FieldType | str:
    """The value type the sync would convert the column as, or why it cannot sync it."""
    if column.attribute_type == "Virtual":
        if column.metadata_type == MULTI_SELECT_METADATA:
            return FieldType.MULTI_CHOICE
        return "columns of type Virtual cannot be synced unless they are multi-select choices"
    return derive_type(ColumnFacts(column.attribute_type))


def catalogue_row(
    entity: EntityMapping, column: ColumnDescription, privilege: ColumnPrivilege | None, mapped: FieldMapping | None
) -> dict[str, Any]:
    """One column as the catalogue lists it (pure)."""
    kind = sync_type(column)
    reason: str | None = None if isinstance(kind, FieldType) else kind
    if column.logical_name in (entity.id_column, SYNC_FILTER_COLUMN):
        reason = "used by the sync itself (record id or sync filter)"
    access = column_access(column, privilege, writes_back=False)
    write_access = column_access(column, privilege, writes_back=True)
    return {
        "column": column.logical_name,
        "label": column.display_name or column.logical_name,
        "type": column.attribute_type,
        "sync_type": kind.value if isinstance(kind, FieldType) else None,
        "mapped": mapped is not None,
        "marketo": mapped.marketo if mapped is not None else None,
        "state": mapped.state.value if mapped is not None else None,
        "readable": access.access.readable,
        "writable": write_access.granted,  # a two-way field needs it (one-way fields and lookups do not)
        "secured": column.is_secured,
        "valid_for_sync": reason is None,
        "reason": reason if reason is not None else (None if access.access.readable else str(access)),
    }


def catalogue(entity: EntityMapping, table: TableColumns) -> dict[str, Any]:
    """``GET /api/mapping/{entity}/catalogue``: mapped columns first, then the rest, each by name."""
    rows = [
        catalogue_row(entity, c, table.privileges.get(c.metadata_id or ""), entity.by_column.get(c.logical_name))
        for c in table.columns
    ]
    rows.sort(key=lambda r: (not r["mapped"], r["column"]))
    return {
        "entity": entity.entity,
        "count": len(rows),
        "mapped": sum(1 for r in rows if r["mapped"]),
        "read_at": table.read_at.isoformat(timespec="seconds"),
        "columns": rows,
    }


class ColumnCache:
    """Each Dataverse client's table columns, read at most once per ``ttl`` of the product's clock."""

    def __init__(self, ttl: timedelta = timedelta(seconds=CACHE_SECONDS)) -> None:
        self.ttl = ttl
        self._tables: weakref.WeakKeyDictionary[DataverseClient, dict[str, TableColumns]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def columns(
        self, dataverse: DataverseClient, entity: str, sync_user_id: Callable[[], str], now: datetime
    ) -> TableColumns:
        with self._lock:
            cached = self._tables.get(dataverse, {}).get(entity)
        if cached is not None and timedelta(0) <= now - cached.read_at < self.ttl:
            return cached
        columns = dataverse.describe_columns(entity)
        privileges = dataverse.column_privileges(sync_user_id()) if any(c.is_secured for c in columns) else {}
        fresh = TableColumns(columns, privileges, now)
        with self._lock:
            self._tables.setdefault(dataverse, {})[entity] = fresh
        return fresh


def entity_catalogue(
    entity_name: str,
    *,
    mapping: SyncMapping,
    dataverse: DataverseClient,
    sync_user_id: Callable[[], str],
    cache: ColumnCache,
    now: datetime,
) -> dict[str, Any]:
    """The catalogue of a mapped entity; :class:`NotFound` for one the mapping does not sync."""
    entity = mapping.by_entity.get(entity_name.lower())
    if entity is None:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    return catalogue(entity, cache.columns(dataverse, entity.entity, sync_user_id, now))
