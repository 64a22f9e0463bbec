"""The organisation's rows: create, update, delete with row versions (ETags), a change log, column security.

Each committed change bumps one organisation-wide version: it is the row's ETag (``W/"<version>"``) and the
position in the change log that delta tokens point into. Every write made by a caller is handed to
``on_write`` (the plug-in pipeline) after it is committed; ``seed`` writes without side effects (test setup).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.simulators.dataverse import errors
from local.simulators.dataverse.key_order import KeyOrder
from local.simulators.dataverse.schema import Column, Table, metadata_id
from local.simulators.dataverse.validation import (
    check_required,
    check_status,
    coerce,
    default_status,
)


@dataclass(slots=True)
class State:
    rows: dict[str, dict[str, dict[str, Any]]]
    versions: dict[str, dict[str, int]]
    log: dict[str, list[tuple[int, str, str]]]
    version: int


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    depth: int = 1


@dataclass(frozen=True, slots=True)
class Write:
    """One committed change, as the plug-in pipeline sees it."""

    message: str  # Create, Update, Delete
    table: Table
    record_id: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    sent: frozenset[str]  # the wire names the request set (the "Target" the caller sent)
    caller: Caller


def now_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Organisation:
    tables: dict[str, Table]
    now: Callable[[], datetime]
    on_write: Callable[[Write], None] = lambda write: None
    expire_change_tracking_days: float = 7  # the organisation setting ExpireChangeTrackingInDays
    state: State = field(init=False)
    lock: threading.RLock = field(init=False, default_factory=threading.RLock)
    grants: dict[str, dict[str, tuple[bool, bool, bool]]] = field(init=False, default_factory=dict)
    read_denied: dict[str, set[str]] = field(init=False, default_factory=dict)  # user -> tables its roles cannot read
    orders: dict[str, KeyOrder] = field(init=False, default_factory=dict)  # table -> its ids in primary-key order

    def __post_init__(self) -> None:
        names = list(self.tables)
        self.state = State({t: {} for t in names}, {t: {} for t in names}, {t: [] for t in names}, 1000)

    # --- lookups -----------------------------------------------------------------------------------------------

    def by_set(self, entity_set: str) -> Table | None:
        return next((t for t in self.tables.values() if t.entity_set == entity_set), None)

    def rows(self, table: Table) -> dict[str, dict[str, Any]]:
        return self.state.rows.setdefault(table.logical_name, {})

    def ordered(self, table: Table) -> KeyOrder:
        """The table's ids in primary-key order (SQL Server's), kept in step with every create and delete."""
        order = self.orders.get(table.logical_name)
        if order is None:
            order = self.orders[table.logical_name] = KeyOrder.of(list(self.rows(table)))
        return order

    def row(self, table: Table, record_id: str) -> dict[str, Any] | None:
        return self.rows(table).get(record_id)

    def etag(self, table: Table, record_id: str) -> str:
        return f'W/"{self.state.versions[table.logical_name][record_id]}"'

    def resolve(self, entity_set: str, record_id: str) -> str | None:
        """The logical name of the table a bound record lives in, if the record exists."""
        target = self.by_set(entity_set)
        return target.logical_name if target is not None and record_id in self.rows(target) else None

    def lookup_target(self, column: Column, record_id: str) -> Table | None:
        """Which of a lookup's tables holds ``record_id`` (polymorphic lookups: the first that has it)."""
        for name in column.all_targets:
            target = self.tables.get(name)
            if target is not None and record_id in self.rows(target):
                return target
        first = column.all_targets[0] if column.all_targets else None
        return self.tables.get(first) if first else None

    def can(self, user_id: str, table: Table, column: Column, index: int) -> bool:
        """Field security: 0 read, 1 update, 2 create; unsecured columns are open to everyone."""
        if not column.secured:
            return True
        grants = self.grants.get(user_id, {})
        return bool(grants.get(metadata_id(table.logical_name, column.name), (False, False, False))[index])

    def check_read(self, caller: Caller, table: Table) -> None:
        """Table privileges: a security role without Read on the table answers as Dataverse does (PrivilegeDenied)."""
        if table.logical_name in self.read_denied.get(caller.user_id, set()):
            schema = table.schema_name or table.logical_name
            raise errors.ApiError(
                403,
                "0x80040220",
                f"Principal user (Id={caller.user_id}, type=8, roleCount=1, privilegeCount=411, accessMode='0 "
                f"Read-Write'), is missing prvRead{schema} privilege (Id={metadata_id(table.logical_name, 'prvRead')}) "
                f"for entity '{table.logical_name}'. context.Caller={caller.user_id}. Consider adding missed privilege "
                "to one of the principal (user/team) roles.",
            )

    def snapshot(self) -> State:
        return copy.deepcopy(self.state)

    def restore(self, state: State) -> None:
        self.state = state
        self.orders.clear()

    # --- writes ------------------------------------------------------------------------------------------------

    def _commit(self, table: Table, row_id: str, row: dict[str, Any] | None, kind: str) -> None:
        state = self.state
        state.version += 1
        order = self.orders.get(table.logical_name)
        if row is None:
            self.rows(table).pop(row_id, None)
            state.versions.setdefault(table.logical_name, {}).pop(row_id, None)
            if order is not None:
                order.remove(row_id)
        else:
            if order is not None and row_id not in self.rows(table):
                order.add(row_id)
            self.rows(table)[row_id] = row
            state.versions.setdefault(table.logical_name, {})[row_id] = state.version
        state.log.setdefault(table.logical_name, []).append((state.version, row_id, kind))

    def _derive(self, table: Table, row: dict[str, Any]) -> None:
        """Values the platform computes: full names, and a status reason that follows a new state."""
        if "fullname" in table.columns and table.logical_name in {"lead", "contact", "systemuser"}:
            row["fullname"] = " ".join(p for p in (row.get("firstname"), row.get("lastname")) if p) or None
        if "yominame" in table.columns and "name" in table.columns:
            row["yominame"] = row.get("name")

    def _new_row(self, table: Table, row_id: str, stored: Mapping[str, Any], owner: str | None) -> dict[str, Any]:
        now = now_iso(self.now())
        row: dict[str, Any] = {c.wire_name: None for c in table.columns.values()}
        row.update({table.primary_id: row_id, "createdon": now, "modifiedon": now})
        if "statecode" in table.columns:
            row["statecode"] = 0
            row["statuscode"] = default_status(table, 0) or 1
        for name in ("_ownerid_value", "_createdby_value", "_modifiedby_value", "_administratorid_value"):
            if table.column_for(name) is not None:
                row[name] = owner
        for column in table.columns.values():
            if column.default is not None and row.get(column.wire_name) is None:
                row[column.wire_name] = column.default
        row.update(stored)
        if "statecode" in stored and "statuscode" not in stored:
            row["statuscode"] = default_status(table, int(stored["statecode"])) or row["statuscode"]
        self._derive(table, row)
        return row

    def seed(self, table: Table, values: Mapping[str, Any], record_id: str | None = None) -> str:
        """Put a row in place without side effects or column checks beyond types (test setup)."""
        stored = coerce(table, values, self.resolve, creating=True, web_api=False)
        row_id = (record_id or str(stored.pop(table.primary_id, None) or uuid.uuid4())).lower()
        stored.pop(table.primary_id, None)
        self._commit(table, row_id, self._new_row(table, row_id, stored, None), "upsert")
        return row_id

    def seed_many(self, table: Table, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Rows put in place as :meth:`seed` puts one (bulk test setup: a million rows in seconds). The first is
        coerced and checked; the rest, when that coercion changed nothing and they give the same columns, are laid
        over a copy of it rather than built column by column. Returns how many."""
        template: dict[str, Any] | None = None
        columns: frozenset[str] = frozenset()
        count = 0
        for record_id, values in rows:
            row_id = record_id.lower()
            if template is None or frozenset(values) != columns:
                stored = coerce(table, values, self.resolve, creating=True, web_api=False)
                self.seed(table, values, row_id)
                if dict(stored) == dict(values):
                    template, columns = self.rows(table)[row_id], frozenset(values)
            else:
                row = dict(template)
                row.update(values)
                row[table.primary_id] = row_id
                self._derive(table, row)
                self._commit(table, row_id, row, "upsert")
            count += 1
        return count

    def create(
        self,
        table: Table,
        values: Mapping[str, Any],
        caller: Caller,
        *,
        record_id: str | None = None,
        web_api: bool = True,
        check: Callable[[Table, Mapping[str, Any]], None] | None = None,
    ) -> str:
        stored = coerce(table, values, self.resolve, creating=True, web_api=web_api)
        for wire, value in list(stored.items()):
            column = table.column_for(wire)
            if column is not None and not self.can(caller.user_id, table, column, 2):
                raise _secured(column, "create")
            if wire == table.primary_id:
                stored.pop(wire)
                record_id = record_id or str(value)
        row_id = (record_id or str(uuid.uuid4())).lower()
        if row_id in self.rows(table):
            raise errors.already_exists()
        row = self._new_row(table, row_id, stored, caller.user_id)
        if web_api:
            check_required(table, row)
        check_status(table, row)
        if check is not None:
            check(table, row)
        self._commit(table, row_id, row, "upsert")
        self.on_write(Write("Create", table, row_id, None, row, frozenset(stored), caller))
        return row_id

    def check_etag(self, table: Table, record_id: str, if_match: str | None) -> None:
        """``If-Match``: ``*`` or the current ETag, else 412; a missing row is 404 either way."""
        if record_id not in self.rows(table):
            raise errors.not_found(table.logical_name, record_id)
        if if_match is None:
            return
        wanted = {tag.strip() for tag in if_match.split(",")}
        if "*" not in wanted and self.etag(table, record_id) not in wanted:
            raise errors.version_mismatch()

    def update(
        self,
        table: Table,
        record_id: str,
        values: Mapping[str, Any],
        caller: Caller,
        if_match: str | None,
        *,
        web_api: bool = True,
        check: Callable[[Table, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.check_etag(table, record_id, if_match)
        stored = coerce(table, values, self.resolve, creating=False, web_api=web_api)
        stored.pop(table.primary_id, None)
        for wire in stored:
            column = table.column_for(wire)
            if column is not None and not self.can(caller.user_id, table, column, 1):
                raise _secured(column, "update")
        before = self.rows(table)[record_id]
        after = {**before, **stored, "modifiedon": now_iso(self.now()), "_modifiedby_value": caller.user_id}
        if "statecode" in stored and "statuscode" not in stored:
            after["statuscode"] = default_status(table, int(stored["statecode"])) or after.get("statuscode")
        self._derive(table, after)
        check_status(table, after)
        if check is not None:
            check(table, after)
        self._commit(table, record_id, after, "upsert")
        self.on_write(Write("Update", table, record_id, before, after, frozenset(stored), caller))

    def delete(self, table: Table, record_id: str, caller: Caller, if_match: str | None = None) -> None:
        self.check_etag(table, record_id, if_match)
        before = self.rows(table)[record_id]
        self._commit(table, record_id, None, "delete")
        self.on_write(Write("Delete", table, record_id, before, None, frozenset(), caller))


def _secured(column: Column, action: str) -> errors.ApiError:
    return errors.ApiError(
        403,
        "0x80040220",
        f"The user does not have {action} permissions to a secured field '{column.name}'. The requested operation "
        "could not be completed.",
    )
