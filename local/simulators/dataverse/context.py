"""The RemoteExecutionContext a webhook step posts, rendered the way Dataverse's serializer writes it.

Written from "Use WebHooks to create external handlers for server events" (Power Apps docs, ``use-webhooks.md``,
the request body example) and the RemoteExecutionContext / IExecutionContext reference: .NET
``DataContractJsonSerializer`` output, so parameter bags, images, attributes and formatted values are lists of
``{"key": ..., "value": ...}``, dates are ``\\/Date(<ms since 1970 UTC>)\\/`` and typed values carry ``__type``
(``OptionSetValue``, ``Money``, ``EntityReference`` of ``http://schemas.microsoft.com/xrm/2011/Contracts``).
An asynchronous post-operation step (stage 40, mode 1) carries a ``ParentContext``: the main operation
(stage 30) whose Target holds just what the caller sent. Keys are in the order the docs show (alphabetical).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Pairs = list[dict[str, Any]]


def net_date(moment: datetime) -> str:
    """``/Date(ms)/``: milliseconds since the epoch, UTC."""
    return f"/Date({(moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)})/"


def option_set(value: int) -> dict[str, Any]:
    return {"__type": f"OptionSetValue:{CONTRACTS}", "Value": value}


def money(value: float) -> dict[str, Any]:
    return {"__type": f"Money:{CONTRACTS}", "Value": value}


def entity_reference(record_id: str, logical_name: str, name: str | None = None) -> dict[str, Any]:
    return {
        "__type": f"EntityReference:{CONTRACTS}",
        "Id": record_id,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "Name": name,
        "RowVersion": None,
    }


def pairs(values: Mapping[str, Any]) -> Pairs:
    return [{"key": key, "value": value} for key, value in values.items()]


def entity(
    logical_name: str,
    record_id: str | None,
    attributes: Mapping[str, Any],
    formatted: Mapping[str, str] | None = None,
    *,
    typed: bool = True,
) -> dict[str, Any]:
    """An Entity; images are written without ``__type``, as in the docs' example."""
    body: dict[str, Any] = {"__type": f"Entity:{CONTRACTS}"} if typed else {}
    body |= {
        "Attributes": pairs(attributes),
        "EntityState": None,
        "FormattedValues": pairs(formatted or {}),
        "Id": record_id or EMPTY_GUID,
        "KeyAttributes": [],
        "LogicalName": logical_name,
        "RelatedEntities": [],
        "RowVersion": None,
    }
    return body


@dataclass(frozen=True, slots=True)
class Operation:
    """What happened, and where: everything a context says apart from the step it is rendered for."""

    message: str
    entity_name: str
    entity_id: str
    user_id: str
    initiating_user_id: str
    organization_name: str
    organization_id: str
    business_unit_id: str
    correlation_id: str
    operation_id: str
    created_on: datetime
    target: dict[str, Any]  # Entity (Create/Update) or EntityReference (Delete), rendered
    request_target: dict[str, Any]  # the Target as the caller sent it (the main operation's)
    depth: int = 1
    outputs: Mapping[str, Any] = field(default_factory=dict)


def _base(op: Operation, *, stage: int, mode: int, step_id: str | None) -> dict[str, Any]:
    return {
        "BusinessUnitId": op.business_unit_id,
        "CorrelationId": op.correlation_id,
        "Depth": op.depth,
        "InitiatingUserAgent": "",
        "InitiatingUserAzureActiveDirectoryObjectId": EMPTY_GUID,
        "InitiatingUserId": op.initiating_user_id,
        "InputParameters": [],
        "IsExecutingOffline": False,
        "IsInTransaction": False,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": op.message,
        "Mode": mode,
        "OperationCreatedOn": net_date(op.created_on),
        "OperationId": op.operation_id,
        "OrganizationId": op.organization_id,
        "OrganizationName": op.organization_name,
        "OutputParameters": [],
        "OwningExtension": {
            "Id": step_id or EMPTY_GUID,
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": None,
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": [],
        "PreEntityImages": [],
        "PrimaryEntityId": op.entity_id,
        "PrimaryEntityName": op.entity_name,
        "RequestId": None,
        "SecondaryEntityName": "none",
        "SharedVariables": [],
        "Stage": stage,
        "UserAzureActiveDirectoryObjectId": EMPTY_GUID,
        "UserId": op.user_id,
    }


def render(
    op: Operation,
    *,
    step_id: str | None,
    pre_images: Mapping[str, dict[str, Any]] | None = None,
    post_images: Mapping[str, dict[str, Any]] | None = None,
    stage: int = 40,
    mode: int = 1,
) -> dict[str, Any]:
    """The context an asynchronous post-operation step receives (images already rendered as entities)."""
    parent = _base(op, stage=30, mode=0 if mode == 1 else mode, step_id=step_id)
    parent["InputParameters"] = [{"key": "Target", "value": op.request_target}]
    if op.message in {"Create", "Update"}:
        parent["InputParameters"].append({"key": "SuppressDuplicateDetection", "value": False})
    parent["SharedVariables"] = [
        {
            "key": "ChangedEntityTypes",
            "value": [
                {
                    "__type": "KeyValuePairOfstringstring:#System.Collections.Generic",
                    "key": op.entity_name,
                    "value": op.message,
                }
            ],
        }
    ]
    context = _base(op, stage=stage, mode=mode, step_id=step_id)
    context["InputParameters"] = [{"key": "Target", "value": op.target}]
    context["OutputParameters"] = pairs(op.outputs)
    context["ParentContext"] = parent
    context["PostEntityImages"] = pairs(post_images or {})
    context["PreEntityImages"] = pairs(pre_images or {})
    return context


def without(context: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    dropped = set(keys)
    return {k: v for k, v in context.items() if k not in dropped}


SIZE_DROPPED = ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages")
"""What Dataverse leaves out of a context over the size limit (it then sets ``x-ms-dynamics-msg-size-exceeded``)."""


def dumps(context: Mapping[str, Any]) -> bytes:
    """Compact JSON with ``/`` escaped as ``\\/``, as the .NET serializer writes it."""
    return json.dumps(context, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/").encode("utf-8")
