"""How each kind of Dynamics entity is read from and written to Marketo, in batches of up to 300.

Persons (leads and contacts) are read and written by Marketo lead id; everything else is a one-way upsert
keyed by the Dynamics id held in the object's dedupe field (``externalCompanyId``, ``externalOpportunityId``,
``externalSalesPersonId``, or the custom object's link field).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.core.entities import MarketoObject
from shared.core.mapping import EntityMapping, FieldType
from shared.core.policy import Decision
from shared.marketo.client import MarketoClient
from shared.marketo.models import RecordOutcome

MARKETO_DATA_TYPES: dict[FieldType, str] = {
    FieldType.TEXT: "string",
    FieldType.MEMO: "text",
    FieldType.INTEGER: "integer",
    FieldType.BIGINT: "string",  # Marketo integers are 32-bit
    FieldType.DECIMAL: "float",
    FieldType.DOUBLE: "float",
    FieldType.MONEY: "currency",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
    FieldType.CHOICE: "string",
    FieldType.MULTI_CHOICE: "text",  # labels joined by ';' can outgrow a 255-character string
    FieldType.LOOKUP: "string",
}
"""The Marketo data type a Marketo field gets when the sync creates it for a mapped Dynamics column."""


SALES_OWNER_FIELD = "externalSalesPersonId"
"""The Marketo field (persons, companies, opportunities) naming the sales person who owns the record: the
``externalSalesPersonId`` of the sales person the sync keeps for the owning Dynamics user."""


def person_fields(mapping: EntityMapping, *, sales_owner: bool = False) -> list[str]:
    """Marketo fields to read for a person: the mapped ones, its id, the link field and email (for matching);
    with ``sales_owner``, the sales person it carries."""
    extra = ["updatedAt"] if mapping.wants_modified_times else []  # a "latest" field: the side modified last wins
    extra += [SALES_OWNER_FIELD] if sales_owner else []
    return list(dict.fromkeys(["id", "email", mapping.marketo_link_field, *mapping.marketo_fields(), *extra]))


def marketo_body(mapping: EntityMapping, decision: Decision) -> dict[str, Any]:
    """The decision's writes to Marketo, keyed by Marketo field name (the record's key is added by the caller)."""
    by_column = mapping.by_column
    return {by_column[c].marketo: wire for c, wire in decision.marketo_writes.items()}


def read_persons(marketo: MarketoClient, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    return {str(lead["id"]): lead for lead in marketo.get_leads("id", list(ids), fields=fields)}


def find_persons_by_email(
    marketo: MarketoClient, emails: Sequence[str], fields: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Existing persons by e-mail (lower-case); with duplicates in Marketo, the oldest person (lowest id) wins."""
    wanted = sorted({e.strip().lower() for e in emails if e and "," not in e})
    if not wanted:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for lead in sorted(marketo.get_leads("email", wanted, fields=fields), key=lambda lead: int(lead["id"])):
        email = str(lead.get("email") or "").lower()
        found.setdefault(email, lead)
    return found


def update_persons(marketo: MarketoClient, records: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
    """Update existing persons by Marketo id (never creates: a vanished person shows as skipped 1004)."""
    if not records:
        return []
    return marketo.sync_leads(records, action="updateOnly", lookup_field="id")


def create_persons(marketo: MarketoClient, records: Sequence[tuple[Mapping[str, Any], str]]) -> list[RecordOutcome]:
    """Create persons, each given with the link field that holds its Dynamics id. Matched by e-mail when they have
    one (an existing person is updated, not duplicated), otherwise by that link field."""
    by_lookup: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, (record, link_field) in enumerate(records):
        by_lookup.setdefault("email" if record.get("email") else link_field, []).append((index, record))
    outcomes: dict[int, RecordOutcome] = {}
    for lookup, group in by_lookup.items():
        results = marketo.sync_leads([r for _, r in group], action="createOrUpdate", lookup_field=lookup)
        for (index, _), outcome in zip(group, results, strict=True):
            outcomes[index] = RecordOutcome(index, outcome.status, outcome.id, outcome.reasons)
    return [outcomes[i] for i in range(len(records))]


_OBJECT_PATHS = {
    MarketoObject.COMPANY: "/rest/v1/companies.json",
    MarketoObject.OPPORTUNITY: "/rest/v1/opportunities.json",
    MarketoObject.SALES_PERSON: "/rest/v1/salespersons.json",
}


def object_fields(mapping: EntityMapping) -> list[str]:
    """Marketo fields to read of a one-way object: the one holding the Dynamics id, and the mapped ones."""
    return list(dict.fromkeys([mapping.marketo_link_field, *mapping.marketo_fields()]))


def read_objects(
    marketo: MarketoClient, mapping: EntityMapping, ids: Sequence[str], fields: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """One-way records by the Dynamics id in their dedupe field (lower-case), one call per 300 ids; an id Marketo
    holds no record for is absent."""
    if not ids:
        return {}
    kind = mapping.rule.marketo_object
    if kind is MarketoObject.CUSTOM_OBJECT:
        assert mapping.custom_object is not None  # the mapping validator guarantees it
        path = f"/rest/v1/customobjects/{mapping.custom_object}.json"
    elif kind in _OBJECT_PATHS:
        path = _OBJECT_PATHS[kind]
    else:
        raise ValueError(f"{mapping.entity} syncs to persons, not objects")
    key = mapping.marketo_link_field
    found = marketo.get_objects(path, key, list(ids), fields=fields)
    return {str(record[key]).lower(): record for record in found if record.get(key)}


def upsert_objects(
    marketo: MarketoClient, mapping: EntityMapping, records: Sequence[Mapping[str, Any]]
) -> list[RecordOutcome]:
    """Create-or-update one-way records, deduplicated on the field holding the Dynamics id."""
    if not records:
        return []
    kind = mapping.rule.marketo_object
    if kind is MarketoObject.COMPANY:
        return marketo.sync_companies(records)
    if kind is MarketoObject.OPPORTUNITY:
        return marketo.sync_opportunities(records)
    if kind is MarketoObject.SALES_PERSON:
        return marketo.sync_sales_persons(records)
    if kind is MarketoObject.CUSTOM_OBJECT:
        assert mapping.custom_object is not None  # the mapping validator guarantees it
        return marketo.sync_custom_objects(mapping.custom_object, records)
    raise ValueError(f"{mapping.entity} syncs to persons, not objects")
