"""Plug-in steps: registered webhook steps fire after each committed write, like asynchronous post-operation steps.

Registrations are rows of the registration tables, as the Plugin Registration Tool (or the product's setup)
writes them: a ``serviceendpoint`` (contract 8 = webhook; auth type 4 WebhookKey -> ``?code=``, 5 HttpHeader,
6 HttpQueryString), ``sdkmessageprocessingstep`` rows naming their message (``sdkmessageid``), table
(``sdkmessagefilterid``) and handler (``eventhandler``), with ``filteringattributes`` for Update, and
``sdkmessageprocessingstepimage`` rows for pre/post images. Without any registration, every write goes to each of
``webhook_urls`` with full images (a convenience for tests). Deliveries are queued per request thread and sent
after the request's lock is released, so a rolled-back change set sends nothing (see ``webhooks.py``).
"""

from __future__ import annotations

import html
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from local.simulators.dataverse import context as ctx
from local.simulators.dataverse.errors import ApiError
from local.simulators.dataverse.present import formatted_value
from local.simulators.dataverse.rows import Organisation, Write
from local.simulators.dataverse.schema import CHOICE_TYPES, REGISTRATION_TABLES, Column, Table, metadata_id
from local.simulators.dataverse.webhooks import Delivery, DeliverySwitch, Sender, deliver, http_sender

Images = dict[str, dict[str, Any]]
_FORMATTED_TYPES = CHOICE_TYPES | {"Boolean", "Money", "DateTime", "MultiSelectPicklist"}


