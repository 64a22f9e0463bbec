"""Dataverse's RemoteExecutionContext (webhook body or Service Bus message body) as a typed, frozen value.

The wire form is the .NET ``DataContractJsonSerializer`` rendering: parameter bags, images, attributes and
formatted values are LISTS of ``{"key": ..., "value": ...}`` pairs; dates are ``\\/Date(ms)\\/``. The parser turns
them into read-only mappings of normal-form values (see :mod:`shared.dataverse.values`).

When the context was too big (header ``x-ms-dynamics-msg-size-exceeded``) Dataverse drops ``InputParameters``,
``ParentContext`` and the images: the parse still succeeds with the entity name and id, ``size_exceeded`` is set
and the caller must read the record itself.

Anything malformed raises :class:`ContextError` naming the key and what was wrong; never ``KeyError``/``TypeError``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from shared.core.json_text import JsonTextError, load_json
from shared.dataverse.values import (
    ENTITY_REFERENCE_TYPE,
    ENTITY_TYPE,
    EntityRef,
    Value,
    ValueShapeError,
    decode_context_value,
    encode_context_value,
    format_net_date,
    normalize_guid,
    parse_net_date,
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})
MESSAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")  # Update, SetStateDynamicEntity, new_CustomAction
LOGICAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # contact, new_project (Dataverse writes lowercase)
MAX_INT = 2**31 - 1  # Depth, Stage and Mode are .NET Int32
MAX_DATE_TEXT = 64  # "/Date(1506409448000-0700)/" is 26


class ContextError(ValueError):
    """The payload is not a RemoteExecutionContext we can use; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class EntityImage:
    """An entity as carried by the context: the Target of Create/Update, or a pre/post image."""

    logical_name: str
    id: str | None
    attributes: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    formatted_values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


_NO_OPERATION = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    message_name: str
    primary_entity_name: str
    primary_entity_id: str
    initiating_user_id: str
    user_id: str
    depth: int
    correlation_id: str
    operation_id: str | None
    operation_created_on: datetime | None
    organization_name: str
    organization_id: str
    business_unit_id: str | None
    stage: int | None
    mode: int | None
    target: EntityImage | None
    target_reference: EntityRef | None
    pre_images: Mapping[str, EntityImage]
    post_images: Mapping[str, EntityImage]
    size_exceeded: bool

    @property
    def delivery_key(self) -> str:
        """What makes two deliveries the same change: its system job (``OperationId``, kept on Dataverse's retry),
        else its request (``CorrelationId``). A synchronous step has no system job and sends the empty GUID, the
        same for every change: keyed on it, duplicate detection would drop each later change of a record as a copy
        of the first."""
        operation = self.operation_id
        return operation if operation and operation != _NO_OPERATION else self.correlation_id

    @property
    def changed_attributes(self) -> Mapping[str, Value]:
        """The columns the operation set (Create/Update Target); empty for Delete or a size-exceeded context."""
        return self.target.attributes if self.target is not None else _EMPTY

    @property
    def formatted_values(self) -> Mapping[str, str]:
        return self.target.formatted_values if self.target is not None else _EMPTY

    def image(self, kind: str = "post") -> EntityImage | None:
        """The first pre or post image (steps usually register one), ``None`` if there is none."""
        images = self.post_images if kind == "post" else self.pre_images
        return next(iter(images.values()), None)


# --- parsing -------------------------------------------------------------------------------------------------


def parse_context(payload: bytes | str | Mapping[str, Any], *, size_exceeded: bool | None = None) -> ExecutionContext:
    """Parse a webhook body / Service Bus message body.

    ``size_exceeded`` is the ``x-ms-dynamics-msg-size-exceeded`` header when the caller has it; without it the
    absence of ``InputParameters`` is taken as the same signal.
    """
    try:
        root = _load(payload)
        return _parse(root, size_exceeded)
    except ContextError:
        raise
    except ValueShapeError as exc:
        raise ContextError(str(exc)) from None
    except RecursionError:
        raise ContextError("payload nested too deeply") from None
    except ValueError as exc:  # any other value the parse could not read is the payload's fault, not ours
        raise ContextError(f"a value is out of range ({type(exc).__name__})") from None


