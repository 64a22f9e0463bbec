"""What the Dataverse side of the sync must have registered, and what to change to get there (decide, no I/O).

:func:`desired` turns the mapping into one webhook service endpoint and, per synced table, an asynchronous
post-operation step for Create, Update and Delete with the image the pipeline reads (and, with opportunities
synced, the same three on the connection table: an opportunity's stakeholders). :func:`plan` compares that
with what :mod:`shared.setup.registry` read from Dataverse and returns one :class:`Action` per registration:
create, update (naming the fields that differ), delete or unchanged. Only rows this product owns are ever in
``existing``: the endpoint named :data:`ENDPOINT_NAME`, and steps on it whose name starts with :data:`PREFIX`.

The webhook secret travels as a :class:`~pydantic.SecretStr` and is compared through a fingerprint kept in the
endpoint's description (Dataverse does not hand ``authvalue`` back), so no action, repr or diff shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, SyncMapping
from shared.pipeline.connections import CONNECTION
from shared.pipeline.connections import WATCHED as CONNECTION_COLUMNS
from shared.pipeline.dataverse_side import followed_lookups, sales_owners_synced

PREFIX = "d365-marketo-sync:"
ENDPOINT_NAME = f"{PREFIX} webhook"
MESSAGES = ("Create", "Update", "Delete")

CONTRACT_WEBHOOK = 8
AUTH_HTTP_HEADER = 5
MESSAGE_FORMAT_JSON = 2
MODE_ASYNC = 1
STAGE_POST_OPERATION = 40
DEPLOYMENT_SERVER = 0
IMAGE_PRE = 0
IMAGE_POST = 1
PRE_IMAGE = "PreImage"
POST_IMAGE = "PostImage"


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


class Kind(StrEnum):
    ENDPOINT = "endpoint"
    STEP = "step"
    IMAGE = "image"


# --- what should exist ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    url: str
    header: str
    secret: SecretStr = field(repr=False)
    name: str = ENDPOINT_NAME

    @property
    def fingerprint(self) -> str:
        """Identifies header and secret without revealing the secret (a high-entropy value: a hash prefix is safe)."""
        digest = hashlib.sha256(f"{self.header}\n{self.secret.get_secret_value()}".encode()).hexdigest()
        return digest[:16]

    @property
    def description(self) -> str:
        return f"Managed by python -m shared.setup; auth fingerprint {self.fingerprint}"

    def values(self) -> dict[str, Any]:
        """The Web API body; ``authvalue`` stays a SecretStr until the executor sends it."""
        auth = f'<settings><setting name="{_xml(self.header)}" value="{_xml(self.secret.get_secret_value())}" /></settings>'
        return {
            "name": self.name,
            "description": self.description,
            "url": self.url,
            "contract": CONTRACT_WEBHOOK,
            "authtype": AUTH_HTTP_HEADER,
            "messageformat": MESSAGE_FORMAT_JSON,
            "authvalue": SecretStr(auth),
        }


@dataclass(frozen=True, slots=True)
class ImageSpec:
    image_type: int
    alias: str
    attributes: frozenset[str]
    message_property: str

    def values(self) -> dict[str, Any]:
        return {
            "name": self.alias,
            "entityalias": self.alias,
            "imagetype": self.image_type,
            "attributes": ",".join(sorted(self.attributes)),
            "messagepropertyname": self.message_property,
        }


@dataclass(frozen=True, slots=True)
class StepSpec:
    entity: str
    message: str
    filtering: frozenset[str]
    images: tuple[ImageSpec, ...]

    @property
    def name(self) -> str:
        return step_name(self.entity, self.message)

    @property
    def key(self) -> tuple[str, str]:
        return (self.entity, self.message)

    def values(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": f"Sends {self.message} of {self.entity} to the Marketo sync webhook",
            "mode": MODE_ASYNC,
            "stage": STAGE_POST_OPERATION,
            "rank": 1,
            "asyncautodelete": True,
            "supporteddeployment": DEPLOYMENT_SERVER,
            "filteringattributes": ",".join(sorted(self.filtering)),
        }


@dataclass(frozen=True, slots=True)
class Desired:
    endpoint: EndpointSpec
    steps: tuple[StepSpec, ...]


def step_name(entity: str, message: str) -> str:
    return f"{PREFIX} {message} of {entity}"


def watched_columns(entity: EntityMapping, *, sales_owners: bool = False) -> frozenset[str]:
    """The columns whose change must wake the sync: mapped live columns, the sync filter, and the lookups the
    sync follows (a contact's origin lead, an opportunity's role contacts, and with ``sales_owners`` (users sync
    as sales persons) a record's owner)."""
    columns = {f.dynamics for f in entity.live_fields}
    if entity.sync_filter:
        columns.add(SYNC_FILTER_COLUMN)
    columns.update(followed_lookups(entity.entity, sales_owners=sales_owners))
    return frozenset(columns)


def _steps(entity: str, columns: frozenset[str]) -> list[StepSpec]:
    steps = []
    for message in MESSAGES:
        if message == "Delete":
            images = (ImageSpec(IMAGE_PRE, PRE_IMAGE, columns, "Target"),)
        else:
            prop = "Id" if message == "Create" else "Target"
            images = (ImageSpec(IMAGE_POST, POST_IMAGE, columns, prop),)
        filtering = columns if message == "Update" else frozenset()
        steps.append(StepSpec(entity, message, filtering, images))
    return steps


def desired(mapping: SyncMapping, *, url: str, header: str, secret: SecretStr) -> Desired:
    steps = []
    owners = sales_owners_synced(mapping)
    for entity in mapping.entities:
        steps += _steps(entity.entity, watched_columns(entity, sales_owners=owners))
    if "opportunity" in mapping.by_entity:  # an opportunity's stakeholders: its roles follow its connections
        steps += _steps(CONNECTION, CONNECTION_COLUMNS)
    return Desired(EndpointSpec(url, header, secret), tuple(steps))


# --- what exists ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExistingImage:
    id: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ExistingStep:
    id: str
    entity: str | None
    message: str | None
    endpoint_id: str | None
    values: Mapping[str, Any]
    images: tuple[ExistingImage, ...] = ()


@dataclass(frozen=True, slots=True)
class ExistingEndpoint:
    id: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Existing:
    """This product's registrations as read from Dataverse (endpoints named ours, our-prefixed steps on them)."""

    endpoints: tuple[ExistingEndpoint, ...] = ()
    steps: tuple[ExistingStep, ...] = ()


# --- the plan ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """One change (or confirmation). ``values`` is the Web API body to send; it may hold a SecretStr."""

    op: Op
    kind: Kind
    name: str
    id: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)
    changed: tuple[str, ...] = ()
    step: tuple[str, str] | None = None  # the (entity, message) of the step an image or step belongs to

    def describe(self) -> str:
        what = f"{self.kind.value} '{self.name}'"
        detail = f" ({', '.join(self.changed)})" if self.changed else ""
        return f"{self.op.value:<9} {what}{detail}"


