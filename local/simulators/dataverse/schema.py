"""The tables, columns and choices of the simulated organisation.

The standard tables (lead, contact, account, systemuser, opportunity, team, and connection with its
connectionrole: an opportunity's stakeholders) are loaded at run time from
``tables/<table>.json``: column metadata recorded from Microsoft's published table reference (each file's
``source`` names the page, its URL and the date). On top of them come the plug-in registration tables (in the
shape the Web API exposes them) and a few customisations a customiser made in the demo organisation
(``new_*`` columns and the ``new_project`` table), which tests and the local host rely on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NS = uuid.UUID("6f1c3a52-6b0e-4f54-9f55-2f6a3c1d0e01")
TABLES_DIR = Path(__file__).with_name("tables")
STANDARD_TABLES = (
    "lead",
    "contact",
    "account",
    "systemuser",
    "opportunity",
    "team",
    "connection",
    "connectionrole",
    "task",
)

LOOKUP_TYPES = frozenset({"Lookup", "Owner", "Customer"})
CHOICE_TYPES = frozenset({"Picklist", "State", "Status"})
TEXT_TYPES = frozenset({"String", "Memo"})

REGISTRATION_TABLES = frozenset(
    {"sdkmessage", "sdkmessagefilter", "serviceendpoint", "sdkmessageprocessingstep", "sdkmessageprocessingstepimage"}
)
"""Plug-in registration tables: writing them never fires a plug-in step."""

SDK_MESSAGES = ("Create", "Update", "Delete", "Assign", "SetState", "Merge", "QualifyLead")
"""The SDK messages the simulated organisation knows (rows of ``sdkmessages``)."""


def metadata_id(*parts: str) -> str:
    """A stable MetadataId, so ids survive restarts and match between metadata and privileges."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


@dataclass(frozen=True, slots=True)
class Column:
    """One attribute, with the metadata that decides how the Web API treats it (names as in AttributeMetadata)."""

    name: str
    type: str  # AttributeType: String, Memo, Integer, BigInt, Decimal, Double, Money, DateTime, Boolean, Picklist,
    #            MultiSelectPicklist (reported as Virtual), Lookup, Customer, Owner, Uniqueidentifier, State, Status
    max_length: int | None = None
    options: dict[int, str] = field(default_factory=dict)
    target: str | None = None  # lookups: the (first) table they point at
    secured: bool = False
    valid_for_update: bool = True
    valid_for_create: bool = True
    required: str = "None"  # RequiredLevel: None, Recommended, ApplicationRequired, SystemRequired
    schema_name: str | None = None
    display_name: str | None = None
    format: str | None = None  # String: Text, Email, Url, Phone, TextArea...; DateTime: DateOnly or DateAndTime
    behavior: str | None = None  # DateTimeBehavior: UserLocal, DateOnly, TimeZoneIndependent
    min_value: float | None = None
    max_value: float | None = None
    precision: int | None = None
    targets: tuple[str, ...] = ()  # Customer/Owner lookups point at several tables
    states: dict[int, int] = field(default_factory=dict)  # Status options: value -> the State it belongs to
    valid_for_read: bool = True
    custom: bool = False
    default: Any = None  # DefaultValue: what the platform stores when a create leaves the column out
    navigation: dict[str, str] = field(default_factory=dict)
    """A polymorphic lookup's navigation property per target, when the table names them itself (an activity's
    ``regardingobjectid_lead_task``); empty: ``<column>_<target>``."""

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    @property
    def wire_name(self) -> str:
        """How the Web API names the value: ``_x_value`` for lookups, the logical name otherwise."""
        return f"_{self.name}_value" if self.is_lookup else self.name

    @property
    def all_targets(self) -> tuple[str, ...]:
        return self.targets or ((self.target,) if self.target else ("systemuser",) if self.type == "Owner" else ())


@dataclass(slots=True)
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    columns: dict[str, Column]
    change_tracking: bool = True
    schema_name: str | None = None
    ownership: str = "UserOwned"
    custom: bool = False
    source: Mapping[str, Any] | None = None

    def column(self, name: str) -> Column | None:
        return self.columns.get(name)

    def column_for(self, wire: str) -> Column | None:
        """The column behind a Web API property name (``_parentaccountid_value`` -> ``parentaccountid``)."""
        if wire.startswith("_") and wire.endswith("_value"):
            found = self.columns.get(wire[1:-6])
            return found if found is not None and found.is_lookup else None
        found = self.columns.get(wire)
        return found if found is not None and not found.is_lookup else None