@dataclass
class Plugins:
    org: Organisation
    organization_name: str
    organization_id: str
    business_unit_id: str
    webhook_urls: list[str] = field(default_factory=list)
    sender: Sender = http_sender
    max_context_bytes: int = 256 * 1024
    deliveries: list[Delivery] = field(default_factory=list)
    switch: DeliverySwitch = field(default_factory=DeliverySwitch)
    _pending: threading.local = field(default_factory=threading.local)

    # --- the queue of this request's deliveries -------------------------------------------------------------

    def begin(self) -> None:
        self._pending.items = []

    def _queue(self) -> list[tuple[str, dict[str, str], bytes]]:
        if not hasattr(self._pending, "items"):
            self._pending.items = []
        items: list[tuple[str, dict[str, str], bytes]] = self._pending.items
        return items

    def mark(self) -> int:
        return len(self._queue())

    def rollback_to(self, mark: int) -> None:
        del self._queue()[mark:]

    def flush(self) -> None:
        items = self._queue()
        self._pending.items = []
        for url, headers, body in items:
            if not self.switch.admit():
                continue
            delivery = deliver(self.sender, url, headers, body)
            self.switch.outcome(delivery)
            with self.org.lock:
                self.deliveries.append(delivery)

    # --- registrations -----------------------------------------------------------------------------------------

    def _rows(self, logical_name: str) -> dict[str, dict[str, Any]]:
        return self.org.state.rows.get(logical_name, {})

    def step_target(self, step: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(table, message) of a step, through its message and filter lookups (or the legacy shortcut columns)."""
        message_row = self._rows("sdkmessage").get(str(step.get("_sdkmessageid_value")))
        filter_row = self._rows("sdkmessagefilter").get(str(step.get("_sdkmessagefilterid_value")))
        message = message_row.get("name") if message_row else step.get("sdkmessagename")
        entity = filter_row.get("primaryobjecttypecode") if filter_row else step.get("primaryobjecttypecode")
        return entity, message

    def check_step(self, table: Table, row: Mapping[str, Any]) -> None:
        """Dataverse refuses a step whose filter belongs to another message."""
        if table.logical_name != "sdkmessageprocessingstep":
            return
        filter_row = self._rows("sdkmessagefilter").get(str(row.get("_sdkmessagefilterid_value")))
        if filter_row is not None and filter_row.get("_sdkmessageid_value") != row.get("_sdkmessageid_value"):
            raise ApiError(400, "0x80040203", "The SdkMessageFilter of this step does not belong to its SdkMessage.")

    def _steps(self, entity: str, message: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self._rows("sdkmessageprocessingstep").values()
            if s.get("statecode") != 1 and self.step_target(s) == (entity, message)
        ]

    @staticmethod
    def endpoint_target(endpoint: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        url = str(endpoint.get("url"))
        auth_type, auth_value = endpoint.get("authtype"), str(endpoint.get("authvalue") or "")
        settings = {
            html.unescape(k): html.unescape(v)
            for k, v in re.findall(r'<setting name="([^"]+)" value="([^"]*)"', auth_value)
        }
        if auth_type == 4:
            return f"{url}{'&' if '?' in url else '?'}code={auth_value}", {}
        if auth_type == 6:
            return f"{url}{'&' if '?' in url else '?'}{urlencode(settings)}", {}
        if auth_type == 5:
            return url, settings
        return url, {}

    # --- values in the context dialect -------------------------------------------------------------------------

    def _value(self, column: Column, value: Any, *, named: bool) -> Any:
        if value is None:
            return None
        if column.type in CHOICE_TYPES:
            return ctx.option_set(int(value))
        if column.type == "MultiSelectPicklist":
            return [ctx.option_set(int(v)) for v in str(value).split(",") if v]
        if column.type == "Money":
            return ctx.money(float(value))
        if column.type == "DateTime":
            return ctx.net_date(datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC))
        if column.is_lookup:
            target = self.org.lookup_target(column, str(value))
            logical = target.logical_name if target is not None else (column.target or "systemuser")
            row = self.org.row(target, str(value)) if target is not None else None
            name = row.get(target.primary_name) if named and row and target is not None else None
            return ctx.entity_reference(str(value), logical, name)
        return value

    def _attributes(
        self, table: Table, row: Mapping[str, Any], wires: Iterable[str] | None, *, named: bool
    ) -> tuple[dict[str, Any], dict[str, str]]:
        attributes: dict[str, Any] = {}
        formatted: dict[str, str] = {}
        wanted = set(wires) if wires is not None else None
        for wire, value in row.items():
            column = table.column_for(wire)
            if column is None or (wanted is not None and wire not in wanted):
                continue
            if wanted is None and value is None:
                continue
            attributes[column.name] = self._value(column, value, named=named)
            if named and column.type in _FORMATTED_TYPES and value is not None:
                text = formatted_value(self.org, column, value)
                if text is not None:
                    formatted[column.name] = text
        return attributes, formatted

    def _image(self, table: Table, record_id: str, row: Mapping[str, Any], columns: set[str] | None) -> dict[str, Any]:
        wires = {table.columns[c].wire_name for c in columns if c in table.columns} if columns else None
        attributes, formatted = self._attributes(table, row, wires, named=True)
        if wires is not None:
            attributes = {k: v for k, v in attributes.items() if v is not None}
        return ctx.entity(table.logical_name, record_id, attributes, formatted, typed=False)

    def _images(self, step: Mapping[str, Any], write: Write) -> tuple[Images, Images]:
        pre: Images = {}
        post: Images = {}
        step_id = step["sdkmessageprocessingstepid"]
        for image in self._rows("sdkmessageprocessingstepimage").values():
            if image.get("_sdkmessageprocessingstepid_value") != step_id:
                continue
            alias = str(image.get("entityalias") or image.get("name") or "Image")
            columns = {a for a in str(image.get("attributes") or "").split(",") if a} or None
            if image.get("imagetype") in {0, 2} and write.before is not None:
                pre[alias] = self._image(write.table, write.record_id, write.before, columns)
            if image.get("imagetype") in {1, 2} and write.after is not None:
                post[alias] = self._image(write.table, write.record_id, write.after, columns)
        return pre, post

    # --- firing ------------------------------------------------------------------------------------------------

    def _operation(self, write: Write) -> ctx.Operation:
        table, record_id = write.table, write.record_id
        if write.after is None:
            target = ctx.entity_reference(record_id, table.logical_name)
            request_target = target
        else:
            if write.message == "Create":
                wires: set[str] = {k for k, v in write.after.items() if v is not None}
            else:
                derived = {
                    k for k in ("fullname", "yominame") if write.before and write.before.get(k) != write.after.get(k)
                }
                wires = set(write.sent) | derived | {table.primary_id, "modifiedon", "_modifiedby_value"}
            attributes, _ = self._attributes(table, write.after, wires, named=False)
            target = ctx.entity(table.logical_name, record_id, attributes)
            sent, _ = self._attributes(table, write.after, set(write.sent) | {table.primary_id}, named=False)
            request_target = ctx.entity(table.logical_name, record_id, sent)
        return ctx.Operation(
            message=write.message,
            entity_name=table.logical_name,
            entity_id=record_id,
            user_id=write.caller.user_id,
            initiating_user_id=write.caller.user_id,
            organization_name=self.organization_name,
            organization_id=self.organization_id,
            business_unit_id=self.business_unit_id,
            correlation_id=str(uuid.uuid4()),
            operation_id=str(uuid.uuid4()),
            created_on=self.org.now(),
            target=target,
            request_target=request_target,
            depth=write.caller.depth,
            outputs={"id": record_id} if write.message == "Create" else {},
        )

    def notify(self, write: Write) -> None:
        """Queue a delivery for every enabled webhook step the write triggers."""
        table = write.table
        if table.logical_name in REGISTRATION_TABLES:
            return
        targets: list[tuple[str, dict[str, str], str | None, Images, Images]] = []
        if self._rows("sdkmessageprocessingstep"):
            sent = {table.column_for(w).name for w in write.sent if table.column_for(w) is not None}  # type: ignore[union-attr]
            for step in self._steps(table.logical_name, write.message):
                filtering = {a for a in str(step.get("filteringattributes") or "").split(",") if a}
                if write.message == "Update" and filtering and not filtering & sent:
                    continue
                endpoint = self._rows("serviceendpoint").get(str(step.get("_eventhandler_value")))
                if endpoint is None or endpoint.get("contract") != 8:
                    continue
                url, headers = self.endpoint_target(endpoint)
                pre, post = self._images(step, write)
                targets.append((url, headers, str(step["sdkmessageprocessingstepid"]), pre, post))
        else:
            pre = {"PreImage": self._image(table, write.record_id, write.before, None)} if write.before else {}
            post = {"PostImage": self._image(table, write.record_id, write.after, None)} if write.after else {}
            targets = [(url, {}, None, pre, post) for url in self.webhook_urls]
        if not targets:
            return
        operation = self._operation(write)
        for url, headers, step_id, pre, post in targets:
            context = ctx.render(operation, step_id=step_id, pre_images=pre, post_images=post)
            body = ctx.dumps(context)
            all_headers = {
                "Content-Type": "application/json",
                "x-ms-dynamics-organization": f"{self.organization_name}.crm.dynamics.com",
                "x-ms-dynamics-entity-name": table.logical_name,
                "x-ms-dynamics-request-name": write.message,
                "x-ms-correlation-request-id": operation.correlation_id,
                **headers,
            }
            if len(body) > self.max_context_bytes:
                body = ctx.dumps(ctx.without(context, ctx.SIZE_DROPPED))
                all_headers["x-ms-dynamics-msg-size-exceeded"] = "true"
            self._queue().append((url, all_headers, body))

    # --- registration the way the Plugin Registration Tool does it ---------------------------------------------

    def register(
        self,
        seed: Callable[[str, Mapping[str, Any]], str],
        url: str,
        *,
        entity: str,
        message: str,
        filtering_attributes: Iterable[str],
        pre_image: Iterable[str] | None,
        post_image: Iterable[str] | None,
        header: tuple[str, str] | None,
        key: str | None,
    ) -> str:
        endpoint: dict[str, Any] = {"name": url, "url": url, "contract": 8, "messageformat": 2}
        if header:
            value = html.escape(header[1], quote=True)
            endpoint |= {
                "authtype": 5,
                "authvalue": f'<settings><setting name="{header[0]}" value="{value}" /></settings>',
            }
        elif key:
            endpoint |= {"authtype": 4, "authvalue": key}
        endpoint_id = seed("serviceendpoint", endpoint)
        step_id = seed(
            "sdkmessageprocessingstep",
            {
                "name": f"{message} of {entity}",
                "filteringattributes": ",".join(filtering_attributes),
                "mode": 1,
                "stage": 40,
                "rank": 1,
                "asyncautodelete": False,
                "supporteddeployment": 0,
                "_sdkmessageid_value": metadata_id("sdkmessage", message),
                "_sdkmessagefilterid_value": metadata_id("sdkmessagefilter", message, entity),
                "_eventhandler_value": endpoint_id,
            },
        )
        for image_type, attributes in ((0, pre_image), (1, post_image)):
            if attributes is not None:
                seed(
                    "sdkmessageprocessingstepimage",
                    {
                        "name": "PreImage" if image_type == 0 else "PostImage",
                        "entityalias": "PreImage" if image_type == 0 else "PostImage",
                        "messagepropertyname": "Id" if message == "Create" else "Target",
                        "imagetype": image_type,
                        "attributes": ",".join(attributes),
                        "_sdkmessageprocessingstepid_value": step_id,
                    },
                )
        return step_id