def _differences(want: Mapping[str, Any], have: Mapping[str, Any], *, sets: Iterable[str] = ()) -> tuple[str, ...]:
    as_sets = set(sets)
    changed = []
    for key, value in want.items():
        if isinstance(value, SecretStr):
            continue  # compared through the fingerprint in the description
        current = have.get(key)
        if key in as_sets:
            if _names(value) != _names(current):
                changed.append(key)
        elif (current if current is not None else "") != (value if value is not None else ""):
            changed.append(key)
    return tuple(changed)


def _names(value: Any) -> frozenset[str]:
    return frozenset(p.strip().lower() for p in str(value or "").split(",") if p.strip())


def plan(want: Desired, have: Existing) -> list[Action]:
    """Creates and updates first (endpoint, steps, images), deletes last (images, steps, endpoints)."""
    actions: list[Action] = []
    deletes: list[Action] = []
    endpoint = have.endpoints[0] if have.endpoints else None
    spec = want.endpoint
    body = spec.values()
    if endpoint is None:
        actions.append(Action(Op.CREATE, Kind.ENDPOINT, spec.name, values=body))
    else:
        changed = _differences(body, endpoint.values)
        op = Op.UPDATE if changed else Op.UNCHANGED
        if "description" in changed:  # the fingerprint moved: header or secret changed, send the new authvalue
            changed = (*(c for c in changed if c != "description"), "authvalue")
        send = body if op is Op.UPDATE else {}
        actions.append(Action(op, Kind.ENDPOINT, spec.name, endpoint.id, send, changed))
    for extra in have.endpoints[1:]:
        deletes.append(Action(Op.DELETE, Kind.ENDPOINT, str(extra.values.get("name", ENDPOINT_NAME)), extra.id))

    ours = endpoint.id if endpoint else None
    matched: dict[tuple[str, str], ExistingStep] = {}
    for step in have.steps:
        key = (step.entity or "", step.message or "")
        if (
            ours is not None
            and step.endpoint_id == ours
            and key not in matched
            and step.values.get("name") == step_name(*key)
        ):
            matched[key] = step
        else:
            deletes.extend(_delete_step(step))
    wanted = {s.key for s in want.steps}
    for key, step in list(matched.items()):
        if key not in wanted:
            deletes.extend(_delete_step(step))
            del matched[key]

    for spec_step in want.steps:
        current = matched.get(spec_step.key)
        if current is None:
            actions.append(Action(Op.CREATE, Kind.STEP, spec_step.name, values=spec_step.values(), step=spec_step.key))
            actions.extend(
                Action(Op.CREATE, Kind.IMAGE, _image_label(spec_step, i), values=i.values(), step=spec_step.key)
                for i in spec_step.images
            )
            continue
        changed = _differences(spec_step.values(), current.values, sets=("filteringattributes",))
        op = Op.UPDATE if changed else Op.UNCHANGED
        send = {k: spec_step.values()[k] for k in changed}
        actions.append(Action(op, Kind.STEP, spec_step.name, current.id, send, changed, spec_step.key))
        actions.extend(_plan_images(spec_step, current, deletes))

    order = {Kind.IMAGE: 0, Kind.STEP: 1, Kind.ENDPOINT: 2}
    deletes.sort(key=lambda a: order[a.kind])
    return actions + deletes