# --- loading the recorded standard tables -------------------------------------------------------------------------


def column_from_metadata(raw: Mapping[str, Any]) -> Column:
    """A column from its recorded AttributeMetadata (the keys the Web API uses)."""
    options: dict[int, str] = {}
    states: dict[int, int] = {}
    for option in raw.get("OptionSet") or ():
        options[int(option["Value"])] = str(option["Label"])
        if "State" in option:
            states[int(option["Value"])] = int(option["State"])
    targets = tuple(raw.get("Targets") or ())
    return Column(
        name=str(raw["LogicalName"]),
        type=str(raw["AttributeType"]),
        max_length=raw.get("MaxLength"),
        options=options,
        target=targets[0] if targets else None,
        secured=bool(raw.get("IsSecured", False)),
        valid_for_update=bool(raw.get("IsValidForUpdate", True)),
        valid_for_create=bool(raw.get("IsValidForCreate", True)),
        required=str(raw.get("RequiredLevel", "None")),
        schema_name=raw.get("SchemaName"),
        display_name=raw.get("DisplayName"),
        format=raw.get("Format"),
        behavior=raw.get("DateTimeBehavior"),
        min_value=raw.get("MinValue"),
        max_value=raw.get("MaxValue"),
        precision=raw.get("Precision"),
        targets=targets if len(targets) > 1 else (),
        states=states,
        custom=bool(raw.get("IsCustomAttribute", False)),
        default=raw.get("DefaultValue"),
        navigation=dict(raw.get("NavigationPropertyNames") or {}),
    )


def load_table(path: Path) -> Table:
    raw = json.loads(path.read_text(encoding="utf-8"))
    columns = [column_from_metadata(a) for a in raw["Attributes"]]
    return Table(
        logical_name=raw["LogicalName"],
        entity_set=raw["EntitySetName"],
        primary_id=raw["PrimaryIdAttribute"],
        primary_name=raw["PrimaryNameAttribute"],
        columns={c.name: c for c in columns},
        change_tracking=bool(raw.get("ChangeTrackingEnabled", True)),
        schema_name=raw.get("SchemaName"),
        ownership=raw.get("OwnershipType", "UserOwned"),
        source=raw.get("source"),
    )


# --- tables defined here: plug-in registration and the demo customisations ---------------------------------------


def _s(name: str, length: int = 100, **kw: Any) -> Column:
    return Column(name, "String", max_length=length, **kw)


def _system(primary_id: str) -> list[Column]:
    return [
        Column(primary_id, "Uniqueidentifier", valid_for_update=False, required="SystemRequired"),
        Column("createdon", "DateTime", valid_for_update=False, valid_for_create=False, format="DateAndTime"),
        Column("modifiedon", "DateTime", valid_for_update=False, valid_for_create=False, format="DateAndTime"),
        Column("modifiedby", "Lookup", target="systemuser", valid_for_update=False, valid_for_create=False),
        Column("ownerid", "Owner", target="systemuser", targets=("systemuser", "team"), required="SystemRequired"),
        Column("statecode", "State", options={0: "Active", 1: "Inactive"}, required="SystemRequired"),
        Column("statuscode", "Status", options={1: "Active", 2: "Inactive"}, states={1: 0, 2: 1}),
    ]


def _table(logical: str, entity_set: str, name_column: str, columns: Iterable[Column], *, custom: bool) -> Table:
    primary_id = f"{logical}id"
    all_columns = {c.name: c for c in [*_system(primary_id), *columns]}
    return Table(logical, entity_set, primary_id, name_column, all_columns, custom=custom)


