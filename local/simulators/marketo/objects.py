"""Companies, opportunities, opportunity roles, sales persons and custom objects: one generic keyed store.

They share Marketo's lead-database object pattern: ``describe`` (idField, dedupeFields, searchableFields,
fields), ``action`` createOnly/updateOnly/createOrUpdate with ``dedupeBy`` dedupeFields/idField, delete with
``deleteBy`` (1013 for a record not found), queries by ``dedupeFields``, ``idField`` or a searchable field;
results carry ``seq``, the position of the input record (or query criterion) they answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from local.simulators.marketo.envelope import ApiError, skipped
from local.simulators.marketo.leads import iso_z

_CREATED = "2015-02-03T22:36:23Z"


@dataclass(frozen=True, slots=True)
class ObjField:
    name: str
    display_name: str
    data_type: str = "string"
    length: int | None = None
    updateable: bool = True

    def describe(self) -> dict[str, Any]:
        row: dict[str, Any] = {"name": self.name, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            row["length"] = self.length
        row["updateable"] = self.updateable
        return row


def _system_fields(id_field: str) -> list[ObjField]:
    id_def = (
        ObjField("marketoGUID", "Marketo GUID", "string", 36, False)
        if id_field == "marketoGUID"
        else ObjField("id", "Id", "integer", None, False)
    )
    return [
        id_def,
        ObjField("createdAt", "Created At", "datetime", None, False),
        ObjField("updatedAt", "Updated At", "datetime", None, False),
    ]


@dataclass
class ObjectType:
    name: str
    display_name: str
    id_field: str
    dedupe_fields: tuple[str, ...]
    fields: list[ObjField]
    description: str = ""
    searchable: list[list[str]] = field(default_factory=list)
    relationships: list[dict[str, Any]] | None = None
    # Checks a record must pass before it is created (opportunity roles need their opportunity and lead).
    references: Callable[[Mapping[str, Any]], str | None] | None = None
    # Describe of companies and sales persons carries no displayName in Marketo's answers.
    show_display_name: bool = True
    records: dict[Any, dict[str, Any]] = field(default_factory=dict)
    _next_id: int = 1

    @property
    def searchable_fields(self) -> list[list[str]]:
        return self.searchable or [list(self.dedupe_fields), [self.id_field]]

    def field_map(self) -> dict[str, ObjField]:
        return {f.name: f for f in self.fields}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.show_display_name:
            out["displayName"] = self.display_name
        if self.description:
            out["description"] = self.description
        out.update(
            createdAt=_CREATED,
            updatedAt=_CREATED,
            idField=self.id_field,
            dedupeFields=list(self.dedupe_fields),
            searchableFields=self.searchable_fields,
        )
        if self.relationships is not None:
            out["relationships"] = self.relationships
        out["fields"] = [f.describe() for f in self.fields]
        return out

    def _key(self, record: Mapping[str, Any]) -> tuple[Any, ...] | None:
        values = tuple(record.get(name) for name in self.dedupe_fields)
        return None if any(v is None or v == "" for v in values) else tuple(str(v) for v in values)

    def _find(self, record: Mapping[str, Any], dedupe_by: str) -> Any | None:
        if dedupe_by == "idField":
            ident = record.get(self.id_field)
            return ident if ident in self.records else None
        key = self._key(record)
        for ident, stored in self.records.items():
            if self._key(stored) == key:
                return ident
        return None

    def sync(self, action: str, dedupe_by: str, items: Sequence[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
        if action not in ("createOrUpdate", "createOnly", "updateOnly"):
            raise ApiError("1003", f"Invalid action '{action}'")
        if dedupe_by not in ("dedupeFields", "idField"):
            raise ApiError("1003", f"Invalid dedupeBy '{dedupe_by}'")
        if dedupe_by == "idField" and action != "updateOnly":
            raise ApiError("1003", "dedupeBy 'idField' is only valid with action updateOnly")
        known = self.field_map()
        results: list[dict[str, Any]] = []
        for seq, record in enumerate(items):
            unknown = next((name for name in record if name not in known), None)
            if unknown is not None:
                results.append(skipped("1006", f"Field '{unknown}' not found", seq=seq))
                continue
            if dedupe_by == "dedupeFields" and self._key(record) is None:
                missing = ",".join(self.dedupe_fields)
                results.append(skipped("1003", f"Value for required field '{missing}' not specified", seq=seq))
                continue
            ident = self._find(record, dedupe_by)
            if ident is not None and action == "createOnly":
                results.append(skipped("1005", "Record already exists", seq=seq))
                continue
            if ident is None and action == "updateOnly":
                results.append(skipped("1004", "Record not found", seq=seq))
                continue
            if ident is None:
                problem = self.references(record) if self.references else None
                if problem is not None:
                    results.append(skipped("1004", problem, seq=seq))
                    continue
                ident = self._create(record, now)
                results.append({"seq": seq, "status": "created", self.id_field: ident})
                continue
            stored = self.records[ident]
            for name, value in record.items():
                if known[name].updateable and name not in self.dedupe_fields:
                    stored[name] = value
            stored["updatedAt"] = iso_z(now)
            results.append({"seq": seq, "status": "updated", self.id_field: ident})
        return results

    def _create(self, record: Mapping[str, Any], now: float) -> Any:
        if self.id_field == "marketoGUID":
            ident: Any = str(uuid.uuid4())
        else:
            ident = self._next_id
            self._next_id += 1
        self.records[ident] = {**record, self.id_field: ident, "createdAt": iso_z(now), "updatedAt": iso_z(now)}
        return ident

    def key_fields(self, filter_type: str) -> tuple[str, ...]:
        """The fields a ``filterType`` names: ``dedupeFields``, ``idField`` or one of ``searchableFields``."""
        if filter_type == "dedupeFields":
            return self.dedupe_fields
        if filter_type == "idField":
            return (self.id_field,)
        if [filter_type] in self.searchable_fields:
            return (filter_type,)
        raise ApiError("1003", f"Invalid filterType '{filter_type}'")

    def search(
        self, keys: Sequence[str], criteria: Sequence[Mapping[str, Any]], fields: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        """Records matching any criterion (each maps every key field to a value); ``seq`` is the criterion's
        position, as in the custom-objects page's samples. Values compare as text (query strings carry text)."""
        known = self.field_map()
        for name in fields or ():
            if name not in known:
                raise ApiError("1006", f"Field '{name}' not found")
        names = list(fields) if fields else [self.id_field, *self.dedupe_fields, "createdAt", "updatedAt"]
        rows: list[dict[str, Any]] = []
        for seq, criterion in enumerate(criteria):
            missing = [key for key in keys if criterion.get(key) in (None, "")]
            if missing:
                raise ApiError("1003", f"Value for required field '{missing[0]}' not specified")
            wanted = tuple(str(criterion[key]) for key in keys)
            for stored in self.records.values():
                if tuple(str(stored.get(key)) for key in keys) == wanted:
                    rows.append({"seq": seq, **{name: stored[name] for name in names if stored.get(name) is not None}})
        return rows

    def delete(self, delete_by: str, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Delete by ``dedupeFields`` (default) or ``idField``; an unknown record is skipped with 1013."""
        if delete_by not in ("dedupeFields", "idField"):
            raise ApiError("1003", f"Invalid deleteBy '{delete_by}'")
        results: list[dict[str, Any]] = []
        for seq, record in enumerate(items):
            ident = self._find(record, delete_by)
            if ident is None:
                results.append(skipped("1013", seq=seq))
                continue
            del self.records[ident]
            results.append({"seq": seq, self.id_field: ident, "status": "deleted"})
        return results

    def summary(self) -> dict[str, Any]:
        """A row of the custom object list (``GET /rest/v1/customobjects.json``): the describe without fields."""
        return {key: value for key, value in self.describe().items() if key != "fields"}


def companies() -> ObjectType:
    return ObjectType(
        name="Company",
        display_name="Company",
        description="Company object",
        show_display_name=False,
        id_field="id",
        dedupe_fields=("externalCompanyId",),
        searchable=[["externalCompanyId"], ["id"], ["company"]],
        fields=[
            *_system_fields("id"),
            ObjField("externalCompanyId", "External Company Id", "string", 100, False),
            ObjField("company", "Company Name", "string", 255),
            ObjField("website", "Website", "url", 255),
            ObjField("mainPhone", "Main Phone", "string", 255),
            ObjField("industry", "Industry", "string", 255),
            ObjField("annualRevenue", "Annual Revenue", "currency"),
            ObjField("numberOfEmployees", "Num Employees", "integer"),
            ObjField("billingCity", "Billing City", "string", 255),
            ObjField("billingCountry", "Billing Country", "string", 255),
            ObjField("externalSalesPersonId", "External Sales Person Id", "string", 100),
        ],
    )


def opportunities() -> ObjectType:
    return ObjectType(
        name="opportunity",
        display_name="Opportunity",
        id_field="marketoGUID",
        dedupe_fields=("externalOpportunityId",),
        searchable=[["externalOpportunityId"], ["marketoGUID"]],
        fields=[
            *_system_fields("marketoGUID"),
            ObjField("externalOpportunityId", "External Opportunity Id", "string", 50, False),
            ObjField("name", "Name", "string", 255),
            ObjField("description", "Description", "string", 2000),
            ObjField("amount", "Amount", "currency"),
            ObjField("stage", "Stage", "string", 255),
            ObjField("type", "Type", "string", 255),
            ObjField("source", "Source", "string", 255),
            ObjField("isClosed", "Is Closed", "boolean"),
            ObjField("isWon", "Is Won", "boolean"),
            ObjField("closeDate", "Close Date", "date"),
            ObjField("externalCompanyId", "External Company Id", "string", 100),
            ObjField("externalSalesPersonId", "External Sales Person Id", "string", 100),
        ],
    )


def opportunity_roles(lead_exists: Callable[[Any], bool], opportunities_store: ObjectType) -> ObjectType:
    def references(record: Mapping[str, Any]) -> str | None:
        external = record.get("externalOpportunityId")
        if opportunities_store._find({"externalOpportunityId": external}, "dedupeFields") is None:
            return f"Opportunity '{external}' not found"
        if not lead_exists(record.get("leadId")):
            return f"Lead '{record.get('leadId')}' not found"
        return None

    return ObjectType(
        name="opportunityRole",
        display_name="Opportunity Role",
        id_field="marketoGUID",
        dedupe_fields=("externalOpportunityId", "leadId", "role"),
        searchable=[
            ["externalOpportunityId", "leadId", "role"],
            ["marketoGUID"],
            ["leadId"],
            ["externalOpportunityId"],
        ],
        fields=[
            ObjField("marketoGUID", "Marketo GUID", "string", 36, False),
            ObjField("externalOpportunityId", "External Opportunity Id", "string", 50, False),
            ObjField("leadId", "Lead Id", "integer", None, False),
            ObjField("role", "Role", "string", 50, False),
            ObjField("isPrimary", "Is Primary", "boolean"),
            ObjField("externalCreatedDate", "External Created Date", "datetime"),
            ObjField("createdAt", "Created At", "datetime", None, False),
            ObjField("updatedAt", "Updated At", "datetime", None, False),
        ],
        references=references,
    )


def sales_persons() -> ObjectType:
    return ObjectType(
        name="SalesPerson",
        display_name="Sales Person",
        show_display_name=False,
        id_field="id",
        dedupe_fields=("externalSalesPersonId",),
        searchable=[["email"], ["id"], ["externalSalesPersonId"]],
        fields=[
            ObjField("id", "Marketo Id", "integer", None, False),
            *_system_fields("id")[1:],
            ObjField("email", "Email", "string", 255),
            ObjField("externalSalesPersonId", "External Sales Person Id", "string", 255, False),
            ObjField("firstName", "First Name", "string", 255),
            ObjField("lastName", "Last Name", "string", 255),
            ObjField("phone", "Phone", "string", 255),
            ObjField("title", "Title", "string", 255),
        ],
    )


def custom_object(
    api_name: str, *, dedupe_fields: Sequence[str], fields: Mapping[str, str], display_name: str | None = None
) -> ObjectType:
    """A custom object type; ``fields`` maps API name to data type (dedupe fields included)."""
    return ObjectType(
        name=api_name,
        display_name=display_name or api_name,
        description=display_name or api_name,
        id_field="marketoGUID",
        dedupe_fields=tuple(dedupe_fields),
        searchable=[list(dedupe_fields), ["marketoGUID"]],
        relationships=[],
        fields=[
            *_system_fields("marketoGUID"),
            *(
                ObjField(name, name, kind, 255 if kind == "string" else None, name not in dedupe_fields)
                for name, kind in fields.items()
            ),
        ],
    )
