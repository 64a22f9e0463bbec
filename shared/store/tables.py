"""Azure Table Storage rows (azure-data-tables): the state store in Azure, and against Azurite in tests.

Each row keeps its JSON document in string properties of at most 30,000 characters (``doc0``, ``doc1``, ...):
a Table property holds 64 KiB, and a baseline with long memo fields can exceed one. Azure SDK failures are
mapped here, in one place, onto the product's error tree.

Bulk paths: :meth:`TableRows.write_many` sends batch transactions of up to 100 rows and 4 MiB, built and read by
:mod:`shared.store.table_transactions` (the SDK's own MIME handling cost ten times the CPU);
:meth:`TableRows.get_many` reads a dense run of keys as one row-key range in pages of 1000 and the rest by filters
of 14 keys, a few at once. Every table's client shares the service client's one connection pool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from shared.store import table_transactions as transactions
from shared.store.base import BATCH_LIMIT, TABLES, Row, StateStore, Write, dumps
from shared.store.table_transactions import TransactionRefused

STORE_UNAVAILABLE = "store-unavailable"
"""The code of a :class:`RetryLater` the state store itself raised (it is down), not a service it fronts."""
_CHUNK = 30_000
_OR_LIMIT = 15  # Table service filters allow at most 15 discrete comparisons
_PAGE = 1000  # the most rows the service returns a page
READ_WORKERS = 4
"""Filters :meth:`TableRows.get_many` has in flight at once (each a request on the client's connection pool)."""
RANGE_MIN_KEYS = 100
"""From this many keys of one partition, :meth:`TableRows.get_many` first reads the keys' span as a range while
the rows it meets are mostly wanted (:data:`DENSE`): a page of up to 1000 rows instead of 8-72 filters. A Quick Sync
page's links are such a run (:mod:`shared.store.link_keys`); a live batch's (300 ids over 8 partitions) are not."""
DENSE = 0.5
"""The share of wanted rows in a range page below which the rest of the keys are read by filters."""
T = TypeVar("T")


def _call(action: Callable[[], T], what: str) -> T:
    """Run one SDK call, mapping its failures to what the caller must do."""
    try:
        return action()
    except (ResourceExistsError, ResourceModifiedError) as exc:
        raise Conflict(f"{what}: changed since it was read") from exc
    except ClientAuthenticationError as exc:
        raise StopSync(f"{what}: the state store refused our credentials ({type(exc).__name__})") from exc
    except TransactionRefused as exc:
        raise _refused(exc.status, what, transaction=True) from exc
    except HttpResponseError as exc:
        raise _refused(exc.status_code or 0, what, transaction=isinstance(exc, TableTransactionError)) from exc
    except (ServiceRequestError, ServiceResponseError, AzureError) as exc:
        raise RetryLater(f"{what}: state store unreachable ({type(exc).__name__})", code=STORE_UNAVAILABLE) from exc


def _refused(status: int, what: str, *, transaction: bool) -> Exception:
    """What a refusal with HTTP ``status`` means for the caller (in a transaction, a row that exists already or
    is gone is a changed row too)."""
    if status == 412 or (transaction and status in (404, 409)):
        return Conflict(f"{what}: changed since it was read")
    if status in (401, 403):
        return StopSync(f"{what}: no access to the state store (HTTP {status})")
    if status == 429 or status >= 500:
        return RetryLater(f"{what}: state store unavailable (HTTP {status})", code=STORE_UNAVAILABLE)
    return StopSync(f"{what}: state store rejected the request (HTTP {status})")


def _entity(pk: str, rk: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    text = dumps(doc)
    entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk, "parts": max(1, -(-len(text) // _CHUNK))}
    for index in range(entity["parts"]):
        entity[f"doc{index}"] = text[index * _CHUNK : (index + 1) * _CHUNK]
    return entity


def _row(entity: Mapping[str, Any]) -> Row:
    text = "".join(entity[f"doc{i}"] for i in range(int(entity.get("parts", 1))))
    return Row(entity["PartitionKey"], entity["RowKey"], json.loads(text), str(entity.metadata["etag"]))  # type: ignore[attr-defined]


_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()


def _readers() -> ThreadPoolExecutor:
    """The one bounded pool every :meth:`TableRows.get_many` of the process spreads its filters over (each thread's
    request goes through its client's connection pool; no task waits on another, so sharing cannot deadlock)."""
    with _pool_lock:
        if not _pool:
            _pool.append(ThreadPoolExecutor(READ_WORKERS, thread_name_prefix="table-read"))
        return _pool[0]


def _read_dense(client: TableClient, pk: str, keys: list[str], found: dict[str, Row]) -> list[str]:
    """Read sorted ``keys`` as the range from the first to the last, page by page, while at least :data:`DENSE`
    of a page's rows are wanted; put the wanted rows in ``found`` and return the keys past the range read (all
    of them when the first page was sparse: one request spent to learn it)."""
    wanted = set(keys)
    flt = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"
    pages = client.query_entities(
        flt, parameters={"pk": pk, "lo": keys[0], "hi": keys[-1]}, results_per_page=_PAGE
    ).by_page()
    for page in pages:
        entities = list(page)
        hits = [e for e in entities if e["RowKey"] in wanted]
        found.update({e["RowKey"]: _row(e) for e in hits})
        if entities and len(hits) < DENSE * len(entities):  # (the service may send an empty page: read on)
            last = entities[-1]["RowKey"]
            return [k for k in keys if k > last]
    return []


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
        """Rows by key: a dense run of the sorted keys read as one row-key range (pages of 1000), the rest by
        filters of 14 keys, up to :data:`READ_WORKERS` of them at once."""
        keys = sorted(set(rks))
        found: dict[str, Row] = {}
        if not keys:
            return found
        client = self._table(table)
        what = f"{table}/{pk} (many)"
        if len(keys) >= RANGE_MIN_KEYS:
            keys = _call(lambda: _read_dense(client, pk, keys, found), what)
        chunks = [keys[start : start + _OR_LIMIT - 1] for start in range(0, len(keys), _OR_LIMIT - 1)]

        def read(chunk: list[str]) -> list[Any]:
            rows = " or ".join(f"RowKey eq {_quote(k)}" for k in chunk)
            flt = f"PartitionKey eq {_quote(pk)} and ({rows})"
            return _call(lambda: list(client.query_entities(flt)), what)

        pages = _readers().map(read, chunks) if len(chunks) > 1 else map(read, chunks)
        for entities in pages:
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
        """Batch transactions of up to 100 rows and 4 MiB each (:mod:`shared.store.table_transactions`)."""
        client = self._table(table)
        etags: dict[str, str | None] = {}
        if client._cosmos_endpoint:  # Cosmos DB's Table API: the SDK's own batches
            for start in range(0, len(writes), BATCH_LIMIT):
                chunk = writes[start : start + BATCH_LIMIT]
                operations = [_operation(pk, w) for w in chunk]
                results = _call(lambda ops=operations: client.submit_transaction(ops), f"{table}/{pk} (batch)")  # type: ignore[misc]
                for write, result in zip(chunk, results, strict=True):
                    etags[write.rk] = None if write.op == "delete" else str(result.get("etag"))
            return etags
        built = [transactions.operation(_entity(pk, w.rk, w.doc or {}), w) for w in writes]
        for batch in transactions.chunks(built):
            tags = _call(lambda b=batch: transactions.submit(client, pk, b), f"{table}/{pk} (batch)")  # type: ignore[misc]
            for op, etag in zip(batch, tags, strict=True):
                etags[op.write.rk] = None if op.write.op == "delete" else etag
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
