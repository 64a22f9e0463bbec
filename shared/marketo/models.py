"""Values the Marketo client hands back: small, frozen, printable.

Record-level results are values, not exceptions: one skipped lead must not sink the other 299 in its batch. A
skip's reasons keep Marketo's code and message; the field a 1006 names is read from it by :mod:`.faults`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.marketo.faults import missing_field


class RecordStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SKIPPED = "skipped"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


class SkipCode(StrEnum):
    """Record-level reasons the sync acts on (Marketo sends others too; they keep their raw code)."""

    INVALID_DATA = "1003"
    NOT_FOUND = "1004"
    ALREADY_EXISTS = "1005"
    FIELD_NOT_FOUND = "1006"
    MULTIPLE_MATCH = "1007"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str

    @property
    def known(self) -> SkipCode | None:
        try:
            return SkipCode(self.code)
        except ValueError:
            return None

    @property
    def missing_field(self) -> str | None:
        """With 1006: the field the object does not have, as the record named it."""
        return missing_field(self.code, self.message)


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What happened to input record ``index`` of a sync call (indices count across chunks)."""

    index: int
    status: RecordStatus | str
    id: int | str | None = None
    reasons: tuple[Reason, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in (RecordStatus.CREATED, RecordStatus.UPDATED, RecordStatus.UNCHANGED)

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)

    @property
    def missing_field(self) -> str | None:
        """The field Marketo skipped the record for not having (it names the first one the record carried)."""
        return next((r.missing_field for r in self.reasons if r.missing_field is not None), None)

    @classmethod
    def from_result(cls, index: int, item: Mapping[str, Any], *, id_key: str = "id") -> RecordOutcome:
        raw_status = str(item.get("status", RecordStatus.SKIPPED))
        try:
            status: RecordStatus | str = RecordStatus(raw_status)
        except ValueError:
            status = raw_status
        reasons = tuple(
            Reason(str(reason.get("code", "")), str(reason.get("message", ""))) for reason in item.get("reasons") or ()
        )
        if "reasons" in item and "status" not in item:
            status = RecordStatus.SKIPPED
        ident = item.get(id_key, item.get("id", item.get("marketoGUID")))
        return cls(index=index, status=status, id=ident, reasons=reasons)


@dataclass(frozen=True, slots=True)
class FieldChange:
    id: int | None
    name: str
    new_value: Any
    old_value: Any


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity from the lead-changes or deleted-leads feed (type 12 New Lead, 13 Change Data Value, 37 Delete)."""

    marketo_guid: str
    lead_id: int
    activity_date: datetime
    activity_type_id: int
    fields: tuple[FieldChange, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    primary_attribute_value: str | None = None

    @classmethod
    def from_result(cls, item: Mapping[str, Any]) -> Activity:
        return cls(
            marketo_guid=str(item.get("marketoGUID", item.get("id"))),
            lead_id=int(item["leadId"]),
            activity_date=parse_marketo_datetime(str(item["activityDate"])),
            activity_type_id=int(item["activityTypeId"]),
            fields=tuple(
                FieldChange(
                    id=change.get("id"),
                    name=str(change["name"]),
                    new_value=change.get("newValue"),
                    old_value=change.get("oldValue"),
                )
                for change in item.get("fields") or ()
            ),
            attributes={str(a["name"]): a.get("value") for a in item.get("attributes") or ()},
            primary_attribute_value=item.get("primaryAttributeValue"),
        )


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """One page of a token-paged feed. ``next_page_token`` is what a caller checkpoints after handling the page."""

    activities: tuple[Activity, ...]
    next_page_token: str
    more_result: bool


@dataclass(frozen=True, slots=True)
class LeadField:
    """One row of Describe Leads: the field's REST name, type and whether the API may write it."""

    id: int | None
    display_name: str
    data_type: str
    rest_name: str | None
    read_only: bool
    length: int | None = None

    @classmethod
    def from_result(cls, item: Mapping[str, Any]) -> LeadField:
        rest = item.get("rest") or {}
        return cls(
            id=item.get("id"),
            display_name=str(item.get("displayName", "")),
            data_type=str(item.get("dataType", "")),
            rest_name=rest.get("name"),
            read_only=bool(rest.get("readOnly", False)),
            length=item.get("length"),
        )


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One row of the lead schema (``/leads/schema/fields.json``), which knows custom and hidden fields."""

    name: str
    display_name: str
    data_type: str
    is_custom: bool
    is_hidden: bool
    length: int | None = None
    description: str | None = None

    @classmethod
    def from_result(cls, item: Mapping[str, Any]) -> SchemaField:
        return cls(
            name=str(item["name"]),
            display_name=str(item.get("displayName", "")),
            data_type=str(item.get("dataType", "")),
            is_custom=bool(item.get("isCustom", False)),
            is_hidden=bool(item.get("isHidden", False)),
            length=item.get("length"),
            description=item.get("description"),
        )


@dataclass(frozen=True, slots=True)
class ObjectField:
    name: str
    display_name: str
    data_type: str
    updateable: bool
    length: int | None = None


@dataclass(frozen=True, slots=True)
class ObjectDescription:
    """Describe output of a lead-database object (company, opportunity, role, sales person, custom object)."""

    name: str
    id_field: str
    dedupe_fields: tuple[str, ...]
    searchable_fields: tuple[tuple[str, ...], ...]
    fields: tuple[ObjectField, ...]

    @classmethod
    def from_result(cls, item: Mapping[str, Any]) -> ObjectDescription:
        return cls(
            name=str(item.get("name", "")),
            id_field=str(item.get("idField", "")),
            dedupe_fields=tuple(str(f) for f in item.get("dedupeFields") or ()),
            searchable_fields=tuple(tuple(str(f) for f in group) for group in item.get("searchableFields") or ()),
            fields=tuple(
                ObjectField(
                    name=str(f["name"]),
                    display_name=str(f.get("displayName", "")),
                    data_type=str(f.get("dataType", "")),
                    updateable=bool(f.get("updateable", False)),
                    length=f.get("length"),
                )
                for f in item.get("fields") or ()
            ),
        )


class ImportState(StrEnum):
    QUEUED = "Queued"
    IMPORTING = "Importing"
    COMPLETE = "Complete"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class ImportStatus:
    batch_id: int
    status: ImportState | str
    leads_processed: int = 0
    rows_failed: int = 0
    rows_with_warning: int = 0
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status in (ImportState.COMPLETE, ImportState.FAILED)

    @classmethod
    def from_result(cls, item: Mapping[str, Any]) -> ImportStatus:
        raw = str(item.get("status", ""))
        try:
            status: ImportState | str = ImportState(raw)
        except ValueError:
            status = raw
        return cls(
            batch_id=int(item["batchId"]),
            status=status,
            leads_processed=int(item.get("numOfLeadsProcessed") or 0),
            rows_failed=int(item.get("numOfRowsFailed") or 0),
            rows_with_warning=int(item.get("numOfRowsWithWarning") or 0),
            message=str(item.get("message") or ""),
        )


def parse_marketo_datetime(text: str) -> datetime:
    """Marketo writes ``2014-09-17T22:31:49+0000`` and ``2023-01-16T23:32:19Z``; both are UTC instants."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    elif len(cleaned) > 5 and cleaned[-5] in "+-" and cleaned[-4:].isdigit():
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    return datetime.fromisoformat(cleaned)