def _registration_tables() -> list[Table]:
    # In the shape the Web API exposes them: a step names its message through sdkmessageid and its table through
    # sdkmessagefilterid (a filter is one message on one table), and its handler (here a service endpoint) through
    # the polymorphic eventhandler lookup, bound as eventhandler_serviceendpoint.
    return [
        _table("sdkmessage", "sdkmessages", "name", [_s("name", 256)], custom=False),
        _table(
            "sdkmessagefilter",
            "sdkmessagefilters",
            "name",
            [
                _s("name", 256),
                _s("primaryobjecttypecode", 100),
                _s("secondaryobjecttypecode", 100),
                Column("iscustomprocessingstepallowed", "Boolean", options={0: "No", 1: "Yes"}),
                Column("sdkmessageid", "Lookup", target="sdkmessage"),
            ],
            custom=False,
        ),
        _table(
            "serviceendpoint",
            "serviceendpoints",
            "name",
            [
                _s("name", 256),
                _s("description", 2000),
                _s("url", 2000),
                Column("contract", "Picklist", options={2: "Queue", 5: "Topic", 7: "EventHub", 8: "Webhook"}),
                Column("authtype", "Picklist", options={4: "WebhookKey", 5: "HttpHeader", 6: "HttpQueryString"}),
                _s("authvalue", 4000),
                Column("messageformat", "Picklist", options={1: "BinaryXML", 2: "Json", 3: "TextXML"}),
            ],
            custom=False,
        ),
        _table(
            "sdkmessageprocessingstep",
            "sdkmessageprocessingsteps",
            "name",
            [
                _s("name", 256),
                _s("description", 256),
                _s("primaryobjecttypecode", 100),  # legacy shortcut: the real link goes through sdkmessagefilterid
                _s("sdkmessagename", 100),  # legacy shortcut: the real link goes through sdkmessageid
                _s("filteringattributes", 100000),
                Column("mode", "Picklist", options={0: "Synchronous", 1: "Asynchronous"}),
                Column("stage", "Picklist", options={10: "PreValidation", 20: "PreOperation", 40: "PostOperation"}),
                Column("rank", "Integer"),
                Column("asyncautodelete", "Boolean", options={0: "No", 1: "Yes"}),
                Column(
                    "supporteddeployment",
                    "Picklist",
                    options={0: "ServerOnly", 1: "MicrosoftDynamics365Client", 2: "Both"},
                ),
                Column("sdkmessageid", "Lookup", target="sdkmessage"),
                Column("sdkmessagefilterid", "Lookup", target="sdkmessagefilter"),
                Column("eventhandler", "Lookup", target="serviceendpoint", targets=("serviceendpoint", "plugintype")),
            ],
            custom=False,
        ),
        _table(
            "sdkmessageprocessingstepimage",
            "sdkmessageprocessingstepimages",
            "name",
            [
                _s("name", 256),
                _s("description", 256),
                _s("entityalias", 256),
                _s("messagepropertyname", 256),
                Column("imagetype", "Picklist", options={0: "PreImage", 1: "PostImage", 2: "Both"}),
                _s("attributes", 100000),
                Column("sdkmessageprocessingstepid", "Lookup", target="sdkmessageprocessingstep"),
            ],
            custom=False,
        ),
    ]


CUSTOMISATIONS: dict[str, list[Column]] = {
    "lead": [
        Column(
            "new_interests",
            "MultiSelectPicklist",
            options={1: "Product", 2: "Service", 3: "Events"},
            custom=True,
        ),
        _s("new_salarynotes", 200, secured=True, custom=True),
    ],
    "contact": [_s("new_nationalid", 20, secured=True, custom=True)],
}
"""Columns a customiser added to the demo organisation's standard tables (tests read and secure them)."""


def _new_project() -> Table:
    return _table(
        "new_project",
        "new_projects",
        "new_name",
        [
            _s("new_name", 100, required="ApplicationRequired", custom=True),
            Column("new_budget", "Money", custom=True),
            Column("new_startdate", "DateTime", format="DateOnly", behavior="DateOnly", custom=True),
            Column(
                "new_phase",
                "Picklist",
                options={100000000: "Plan", 100000001: "Build", 100000002: "Run"},
                custom=True,
            ),
            Column("new_accountid", "Lookup", target="account", custom=True),
        ],
        custom=True,
    )


def default_tables() -> dict[str, Table]:
    """A fresh set of tables (callers change columns freely: every organisation gets its own)."""
    tables = [load_table(TABLES_DIR / f"{name}.json") for name in STANDARD_TABLES]
    for table in tables:
        for column in CUSTOMISATIONS.get(table.logical_name, ()):
            table.columns[column.name] = column
    tables += [_new_project(), *_registration_tables()]
    return {t.logical_name: t for t in tables}