def _load(payload: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(payload, Mapping):
        return dict(payload)
    if not isinstance(payload, bytes | bytearray | str):
        raise ContextError(f"payload must be bytes, str or a mapping, not {type(payload).__name__}")
    try:
        root = load_json(payload, parse_float=Decimal, bom=True)  # .NET writers sometimes prepend a BOM
    except JsonTextError as exc:
        raise ContextError(f"payload refused: {exc}") from None
    if not isinstance(root, dict):
        raise ContextError(f"payload must be a JSON object, not {type(root).__name__}")
    return root


def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ValueShapeError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ValueShapeError(f"{where}.{key}: expected {expected}, got {type(value).__name__}")
    return value


def _optional(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if obj.get(key) is None:
        return None
    return _require(obj, key, kind, where)


def _guid(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    if not required and obj.get(key) is None:
        return None
    raw = _require(obj, key, str, where)
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ValueShapeError(f"{where}.{key}: not a GUID: {raw[:60]!r}") from None


def _name(obj: Mapping[str, Any], key: str, pattern: re.Pattern[str], where: str) -> str:
    """A message or table name: the pattern Dataverse's own names follow (so a refusal or reason may name it)."""
    value: str = _require(obj, key, str, where)
    if not pattern.fullmatch(value):
        raise ValueShapeError(f"{where}.{key}: not a Dataverse name")
    return value


def _bounded(obj: Mapping[str, Any], key: str, where: str) -> int:
    value: int = _require(obj, key, int, where)
    if not 0 <= value <= MAX_INT:
        raise ValueShapeError(f"{where}.{key}: out of range (0 to {MAX_INT})")
    return value


def _pairs(raw: object, where: str) -> list[tuple[str, Any]]:
    """A DataContract dictionary: list of {key, value}. Accepts a plain object too (hand-written payloads)."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [(str(k), v) for k, v in raw.items()]
    if not isinstance(raw, list):
        raise ValueShapeError(f"{where}: expected a list of key/value pairs, got {type(raw).__name__}")
    pairs = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ValueShapeError(f"{at}: expected a {{key, value}} object, got {type(item).__name__}")
        key = _require(item, "key", str, at)
        pairs.append((key, item.get("value")))
    return pairs


def _entity(raw: object, where: str) -> EntityImage:
    if not isinstance(raw, dict):
        raise ValueShapeError(f"{where}: expected an entity object, got {type(raw).__name__}")
    logical_name = _require(raw, "LogicalName", str, where)
    entity_id = _guid(raw, "Id", where, required=False)
    attributes = {
        key: decode_context_value(value, f"{where}.Attributes[{key!r}]")
        for key, value in _pairs(raw.get("Attributes"), f"{where}.Attributes")
    }
    formatted: dict[str, str] = {}
    for key, value in _pairs(raw.get("FormattedValues"), f"{where}.FormattedValues"):
        if value is not None and not isinstance(value, str):
            raise ValueShapeError(f"{where}.FormattedValues[{key!r}]: expected a string")
        if value is not None:
            formatted[key] = value
    return EntityImage(logical_name, entity_id, MappingProxyType(attributes), MappingProxyType(formatted))


def _images(raw: object, where: str) -> Mapping[str, EntityImage]:
    return MappingProxyType({key: _entity(value, f"{where}[{key!r}]") for key, value in _pairs(raw, where)})


def _parse(root: dict[str, Any], size_exceeded: bool | None) -> ExecutionContext:
    where = "context"
    message = _name(root, "MessageName", MESSAGE_NAME, where)
    entity_name = _name(root, "PrimaryEntityName", LOGICAL_NAME, where)
    entity_id = _guid(root, "PrimaryEntityId", where)
    depth = _bounded(root, "Depth", where)
    created_raw = _optional(root, "OperationCreatedOn", str, where)
    if created_raw is not None and len(created_raw) > MAX_DATE_TEXT:
        raise ValueShapeError(f"{where}.OperationCreatedOn: longer than any /Date(...)/ value")
    created = parse_net_date(created_raw) if created_raw is not None else None
    if created_raw is not None and created is None:
        raise ValueShapeError(f"{where}.OperationCreatedOn: not a /Date(...)/ value: {created_raw[:40]!r}")

    has_inputs = "InputParameters" in root
    target: EntityImage | None = None
    target_ref: EntityRef | None = None
    for key, value in _pairs(root.get("InputParameters"), f"{where}.InputParameters"):
        if key != "Target":
            continue
        at = f"{where}.InputParameters['Target']"
        if not isinstance(value, dict):
            raise ValueShapeError(f"{at}: expected an Entity or EntityReference, got {type(value).__name__}")
        if str(value.get("__type", "")).startswith("EntityReference:"):
            decoded = decode_context_value(value, at)
            assert isinstance(decoded, EntityRef)
            target_ref = decoded
        else:
            target = _entity(value, at)
    if target is not None and target.id is None:
        target = EntityImage(target.logical_name, entity_id, target.attributes, target.formatted_values)

    return ExecutionContext(
        message_name=message,
        primary_entity_name=entity_name,
        primary_entity_id=str(entity_id),
        initiating_user_id=str(_guid(root, "InitiatingUserId", where)),
        user_id=str(_guid(root, "UserId", where)),
        depth=depth,
        correlation_id=str(_guid(root, "CorrelationId", where)),
        operation_id=_guid(root, "OperationId", where, required=False),
        operation_created_on=created,
        organization_name=_require(root, "OrganizationName", str, where),
        organization_id=str(_guid(root, "OrganizationId", where)),
        business_unit_id=_guid(root, "BusinessUnitId", where, required=False),
        stage=None if root.get("Stage") is None else _bounded(root, "Stage", where),
        mode=None if root.get("Mode") is None else _bounded(root, "Mode", where),
        target=target,
        target_reference=target_ref,
        pre_images=_images(root.get("PreEntityImages"), f"{where}.PreEntityImages"),
        post_images=_images(root.get("PostEntityImages"), f"{where}.PostEntityImages"),
        size_exceeded=bool(size_exceeded) if size_exceeded is not None else not has_inputs,
    )


# --- rendering -----------------------------------------------------------------------------------------------


def _pair_list(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": encode_context_value(value)} for key, value in values.items()]


def render_entity(
    logical_name: str,
    entity_id: str | None,
    attributes: Mapping[str, Any],
    formatted_values: Mapping[str, str] | None = None,
    *,
    typed: bool = True,
) -> dict[str, Any]:
    """An entity in the context dialect. Images are rendered without ``__type``, as Dataverse does."""
    body: dict[str, Any] = {"__type": ENTITY_TYPE} if typed else {}
    body.update(
        {
            "Attributes": _pair_list(attributes),
            "EntityState": None,
            "FormattedValues": [{"key": k, "value": v} for k, v in (formatted_values or {}).items()],
            "Id": entity_id or "00000000-0000-0000-0000-000000000000",
            "KeyAttributes": [],
            "LogicalName": logical_name,
            "RelatedEntities": [],
            "RowVersion": None,
        }
    )
    return body


def render_context(
    *,
    message_name: str,
    entity_name: str,
    entity_id: str,
    user_id: str,
    initiating_user_id: str | None = None,
    organization_name: str = "OrgName",
    organization_id: str = "4ef5b371-e89e-e711-8122-000d3aa2331c",
    business_unit_id: str = "e2b9dd85-e89e-e711-8122-000d3aa2331c",
    attributes: Mapping[str, Any] | None = None,
    formatted_values: Mapping[str, str] | None = None,
    pre_images: Mapping[str, Mapping[str, Any]] | None = None,
    post_images: Mapping[str, Mapping[str, Any]] | None = None,
    depth: int = 1,
    correlation_id: str | None = None,
    operation_id: str | None = None,
    created_on: datetime | None = None,
    step_id: str | None = None,
    size_exceeded: bool = False,
    stage: int = 40,
    mode: int = 1,
) -> dict[str, Any]:
    """A RemoteExecutionContext shaped like the one Dataverse posts (keys in the order the docs show).

    ``attributes`` are normal-form values (or context-dialect dicts such as ``values.option(3)``); for Delete the
    Target is an EntityReference. ``size_exceeded`` drops what Dataverse drops when the payload is too big.
    """
    initiating = initiating_user_id or user_id
    correlation = correlation_id or str(uuid.uuid4())
    operation = operation_id or str(uuid.uuid4())
    created = format_net_date(created_on or datetime.now(UTC))
    if message_name == "Delete":
        target: dict[str, Any] = {
            "__type": ENTITY_REFERENCE_TYPE,
            "Id": entity_id,
            "KeyAttributes": [],
            "LogicalName": entity_name,
            "Name": None,
            "RowVersion": None,
        }
    else:
        target = render_entity(entity_name, entity_id, attributes or {}, formatted_values)
    inputs: list[dict[str, Any]] = [{"key": "Target", "value": target}]
    if message_name in {"Create", "Update"}:
        inputs.append({"key": "SuppressDuplicateDetection", "value": False})
    outputs = [{"key": "id", "value": entity_id}] if message_name == "Create" else []

    def images(source: Mapping[str, Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        return [
            {"key": name, "value": render_entity(entity_name, entity_id, attrs, typed=False)}
            for name, attrs in (source or {}).items()
        ]

    context: dict[str, Any] = {
        "BusinessUnitId": business_unit_id,
        "CorrelationId": correlation,
        "Depth": depth,
        "InitiatingUserAgent": "",
        "InitiatingUserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "InitiatingUserId": initiating,
        "InputParameters": inputs,
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": message_name,
        "Mode": mode,
        "OperationCreatedOn": created,
        "OperationId": operation,
        "OrganizationId": organization_id,
        "OrganizationName": organization_name,
        "OutputParameters": outputs,
        "OwningExtension": {
            "Id": step_id or "75417616-4ea2-e711-8122-000d3aa2331c",
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": None,
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": images(post_images),
        "PreEntityImages": images(pre_images),
        "PrimaryEntityId": entity_id,
        "PrimaryEntityName": entity_name,
        "RequestId": None,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": stage,
        "UserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "UserId": user_id,
    }
    if size_exceeded:
        for key in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
            del context[key]
    return context


def dumps_context(context: Mapping[str, Any]) -> bytes:
    """Serialise like Dataverse does: compact, with ``/`` escaped as ``\\/``."""
    return json.dumps(context, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/").encode("utf-8")


__all__ = [
    "ContextError",
    "EntityImage",
    "EntityRef",
    "ExecutionContext",
    "dumps_context",
    "normalize_guid",
    "parse_context",
    "render_context",
    "render_entity",
]
