"""Writing Dataverse: one record (PATCH, POST), many in ``$batch`` requests, and the QualifyLead action.

An update is conditional: on the record's ETag (412 -> :class:`~shared.errors.Conflict`) or on it existing
(``If-Match: *``), never an accidental upsert. In a ``$batch`` each operation's failure comes back as a fault in
its :class:`BatchResult`, not raised, so one bad record does not fail the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from shared.dataverse.batch import (
    MAX_BATCH_OPERATIONS,
    BatchOperation,
    BatchPart,
    build_batch,
    parse_batch_response,
)
from shared.dataverse.faults import Action, Fault, classify, error_body
from shared.dataverse.session import DataverseSession
from shared.dataverse.values import EntityRef
from shared.errors import SkipRecord

_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    id: str
    values: Mapping[str, Any]
    etag: str | None = None  # None: update only if it exists (If-Match: *)


@dataclass(frozen=True, slots=True)
class BatchResult:
    status: int
    entity_id: str | None = None
    etag: str | None = None
    body: Any = None
    fault: Fault | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None


def entity_id_from_header(value: str | None) -> str | None:
    match = _ENTITY_ID.search(value or "")
    return match.group(1).lower() if match else None


class DataverseWrites(DataverseSession):
    """Rows into Dataverse, conditional on their ETag or on their existence."""

    def update(self, entity: str, record_id: str, values: Mapping[str, Any], *, etag: str | None = None) -> str | None:
        """PATCH one record; returns its new ETag.

        With ``etag``: only if unchanged since read (412 -> :class:`Conflict`). Without: only if it still exists
        (``If-Match: *``; 404 -> :class:`SkipRecord`), never an accidental upsert.
        """
        info = self.entity(entity)
        response = self.request(
            "PATCH",
            f"{info.entity_set_name}({record_id})",
            params={"$select": info.primary_id_attribute},
            json=dict(values),
            headers={"If-Match": etag or "*", "Prefer": "return=representation"},
        )
        if response.status_code == 200 and response.content:
            tag = response.json().get("@odata.etag")
            return str(tag) if tag is not None else None
        tag = response.headers.get("etag")
        return str(tag) if tag is not None else None

    def create(self, entity: str, values: Mapping[str, Any]) -> str:
        """POST one record; returns the new id from ``OData-EntityId``."""
        info = self.entity(entity)
        response = self.request("POST", info.entity_set_name, json=dict(values), idempotent=False)
        new_id = entity_id_from_header(response.headers.get("odata-entityid"))
        if new_id is None:
            raise SkipRecord(f"Dataverse created a {entity} but sent no OData-EntityId", code="no-entity-id")
        return new_id

    def execute_batch(self, operations: Sequence[BatchOperation], *, atomic: bool = False) -> list[BatchResult]:
        """Run operations in ``$batch`` requests of up to 1000; one result per operation, in order.

        ``atomic``: each batch is one change set (all or nothing). Otherwise ``odata.continue-on-error`` lets the
        rest go on when one fails. Per-operation failures are returned as faults, not raised.
        """
        results: list[BatchResult] = []
        for start in range(0, len(operations), MAX_BATCH_OPERATIONS):
            chunk = operations[start : start + MAX_BATCH_OPERATIONS]
            content_type, body = build_batch(chunk, self.service_root, atomic=atomic)
            idempotent = all(op.method.upper() != "POST" for op in chunk)
            response = self.request(
                "POST",
                "$batch",
                content=body,
                headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
                idempotent=idempotent,
            )
            parts = parse_batch_response(response.headers.get("content-type", ""), response.text)
            results.extend(_batch_results(parts, len(chunk)))
        return results

    def update_many(self, entity: str, updates: Sequence[RecordUpdate], *, atomic: bool = False) -> list[BatchResult]:
        info = self.entity(entity)
        operations = [
            BatchOperation("PATCH", f"{info.entity_set_name}({u.id})", dict(u.values), {"If-Match": u.etag or "*"})
            for u in updates
        ]
        return self.execute_batch(operations, atomic=atomic) if operations else []

    def create_many(self, entity: str, rows: Sequence[Mapping[str, Any]], *, atomic: bool = False) -> list[BatchResult]:
        info = self.entity(entity)
        operations = [BatchOperation("POST", info.entity_set_name, dict(row)) for row in rows]
        return self.execute_batch(operations, atomic=atomic) if operations else []

    def qualify_lead(
        self,
        lead_id: str,
        *,
        create_contact: bool = True,
        create_account: bool = False,
        create_opportunity: bool = False,
    ) -> list[EntityRef]:
        """The ``QualifyLead`` action; returns the records it created (the contact's ``originatingleadid`` is the lead)."""
        response = self.request(
            "POST",
            f"leads({lead_id})/Microsoft.Dynamics.CRM.QualifyLead",
            json={
                "CreateAccount": create_account,
                "CreateContact": create_contact,
                "CreateOpportunity": create_opportunity,
                "Status": 3,
            },
            idempotent=False,
        )
        created = []
        for row in response.json().get("value", []):
            kind = str(row.get("@odata.type", "")).removeprefix("#Microsoft.Dynamics.CRM.")
            created.append(EntityRef(str(row.get(f"{kind}id", "")).lower(), kind))
        return created


def _batch_results(parts: Sequence[BatchPart], expected: int) -> list[BatchResult]:
    results = []
    for part in parts:
        fault = classify(httpx.Response(part.status, headers=dict(part.headers), content=part.body.encode()))
        body = None
        if part.body.strip():
            try:
                body = part.json()
            except ValueError:
                body = part.body
        etag = part.headers.get("etag")
        if isinstance(body, dict) and body.get("@odata.etag"):
            etag = str(body["@odata.etag"])
        results.append(
            BatchResult(part.status, entity_id_from_header(part.headers.get("odata-entityid")), etag, body, fault)
        )
    if len(results) < expected and results and results[-1].fault is not None:
        # A failed change set answers with the one error: every operation in it was rolled back.
        failed = results[-1]
        results = results[:-1] + [failed] * (expected - len(results) + 1)
    if len(results) != expected:
        code, _ = error_body(httpx.Response(500))
        missing = Fault(Action.RETRY, "batch response missing operations", 500, code)
        results += [BatchResult(500, fault=missing)] * (expected - len(results))
    return results
