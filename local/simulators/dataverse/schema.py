"""The tables, columns and choices the simulated organisation has (a small slice of a real one)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

_NS = uuid.UUID("6f1c3a52-6b0e-4f54-9f55-2f6a3c1d0e01")


REGISTRATION_TABLES = frozenset(
    {"sdkmessage", "sdkmessagefilter", "serviceendpoint", "sdkmessageprocessingstep", "sdkmessageprocessingstepimage"}
)
"""Plug-in registration tables: writing them never fires a plug-in step."""

SDK_MESSAGES = ("Create", "Update", "Delete", "Assign", "SetState", "Merge", "QualifyLead")
"""The SDK messages the simulated organisation knows (rows of ``sdkmessages``)."""


def metadata_id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # AttributeType: String, Memo, Integer, Decimal, Double, Money, DateTime, Boolean, Picklist,
    #            MultiSelectPicklist (reported as Virtual), Lookup, Uniqueidentifier, State, Status, Owner
    max_length: int | None = None
    options: dict[int, str] = field(default_factory=dict)
    target: str | None = None  # lookups: the table they point at
    secured: bool = False
    valid_for_update: bool = True
    valid_for_create: bool = True


@dataclass(slots=True)
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    columns: dict[str, Column]
    change_tracking: bool = True

    def column(self, name: str) -> Column | None:
        return self.columns.get(name)


def _s(name: str, length: int = 100, **kw: object) -> Column:
    return Column(name, "String", max_length=length, **kw)  # type: ignore[arg-type]


def _common(table: str, primary_id: str) -> list[Column]:
    return [
        Column(primary_id, "Uniqueidentifier", valid_for_update=False),
        Column("createdon", "DateTime", valid_for_update=False, valid_for_create=False),
        Column("modifiedon", "DateTime", valid_for_update=False, valid_for_create=False),
        Column("modifiedby", "Lookup", target="systemuser", valid_for_update=False, valid_for_create=False),
        Column("ownerid", "Owner", target="systemuser"),
        Column("statecode", "State", options={0: "Active", 1: "Inactive"}),
        Column("statuscode", "Status", options={1: "Active", 2: "Inactive"}),
    ]


def _table(logical: str, entity_set: str, name_column: str, columns: list[Column]) -> Table:
    primary_id = f"{logical}id"
    all_columns = {c.name: c for c in [*_common(logical, primary_id), *columns]}
    return Table(logical, entity_set, primary_id, name_column, all_columns)


def default_tables() -> dict[str, Table]:
    lead_state = Column("statecode", "State", options={0: "Open", 1: "Qualified", 2: "Disqualified"})
    lead_status = Column("statuscode", "Status", options={1: "New", 2: "Contacted", 3: "Qualified", 4: "Lost"})
    tables = [
        _table(
            "lead",
            "leads",
            "fullname",
            [
                _s("firstname", 50),
                _s("lastname", 50),
                _s("fullname", 160, valid_for_update=False, valid_for_create=False),
                _s("emailaddress1", 100),
                _s("companyname", 100),
                _s("jobtitle", 100),
                _s("telephone1", 50),
                Column("leadsourcecode", "Picklist", options={1: "Advertisement", 2: "Employee Referral", 8: "Web"}),
                Column("new_interests", "MultiSelectPicklist", options={1: "Product", 2: "Service", 3: "Events"}),
                Column("donotemail", "Boolean", options={0: "Allow", 1: "Do Not Allow"}),
                Column("revenue", "Money"),
                Column("numberofemployees", "Integer"),
                Column("parentaccountid", "Lookup", target="account"),
                _s("new_salarynotes", 200, secured=True),
                lead_state,
                lead_status,
            ],
        ),
        _table(
            "contact",
            "contacts",
            "fullname",
            [
                _s("firstname", 50),
                _s("lastname", 50),
                _s("fullname", 160, valid_for_update=False, valid_for_create=False),
                _s("emailaddress1", 100),
                _s("jobtitle", 100),
                _s("telephone1", 50),
                Column("donotemail", "Boolean", options={0: "Allow", 1: "Do Not Allow"}),
                Column("parentcustomerid", "Lookup", target="account"),
                Column("originatingleadid", "Lookup", target="lead"),
                Column("birthdate", "DateTime"),
                _s("new_nationalid", 20, secured=True),
            ],
        ),
        _table(
            "account",
            "accounts",
            "name",
            [
                _s("name", 160),
                _s("accountnumber", 20),
                _s("telephone1", 50),
                _s("fax", 50),
                _s("websiteurl", 200),
                Column("industrycode", "Picklist", options={1: "Accounting", 2: "Agriculture", 33: "Consulting"}),
                Column("revenue", "Money"),
                Column("numberofemployees", "Integer"),
                Column("primarycontactid", "Lookup", target="contact"),
            ],
        ),
        _table(
            "systemuser",
            "systemusers",
            "fullname",
            [
                _s("firstname", 64),
                _s("lastname", 64),
                _s("fullname", 200, valid_for_update=False),
                _s("internalemailaddress", 100),
                _s("applicationid", 36),
                Column("isdisabled", "Boolean", options={0: "Enabled", 1: "Disabled"}),
            ],
        ),
        _table(
            "opportunity",
            "opportunities",
            "name",
            [
                _s("name", 300),
                Column("estimatedvalue", "Money"),
                Column("estimatedclosedate", "DateTime"),
                Column("parentaccountid", "Lookup", target="account"),
                Column("parentcontactid", "Lookup", target="contact"),
                Column("originatingleadid", "Lookup", target="lead"),
                Column("closeprobability", "Integer"),
            ],
        ),
        _table("team", "teams", "name", [_s("name", 160), Column("teamtype", "Picklist", options={0: "Owner"})]),
        _table(
            "new_project",
            "new_projects",
            "new_name",
            [
                _s("new_name", 100),
                Column("new_budget", "Money"),
                Column("new_startdate", "DateTime"),
                Column("new_phase", "Picklist", options={100000000: "Plan", 100000001: "Build", 100000002: "Run"}),
                Column("new_accountid", "Lookup", target="account"),
            ],
        ),
        # Plug-in registration, in the shape the Web API exposes: a step names its message through sdkmessageid
        # and its table through sdkmessagefilterid (a filter is one message on one table), and its handler (here a
        # service endpoint) through the polymorphic eventhandler lookup, bound as eventhandler_serviceendpoint.
        _table("sdkmessage", "sdkmessages", "name", [_s("name", 256)]),
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
                Column("eventhandler", "Lookup", target="serviceendpoint"),
            ],
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
        ),
    ]
    return {t.logical_name: t for t in tables}