def _image_label(step: StepSpec, image: ImageSpec) -> str:
    return f"{image.alias} of {step.name}"


def _plan_images(spec: StepSpec, current: ExistingStep, deletes: list[Action]) -> list[Action]:
    actions = []
    by_alias: dict[str, ExistingImage] = {}
    for image in current.images:
        alias = str(image.values.get("entityalias") or "")
        if alias in by_alias or alias not in {i.alias for i in spec.images}:
            deletes.append(Action(Op.DELETE, Kind.IMAGE, f"{alias or '?'} of {spec.name}", image.id))
        else:
            by_alias[alias] = image
    for image_spec in spec.images:
        label = _image_label(spec, image_spec)
        found = by_alias.get(image_spec.alias)
        if found is None:
            actions.append(Action(Op.CREATE, Kind.IMAGE, label, values=image_spec.values(), step=spec.key))
            continue
        want = image_spec.values()
        changed = _differences(want, found.values, sets=("attributes",))
        send = {k: want[k] for k in changed}
        op = Op.UPDATE if changed else Op.UNCHANGED
        actions.append(Action(op, Kind.IMAGE, label, found.id, send, changed, spec.key))
    return actions


def _delete_step(step: ExistingStep) -> list[Action]:
    name = str(step.values.get("name") or step.id)
    images = [
        Action(Op.DELETE, Kind.IMAGE, f"{i.values.get('entityalias') or '?'} of {name}", i.id) for i in step.images
    ]
    return [*images, Action(Op.DELETE, Kind.STEP, name, step.id)]


def teardown(have: Existing) -> list[Action]:
    """Everything this product registered, to delete: images, then steps, then the endpoints."""
    deletes: list[Action] = []
    for step in have.steps:
        deletes.extend(_delete_step(step))
    deletes.extend(Action(Op.DELETE, Kind.ENDPOINT, str(e.values.get("name")), e.id) for e in have.endpoints)
    order = {Kind.IMAGE: 0, Kind.STEP: 1, Kind.ENDPOINT: 2}
    return sorted(deletes, key=lambda a: order[a.kind])


def summary(actions: Sequence[Action]) -> dict[str, int]:
    counts = {op.value: 0 for op in Op}
    for action in actions:
        counts[action.op.value] += 1
    return counts


def _xml(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&apos;")
    )
