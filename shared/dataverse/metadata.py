"""Dataverse metadata the sync reads before it trusts a column: types, lengths, choice labels, column security."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.dataverse.session import DataverseSession, odata_literal


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    logical_name: str
    attribute_type: str
    valid_for_read: bool
    valid_for_update: bool
    valid_for_create: bool
    is_secured: bool
    metadata_id: str | None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class ColumnDescription:
    """A column as a catalogue shows it: its name and label, its type, and what the Web API lets anyone do."""

    logical_name: str
    attribute_type: str
    metadata_type: str  # the metadata class, e.g. "MultiSelectPicklistAttributeMetadata" ("" when not said)
    display_name: str
    valid_for_read: bool
    valid_for_update: bool
    is_secured: bool
    metadata_id: str | None


@dataclass(frozen=True, slots=True)
class ColumnPrivilege:
    attribute_id: str
    can_read: bool
    can_update: bool
    can_create: bool


class DataverseMetadata(DataverseSession):
    """What a table's columns are and what the sync user may do with them."""

    def attributes(self, entity: str) -> list[AttributeInfo]:
        """Columns of a table with what the sync needs to know before reading or writing them."""
        base = f"EntityDefinitions(LogicalName={odata_literal(entity)})/Attributes"
        rows = self._get_json(
            base,
            params={
                "$select": "LogicalName,AttributeType,IsValidForRead,IsValidForUpdate,IsValidForCreate,IsSecured,MetadataId"
            },
        )["value"]
        lengths = {
            row["LogicalName"]: row.get("MaxLength")
            for row in self._get_json(
                f"{base}/Microsoft.Dynamics.CRM.StringAttributeMetadata", params={"$select": "LogicalName,MaxLength"}
            )["value"]
        }
        return [
            AttributeInfo(
                logical_name=str(row["LogicalName"]),
                attribute_type=str(row.get("AttributeType")),
                valid_for_read=bool(row.get("IsValidForRead")),
                valid_for_update=bool(row.get("IsValidForUpdate")),
                valid_for_create=bool(row.get("IsValidForCreate")),
                is_secured=bool(row.get("IsSecured")),
                metadata_id=str(row["MetadataId"]).lower() if row.get("MetadataId") else None,
                max_length=lengths.get(row["LogicalName"]),
            )
            for row in rows
        ]

    def describe_columns(self, entity: str) -> list[ColumnDescription]:
        """Every column of a table with its display label, in one metadata read."""
        rows = self._get_json(
            f"EntityDefinitions(LogicalName={odata_literal(entity)})/Attributes",
            params={
                "$select": "LogicalName,AttributeType,DisplayName,IsValidForRead,IsValidForUpdate,IsSecured,MetadataId"
            },
        )["value"]
        return [
            ColumnDescription(
                logical_name=str(row["LogicalName"]),
                attribute_type=str(row.get("AttributeType")),
                metadata_type=str(row.get("@odata.type") or "").removeprefix("#Microsoft.Dynamics.CRM."),
                display_name=_label(row.get("DisplayName")),
                valid_for_read=bool(row.get("IsValidForRead")),
                valid_for_update=bool(row.get("IsValidForUpdate")),
                is_secured=bool(row.get("IsSecured")),
                metadata_id=str(row["MetadataId"]).lower() if row.get("MetadataId") else None,
            )
            for row in rows
        ]

    def option_labels(self, entity: str, attribute: str, kind: str = "Picklist") -> dict[int, str]:
        """Value -> label of a choice column; ``kind`` is Picklist, MultiSelectPicklist, Boolean, State or Status."""
        body = self._get_json(
            f"EntityDefinitions(LogicalName={odata_literal(entity)})/Attributes(LogicalName={odata_literal(attribute)})"
            f"/Microsoft.Dynamics.CRM.{kind}AttributeMetadata",
            params={"$select": "LogicalName", "$expand": "OptionSet"},
        )
        option_set = body.get("OptionSet") or {}
        options = list(option_set.get("Options") or [])
        options += [option_set[k] for k in ("TrueOption", "FalseOption") if option_set.get(k)]
        return {int(o["Value"]): _label(o.get("Label")) for o in options}

    def column_privileges(self, user_id: str) -> dict[str, ColumnPrivilege]:
        """The user's field-security privileges by attribute MetadataId (0 = not allowed, 4 = allowed)."""
        body = self._get_json(f"systemusers({user_id})/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()")
        privileges = {}
        for row in body.get("AttributePrivileges", []):
            attribute_id = str(row["AttributeId"]).lower()
            privileges[attribute_id] = ColumnPrivilege(
                attribute_id, bool(row.get("CanRead")), bool(row.get("CanUpdate")), bool(row.get("CanCreate"))
            )
        return privileges

    def secured_column_access(self, entity: str, user_id: str) -> dict[str, ColumnPrivilege]:
        """For each secured column of ``entity``: what ``user_id`` may do (no privilege row means nothing)."""
        privileges = self.column_privileges(user_id)
        access = {}
        for attribute in self.attributes(entity):
            if attribute.is_secured and attribute.metadata_id:
                access[attribute.logical_name] = privileges.get(
                    attribute.metadata_id, ColumnPrivilege(attribute.metadata_id, False, False, False)
                )
        return access


def _label(label: Any) -> str:
    if not isinstance(label, Mapping):
        return ""
    user = label.get("UserLocalizedLabel")
    if isinstance(user, Mapping) and user.get("Label") is not None:
        return str(user["Label"])
    localized = label.get("LocalizedLabels") or []
    return str(localized[0].get("Label", "")) if localized else ""
