"""Azure Table Storage rows (azure-data-tables): the state store in Azure, and against Azurite in tests.

Each row keeps its JSON document in string properties of at most 30,000 characters (``doc0``, ``doc1``, ...):
a Table property holds 64 KiB, and a baseline with long memo fields can exceed one. Azure SDK failures are
mapped here, in one place, onto the product's error tree.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared.errors import Conflict, RetryLater, StopSync
from shared.store.base import BATCH_LIMIT, TABLES, Row, StateStore, Write, dumps

STORE_UNAVAILABLE = "store-unavailable"
"""The code of a :class:`RetryLater` the state store itself raised (it is down), not a service it fronts."""
_CHUNK = 30_000
_OR_LIMIT = 15  # Table service filters allow at most 15 discrete comparisons
T = TypeVar("T")


def _call(action: Callable[[], T], what: str) -> T:
    """Run one SDK call, mapping its failures to what the caller must do."""
    try:
        return action()
    except (ResourceExistsError, ResourceModifiedError) as exc:
        raise Conflict(f"{what}: changed since it was read") from exc
    except ClientAuthenticationError as exc:
        raise StopSync(f"{what}: the state store refused our credentials ({type(exc).__name__})") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        if status == 412 or (isinstance(exc, TableTransactionError) and status in (404, 409)):
            raise Conflict(f"{what}: changed since it was read") from exc
        if status in (401, 403):
            raise StopSync(f"{what}: no access to the state store (HTTP {status})") from exc
        if status == 429 or status >= 500:
            raise RetryLater(f"{what}: state store unavailable (HTTP {status})", code=STORE_UNAVAILABLE) from exc
        raise StopSync(f"{what}: state store rejected the request (HTTP {status})") from exc
    except (ServiceRequestError, ServiceResponseError, AzureError) as exc:
        raise RetryLater(f"{what}: state store unreachable ({type(exc).__name__})", code=STORE_UNAVAILABLE) from exc


def _entity(pk: str, rk: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    text = dumps(doc)
    entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk, "parts": max(1, -(-len(text) // _CHUNK))}
    for index in range(entity["parts"]):
        entity[f"doc{index}"] = text[index * _CHUNK : (index + 1) * _CHUNK]
    return entity


def _row(entity: Mapping[str, Any]) -> Row:
    text = "".join(entity[f"doc{i}"] for i in range(int(entity.get("parts", 1))))
    return Row(entity["PartitionKey"], entity["RowKey"], json.loads(text), str(entity.metadata["etag"]))  # type: ignore[attr-defined]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class TableRows:
    def __init__(self, service: TableServiceClient, *, table_suffix: str = "") -> None:
        self._service = service
        self.table_suffix = table_suffix  # lets tests (and side-by-side deployments) keep tables apart
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str) -> TableRows:
        return cls(TableServiceClient.from_connection_string(connection_string))

    @classmethod
    def for_azurite(cls, table_endpoint: str) -> TableRows:
        """Azurite on any port, with the SDK's own well-known development account (no key in this repo)."""
        development = TableServiceClient.from_connection_string("UseDevelopmentStorage=true")
        return cls(TableServiceClient(endpoint=table_endpoint, credential=development.credential))

    @classmethod
    def from_endpoint(cls, endpoint: str, credential: TokenCredential) -> TableRows:
        return cls(TableServiceClient(endpoint=endpoint, credential=credential))

    def ensure_tables(self) -> None:
        for name in TABLES:
            self._table(name)

    def _table(self, name: str) -> TableClient:
        client = self._clients.get(name)
        if client is None:
            with self._lock:
                client = self._clients.get(name)
                if client is None:
                    full = name + self.table_suffix
                    client = _call(lambda: self._service.create_table_if_not_exists(full), f"table {full}")
                    self._clients[name] = client
        return client

    def get(self, table: str, pk: str, rk: str) -> Row | None:
        def read() -> Mapping[str, Any] | None:
            try:
                return self._table(table).get_entity(pk, rk)
            except ResourceNotFoundError:
                return None

        entity = _call(read, f"{table}/{pk}/{rk}")
        return _row(entity) if entity is not None else None

    def get_many(self, table: str, pk: str, rks: Iterable[str]) -> dict[str, Row]:
        keys = list(dict.fromkeys(rks))
        found: dict[str, Row] = {}
        client = self._table(table)
        for start in range(0, len(keys), _OR_LIMIT - 1):
            chunk = keys[start : start + _OR_LIMIT - 1]
            rows = " or ".join(f"RowKey eq {_quote(k)}" for k in chunk)
            flt = f"PartitionKey eq {_quote(pk)} and ({rows})"
            entities = _call(lambda flt=flt: list(client.query_entities(flt)), f"{table}/{pk} (many)")  # type: ignore[misc]
            found.update({e["RowKey"]: _row(e) for e in entities})
        return found

    def insert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        meta = _call(lambda: self._table(table).create_entity(_entity(pk, rk, doc)), f"{table}/{pk}/{rk}")
        return str(meta["etag"])

    def replace(self, table: str, pk: str, rk: str, doc: Mapping[str, Any], etag: str) -> str:
        def update() -> Mapping[str, Any]:
            try:
                return self._table(table).update_entity(
                    _entity(pk, rk, doc),
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceNotFoundError as exc:  # deleted since it was read: a conflict too
                raise ResourceModifiedError(message=str(exc)) from exc

        return str(_call(update, f"{table}/{pk}/{rk}")["etag"])

    def upsert(self, table: str, pk: str, rk: str, doc: Mapping[str, Any]) -> str:
        entity = _entity(pk, rk, doc)
        meta = _call(lambda: self._table(table).upsert_entity(entity, mode=UpdateMode.REPLACE), f"{table}/{pk}/{rk}")
        return str(meta["etag"])

    def query(self, table: str, pk: str | None = None) -> Iterator[Row]:
        client = self._table(table)
        if pk is None:
            entities = _call(lambda: list(client.list_entities()), f"{table} (all)")
        else:
            entities = _call(
                lambda: list(client.query_entities("PartitionKey eq @pk", parameters={"pk": pk})), f"{table}/{pk}"
            )
        for entity in entities:
            yield _row(entity)

    def query_range(
        self, table: str, pk: str, ge: str = "", lt: str | None = None, *, limit: int | None = None
    ) -> Iterator[Row]:
        client = self._table(table)
        flt = "PartitionKey eq @pk and RowKey ge @ge" + (" and RowKey lt @lt" if lt is not None else "")
        parameters = {"pk": pk, "ge": ge, **({"lt": lt} if lt is not None else {})}
        page = min(limit, 1000) if limit is not None else None  # the service returns at most 1000 rows a page

        def read() -> list[Any]:
            found = client.query_entities(flt, parameters=parameters, results_per_page=page)
            return list(islice(found, limit) if limit is not None else found)

        for entity in _call(read, f"{table}/{pk} (range)"):
            yield _row(entity)

    def delete(self, table: str, pk: str, rk: str) -> None:
        _call(lambda: self._table(table).delete_entity(pk, rk), f"{table}/{pk}/{rk}")

    def write_many(self, table: str, pk: str, writes: Sequence[Write]) -> dict[str, str | None]:
        client = self._table(table)
        etags: dict[str, str | None] = {}
        for start in range(0, len(writes), BATCH_LIMIT):
            chunk = writes[start : start + BATCH_LIMIT]
            operations = [_operation(pk, w) for w in chunk]
            results = _call(lambda ops=operations: client.submit_transaction(ops), f"{table}/{pk} (batch)")  # type: ignore[misc]
            for write, result in zip(chunk, results, strict=True):
                etags[write.rk] = None if write.op == "delete" else str(result.get("etag"))
        return etags


def _operation(pk: str, write: Write) -> Any:
    """A write as a Table batch operation: ``(verb, entity, options)``."""
    if write.op == "delete":
        entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": write.rk}
        return ("delete", entity, {"etag": write.etag, "match_condition": MatchConditions.IfNotModified})
    entity = _entity(pk, write.rk, write.doc or {})
    if write.op == "insert":
        return ("create", entity)
    if write.op == "replace":
        options = {"mode": UpdateMode.REPLACE, "etag": write.etag, "match_condition": MatchConditions.IfNotModified}
        return ("update", entity, options)
    return ("upsert", entity, {"mode": UpdateMode.REPLACE})


def table_store(rows: TableRows) -> StateStore:
    rows.ensure_tables()
    return StateStore(rows)
