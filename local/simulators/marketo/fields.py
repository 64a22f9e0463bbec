"""The simulated lead schema: standard fields every subscription has, plus custom fields created through the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldDef:
    id: int
    name: str
    display_name: str
    data_type: str
    length: int | None = None
    read_only: bool = False
    is_custom: bool = False
    is_hidden: bool = False
    description: str | None = None

    def describe(self) -> dict[str, Any]:
        """One row of ``/rest/v1/leads/describe.json``."""
        row: dict[str, Any] = {"id": self.id, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            row["length"] = self.length
        row["rest"] = {"name": self.name, "readOnly": self.read_only}
        row["soap"] = {"name": self.name[:1].upper() + self.name[1:], "readOnly": self.read_only}
        return row

    def describe2(self) -> dict[str, Any]:
        """One ``fields`` row of ``/rest/v1/leads/describe2.json`` (the endpoint reference's LeadAttribute2)."""
        row: dict[str, Any] = {"name": self.name, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            row["length"] = self.length
        row.update(updateable=not self.read_only, crmManaged=False)
        return row

    @property
    def searchable(self) -> bool:
        """Usable as ``filterType`` (Get Leads by Filter Type) and ``lookupField`` (Sync Leads)."""
        return self.data_type in SEARCHABLE_TYPES and self.name not in UNSUPPORTED_KEYS

    def schema(self) -> dict[str, Any]:
        """One row of ``/rest/v1/leads/schema/fields.json``."""
        row: dict[str, Any] = {
            "displayName": self.display_name,
            "name": self.name,
            "description": self.description,
            "dataType": self.data_type,
        }
        if self.length is not None:
            row["length"] = self.length
        row.update(
            {
                "isHidden": self.is_hidden,
                "isHtmlEncodingInEmail": self.data_type in ("string", "email", "text", "phone", "url"),
                "isSensitive": False,
                "isCustom": self.is_custom,
            }
        )
        return row


_STANDARD: tuple[tuple[str, str, str, int | None, bool], ...] = (
    ("id", "Id", "integer", None, True),
    ("company", "Company Name", "string", 255, False),
    ("salutation", "Salutation", "string", 255, False),
    ("firstName", "First Name", "string", 255, False),
    ("middleName", "Middle Name", "string", 255, False),
    ("lastName", "Last Name", "string", 255, False),
    ("email", "Email Address", "email", 255, False),
    ("phone", "Phone Number", "phone", 255, False),
    ("mobilePhone", "Mobile Phone Number", "phone", 255, False),
    ("title", "Job Title", "string", 255, False),
    ("address", "Address", "text", 65535, False),
    ("city", "City", "string", 255, False),
    ("state", "State", "string", 255, False),
    ("country", "Country", "string", 255, False),
    ("postalCode", "Postal Code", "string", 255, False),
    ("website", "Website", "url", 255, False),
    ("dateOfBirth", "Date of Birth", "date", None, False),
    ("leadSource", "Person Source", "string", 255, False),
    ("leadStatus", "Person Status", "string", 255, False),
    ("leadScore", "Person Score", "integer", None, False),
    ("annualRevenue", "Annual Revenue", "currency", None, False),
    ("numberOfEmployees", "Num Employees", "integer", None, False),
    ("unsubscribed", "Unsubscribed", "boolean", None, False),
    ("externalCompanyId", "External Company Id", "string", 100, False),
    ("externalSalesPersonId", "External Sales Person Id", "string", 100, False),
    ("createdAt", "Created At", "datetime", None, True),
    ("updatedAt", "Updated At", "datetime", None, True),
)

DEFAULT_RETURN_FIELDS = ("id", "updatedAt", "lastName", "email", "createdAt", "firstName")
SEARCHABLE_TYPES = frozenset({"string", "email", "integer", "phone"})
# Standard fields Marketo refuses as filterType or lookupField: 1011 "Field not supported" (the error-codes page
# names firstName and lastName as examples).
UNSUPPORTED_KEYS = frozenset({"firstName", "lastName"})
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DATA_TYPES = frozenset(
    {"string", "text", "integer", "float", "currency", "boolean", "date", "datetime", "email", "phone", "url", "score"}
)


def standard_fields() -> list[FieldDef]:
    return [
        FieldDef(id=index + 1, name=name, display_name=display, data_type=kind, length=length, read_only=read_only)
        for index, (name, display, kind, length, read_only) in enumerate(_STANDARD)
    ]


def valid_field_name(name: str) -> bool:
    return bool(_NAME.match(name))


class InvalidValue(ValueError):
    """A value the field's data type does not accept (record-level 1003)."""


def coerce(field: FieldDef, value: Any) -> Any:
    """The value as Marketo would store it, or ``InvalidValue``. ``None`` and ``""`` clear the field."""
    if value is None or value == "":
        return None
    kind = field.data_type
    try:
        if kind in ("integer", "score"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise InvalidValue(value)
            return int(value)
        if kind in ("float", "currency"):
            if isinstance(value, bool):
                raise InvalidValue(value)
            return float(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise InvalidValue(value)
        if kind == "date":
            return date.fromisoformat(str(value)).isoformat()
        if kind == "datetime":
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()
        text = str(value)
        if kind == "email" and "@" not in text:
            raise InvalidValue(value)
        return text
    except (TypeError, ValueError) as exc:
        raise InvalidValue(str(value)) from exc


def as_text(value: Any) -> str | None:
    """How values appear in activities (``newValue``/``oldValue``) and CSV files."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
