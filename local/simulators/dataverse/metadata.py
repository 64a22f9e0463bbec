"""Table definitions: ``EntityDefinitions`` and their ``Attributes`` with option sets, as "Query table definitions
using the Web API" (Power Apps docs, ``webapi/query-metadata-web-api.md``) describes them.

Supported: the ``EntityDefinitions`` collection (``$select``, ``$filter``), one definition by
``(LogicalName='x')`` or by MetadataId, its ``Attributes`` collection or one attribute (by logical name or
MetadataId), a type cast (``/Microsoft.Dynamics.CRM.PicklistAttributeMetadata``...), ``$select`` and ``$filter``
on attributes, and ``$expand=OptionSet`` / ``GlobalOptionSet`` (with a nested ``($select=...)``). Metadata is
read-only here. Attribute properties use the AttributeMetadata names: ``AttributeTypeName``, ``RequiredLevel``
(a managed property), ``Format`` / ``FormatName``, ``DateTimeBehavior`` and ``Targets``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from local.simulators.dataverse import errors
from local.simulators.dataverse.odata import FilterError, parse_filter
from local.simulators.dataverse.rows import Organisation
from local.simulators.dataverse.schema import Column, Table, metadata_id
from local.simulators.dataverse.wire import json_response, service_root

TYPE_NAMES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "MultiSelectPicklist": "MultiSelectPicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
}
OBJECT_TYPE_CODES = {"account": 1, "contact": 2, "opportunity": 3, "lead": 4, "systemuser": 8, "team": 9}
_KEY = re.compile(r"^(?:LogicalName='(?P<name>\w+)'|(?P<id>[0-9a-fA-F-]{36}))$")
_ATTRIBUTES = re.compile(
    r"^Attributes(?:\((?:LogicalName='(?P<name>\w+)'|(?P<id>[0-9a-fA-F-]{36}))\))?(?:/Microsoft\.Dynamics\.CRM\.(?P<cast>\w+))?$"
)


def label(text: str | None) -> dict[str, Any]:
    if text is None:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    localized = {"Label": text, "LanguageCode": 1033, "IsManaged": True, "MetadataId": None, "HasChanged": None}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def entity_definition(table: Table) -> dict[str, Any]:
    return {
        "MetadataId": metadata_id(table.logical_name),
        "LogicalName": table.logical_name,
        "SchemaName": table.schema_name or table.logical_name,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "ObjectTypeCode": OBJECT_TYPE_CODES.get(table.logical_name, 10000 + sum(map(ord, table.logical_name))),
        "OwnershipType": table.ownership,
        "ChangeTrackingEnabled": table.change_tracking,
        "IsCustomEntity": table.custom,
        "IsOptimisticConcurrencyEnabled": True,
        "IsActivity": False,
        "IsIntersect": False,
        "TableType": "Standard",
        "DisplayName": label(table.schema_name or table.logical_name),
    }


def attribute_definition(table: Table, column: Column) -> dict[str, Any]:
    kind = column.type
    body: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{TYPE_NAMES.get(kind, 'AttributeMetadata')}",
        "MetadataId": metadata_id(table.logical_name, column.name),
        "LogicalName": column.name,
        "SchemaName": column.schema_name or column.name,
        "EntityLogicalName": table.logical_name,
        "AttributeType": "Virtual" if kind == "MultiSelectPicklist" else kind,
        "AttributeTypeName": {"Value": f"{kind}Type"},
        "AttributeOf": None,
        "DisplayName": label(column.display_name),
        "IsCustomAttribute": column.custom,
        "IsPrimaryId": column.name == table.primary_id,
        "IsPrimaryName": column.name == table.primary_name,
        "IsLogical": False,
        "IsSecured": column.secured,
        "IsValidForRead": column.valid_for_read,
        "IsValidForCreate": column.valid_for_create,
        "IsValidForUpdate": column.valid_for_update,
        "RequiredLevel": {
            "Value": column.required,
            "CanBeChanged": column.required != "SystemRequired",
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
    }
    if kind in {"String", "Memo"}:
        body["MaxLength"] = column.max_length
        body["Format"] = column.format or ("TextArea" if kind == "Memo" else "Text")
        if kind == "String":
            body["FormatName"] = {"Value": column.format or "Text"}
    if kind == "DateTime":
        body["Format"] = column.format or "DateAndTime"
        body["DateTimeBehavior"] = {"Value": column.behavior or "UserLocal"}
    if kind in {"Integer", "BigInt", "Decimal", "Double", "Money"}:
        body["MinValue"] = column.min_value
        body["MaxValue"] = column.max_value
        if kind not in {"Integer", "BigInt"}:
            body["Precision"] = column.precision
    if column.is_lookup:
        body["Targets"] = list(column.all_targets)
    return body


def option_set(table: Table, column: Column) -> dict[str, Any]:
    body: dict[str, Any] = {
        "MetadataId": metadata_id(table.logical_name, column.name, "optionset"),
        "Name": f"{table.logical_name}_{column.name}",
        "IsGlobal": False,
        "IsCustomOptionSet": column.custom,
        "OptionSetType": {"Boolean": "Boolean", "State": "State", "Status": "Status"}.get(column.type, "Picklist"),
    }
    if column.type == "Boolean":
        body["TrueOption"] = {"Value": 1, "Label": label(column.options.get(1, "Yes"))}
        body["FalseOption"] = {"Value": 0, "Label": label(column.options.get(0, "No"))}
        return body
    options = []
    for value, text in column.options.items():
        option: dict[str, Any] = {
            "Value": value,
            "Color": None,
            "IsManaged": True,
            "ExternalValue": None,
            "ParentValues": [],
            "MetadataId": None,
            "HasChanged": None,
            "Label": label(text),
            "Description": label(None),
        }
        if column.type == "Status" and value in column.states:
            option["State"] = column.states[value]
        options.append(option)
    body["Options"] = options
    return body


def _project(full: Mapping[str, Any], select: list[str], always: set[str]) -> dict[str, Any]:
    return {k: v for k, v in full.items() if not select or k in select or k in always}


def _select(raw: str | None) -> list[str]:
    return [s.strip() for s in (raw or "").split(",") if s.strip()]


def _filtered(items: list[dict[str, Any]], text: str | None) -> list[dict[str, Any]]:
    if not text:
        return items
    try:
        predicate, _ = parse_filter(text)
    except FilterError as exc:
        raise errors.query_syntax(str(exc)) from None
    return [i for i in items if predicate(i)]


def _expansions(raw: str | None) -> dict[str, list[str]]:
    """``OptionSet($select=Options),GlobalOptionSet`` -> {"OptionSet": ["Options"], "GlobalOptionSet": []}."""
    out: dict[str, list[str]] = {}
    for match in re.finditer(r"(\w+)(?:\(\$select=([^)]*)\))?", raw or ""):
        out[match.group(1)] = _select(match.group(2))
    return out


def handle(org: Organisation, request: httpx.Request, key: str | None, rest: str | None) -> httpx.Response:
    if request.method != "GET":
        raise errors.not_implemented("changing table definitions")
    base = service_root(request)
    params = request.url.params
    select = _select(params.get("$select"))
    if key is None:
        if rest:
            raise errors.segment_not_found(rest)
        rows = _filtered([entity_definition(t) for t in org.tables.values()], params.get("$filter"))
        context = f"{base}$metadata#EntityDefinitions" + (f"({','.join(select)})" if select else "")
        return json_response(
            200, {"@odata.context": context, "value": [_project(r, select, {"MetadataId"}) for r in rows]}
        )
    match = _KEY.match(key)
    table = None
    if match is not None and match.group("name"):
        table = org.tables.get(match.group("name"))
    elif match is not None:
        table = next((t for t in org.tables.values() if metadata_id(t.logical_name) == match.group("id").lower()), None)
    if table is None:
        raise errors.ApiError(404, "0x80040217", f"Could not find entity with name or id {key}.")
    if not rest:
        body = _project(entity_definition(table), select, {"MetadataId"})
        context = f"{base}$metadata#EntityDefinitions" + (f"({','.join(select)})" if select else "") + "/$entity"
        return json_response(200, {"@odata.context": context, **body})
    attribute = _ATTRIBUTES.match(rest)
    if attribute is None:
        raise errors.segment_not_found(rest)
    return _attributes(table, request, base, attribute)


def _attributes(table: Table, request: httpx.Request, base: str, match: re.Match[str]) -> httpx.Response:
    params = request.url.params
    select = _select(params.get("$select"))
    name, by_id, cast = match.group("name"), match.group("id"), match.group("cast")
    columns = list(table.columns.values())
    single = name is not None or by_id is not None
    if name is not None:
        columns = [c for c in columns if c.name == name]
    elif by_id is not None:
        columns = [c for c in columns if metadata_id(table.logical_name, c.name) == by_id.lower()]
    if single and not columns:
        raise errors.ApiError(404, "0x80040217", f"Could not find attribute {name or by_id} on {table.logical_name}.")
    if cast:
        if cast not in TYPE_NAMES.values() and cast != "AttributeMetadata":
            raise errors.segment_not_found(f"Microsoft.Dynamics.CRM.{cast}")
        columns = [c for c in columns if cast == "AttributeMetadata" or TYPE_NAMES.get(c.type) == cast]
        if single and not columns:
            raise errors.ApiError(400, "0x80060888", f"The attribute is not of type {cast}.")
    expand = _expansions(params.get("$expand"))
    rows = []
    for column in columns:
        full = attribute_definition(table, column)
        body = _project(full, select, {"@odata.type", "MetadataId"})
        for nav in ("OptionSet", "GlobalOptionSet"):
            if nav in expand and column.options:
                body[nav] = (
                    _project(option_set(table, column), expand[nav], {"MetadataId"}) if nav == "OptionSet" else None
                )
        rows.append((full, body))
    if not single:
        full_rows = _filtered([full for full, _ in rows], params.get("$filter"))
        kept = {id(r) for r in full_rows}
        rows = [(full, body) for full, body in rows if id(full) in kept]
    context = f"{base}$metadata#EntityDefinitions('{table.logical_name}')/Attributes"
    if cast:
        context += f"/Microsoft.Dynamics.CRM.{cast}"
    if single:
        return json_response(200, {"@odata.context": context + "/$entity", **rows[0][1]})
    return json_response(200, {"@odata.context": context, "value": [body for _, body in rows]})
