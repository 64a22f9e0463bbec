"""Read and change this product's plug-in registrations through the Dataverse Web API (act).

Reading finds the service endpoint named :data:`~shared.setup.registration.ENDPOINT_NAME`, the steps whose handler
is that endpoint and whose name starts with :data:`~shared.setup.registration.PREFIX`, and their images; nothing
else in the organisation is looked at, so nothing else can be changed. Writing applies a plan in order: the
endpoint first (steps bind to it), then steps (images bind to them), deletions last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from shared.dataverse.client import DataverseClient
from shared.dataverse.values import EntityRef
from shared.errors import StopSync, SyncError
from shared.setup.registration import (
    ENDPOINT_NAME,
    PREFIX,
    Action,
    Existing,
    ExistingEndpoint,
    ExistingImage,
    ExistingStep,
    Kind,
    Op,
)

_ENDPOINT_COLUMNS = ["name", "description", "url", "contract", "authtype", "messageformat"]
_STEP_COLUMNS = [
    "name",
    "description",
    "mode",
    "stage",
    "rank",
    "asyncautodelete",
    "supporteddeployment",
    "filteringattributes",
    "_sdkmessageid_value",
    "_sdkmessagefilterid_value",
    "_eventhandler_value",
]
_IMAGE_COLUMNS = [
    "name",
    "entityalias",
    "imagetype",
    "attributes",
    "messagepropertyname",
    "_sdkmessageprocessingstepid_value",
]
_SETS = {
    Kind.ENDPOINT: "serviceendpoints",
    Kind.STEP: "sdkmessageprocessingsteps",
    Kind.IMAGE: "sdkmessageprocessingstepimages",
}
_LOGICAL = {
    Kind.ENDPOINT: "serviceendpoint",
    Kind.STEP: "sdkmessageprocessingstep",
    Kind.IMAGE: "sdkmessageprocessingstepimage",
}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Registry:
    """The registration tables of one organisation, seen through a :class:`DataverseClient`."""

    def __init__(self, client: DataverseClient) -> None:
        self.client = client
        self._message_ids: dict[str, str] = {}
        self._message_names: dict[str, str] = {}
        self._filters: dict[str, str | None] = {}  # filter id -> primary table

    # --- read -----------------------------------------------------------------------------------------------

    def existing(self) -> Existing:
        endpoints = tuple(
            ExistingEndpoint(r.id, r.values)
            for r in self.client.query(
                "serviceendpoint", select=_ENDPOINT_COLUMNS, filter=f"name eq {_literal(ENDPOINT_NAME)}"
            )
        )
        steps: list[ExistingStep] = []
        for endpoint in endpoints:
            for row in self.client.query(
                "sdkmessageprocessingstep", select=_STEP_COLUMNS, filter=f"_eventhandler_value eq {endpoint.id}"
            ):
                if not str(row.values.get("name") or "").startswith(PREFIX):
                    continue  # someone else's step on our endpoint: not ours to change
                images = tuple(
                    ExistingImage(i.id, i.values)
                    for i in self.client.query(
                        "sdkmessageprocessingstepimage",
                        select=_IMAGE_COLUMNS,
                        filter=f"_sdkmessageprocessingstepid_value eq {row.id}",
                    )
                )
                steps.append(
                    ExistingStep(
                        row.id,
                        self._filter_entity(_ref_id(row.values, "sdkmessagefilterid")),
                        self._message_name(_ref_id(row.values, "sdkmessageid")),
                        _ref_id(row.values, "eventhandler"),
                        row.values,
                        images,
                    )
                )
        return Existing(endpoints, tuple(steps))

    def foreign_steps_on(self, endpoint_id: str) -> list[str]:
        """Names of steps on our endpoint that this product did not create (they keep the endpoint alive)."""
        return [
            str(r.values.get("name") or r.id)
            for r in self.client.query(
                "sdkmessageprocessingstep", select=["name"], filter=f"_eventhandler_value eq {endpoint_id}"
            )
            if not str(r.values.get("name") or "").startswith(PREFIX)
        ]

    def _message_name(self, message_id: Any) -> str | None:
        if not message_id:
            return None
        key = str(message_id).lower()
        if key not in self._message_names:
            rows = list(self.client.query("sdkmessage", select=["name"], filter=f"sdkmessageid eq {key}"))
            self._message_names[key] = str(rows[0].values.get("name")) if rows else ""
        return self._message_names[key] or None

    def _filter_entity(self, filter_id: Any) -> str | None:
        if not filter_id:
            return None
        key = str(filter_id).lower()
        if key not in self._filters:
            rows = list(
                self.client.query(
                    "sdkmessagefilter", select=["primaryobjecttypecode"], filter=f"sdkmessagefilterid eq {key}"
                )
            )
            self._filters[key] = str(rows[0].values.get("primaryobjecttypecode")) if rows else None
        return self._filters[key]

    def message_id(self, message: str) -> str:
        if message not in self._message_ids:
            rows = list(self.client.query("sdkmessage", select=["name"], filter=f"name eq {_literal(message)}"))
            if not rows:
                raise StopSync(f"Dataverse has no SDK message named {message!r}", code="no-sdk-message")
            self._message_ids[message] = rows[0].id
            self._message_names[rows[0].id] = message
        return self._message_ids[message]

    def filter_id(self, message: str, entity: str) -> str:
        message_id = self.message_id(message)
        rows = list(
            self.client.query(
                "sdkmessagefilter",
                select=["primaryobjecttypecode"],
                filter=f"_sdkmessageid_value eq {message_id} and primaryobjecttypecode eq {_literal(entity)}",
            )
        )
        if not rows:
            raise StopSync(
                f"Dataverse cannot register a {message} step on table '{entity}' (no SDK message filter): "
                "check the table's logical name in the mapping",
                code="no-sdk-message-filter",
            )
        self._filters[rows[0].id] = entity
        return rows[0].id

    # --- write ----------------------------------------------------------------------------------------------

    def apply(self, actions: Sequence[Action], *, on_done: Callable[[Action], None] | None = None) -> ApplyResult:
        """Carry out ``actions`` in order; stops at the first failure and says which action it was."""
        result = ApplyResult()
        endpoint_id = next((a.id for a in actions if a.kind is Kind.ENDPOINT and a.op is not Op.DELETE), None)
        step_ids: dict[tuple[str, str], str] = {
            a.step: a.id for a in actions if a.kind is Kind.STEP and a.step is not None and a.id is not None
        }
        for action in actions:
            if action.op is Op.UNCHANGED:
                result.done.append(action)
                continue
            body = _wire(action.values)
            if action.kind is Kind.STEP and action.op is Op.CREATE:
                assert action.step is not None
                entity, message = action.step
                if endpoint_id is None:
                    raise StopSync("no service endpoint to attach the steps to", code="no-endpoint")
                body |= {
                    "sdkmessageid@odata.bind": f"/sdkmessages({self.message_id(message)})",
                    "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({self.filter_id(message, entity)})",
                    "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
                }
            if action.kind is Kind.IMAGE and action.op is Op.CREATE:
                step_id = step_ids.get(action.step) if action.step else None
                if step_id is None:
                    raise StopSync(f"no step to attach {action.name} to", code="no-step")
                body["sdkmessageprocessingstepid@odata.bind"] = f"/sdkmessageprocessingsteps({step_id})"
            new_id = self._send(action, body)
            if action.kind is Kind.ENDPOINT and action.op is Op.CREATE:
                endpoint_id = new_id
            if action.kind is Kind.STEP and action.op is Op.CREATE and action.step is not None and new_id:
                step_ids[action.step] = new_id
            result.done.append(action)
            if on_done is not None:
                on_done(action)
        return result

    def _send(self, action: Action, body: dict[str, Any]) -> str | None:
        logical = _LOGICAL[action.kind]
        try:
            if action.op is Op.CREATE:
                return self.client.create(logical, body)
            if action.op is Op.UPDATE:
                self.client.update(logical, str(action.id), body)
                return action.id
            if action.op is Op.DELETE:
                self.client.request("DELETE", f"{_SETS[action.kind]}({action.id})", headers={"If-Match": "*"})
                return action.id
        except StopSync:
            raise
        except SyncError as exc:  # name the action; the client's messages never carry the body (or the secret)
            raise RegistrationFailed(action, str(exc)) from None
        return None


@dataclass
class ApplyResult:
    done: list[Action] = field(default_factory=list)


class RegistrationFailed(StopSync):
    def __init__(self, action: Action, reason: str) -> None:
        super().__init__(
            f"could not {action.op.value} {action.kind.value} '{action.name}': {reason}", code="registration"
        )
        self.action = action


def _wire(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items()}


def _ref_id(values: Mapping[str, Any], column: str) -> str | None:
    """The id a lookup column points at (records fold ``_x_value`` into an ``EntityRef`` under ``x``)."""
    value = values.get(column)
    if isinstance(value, EntityRef):
        return value.id
    return str(value).lower() if value else None
