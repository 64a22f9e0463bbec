"""Which Dynamics column pairs with which Marketo field, per entity, and in what state each pair is.

A mapping is loaded once (from the state store or a JSON file) and then read on every decision, so it is
validated strictly up front: a bad mapping fails with a message naming the entity, the field and the problem,
instead of surfacing later as a puzzling sync error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.core.entities import Direction, EntityRule, MarketoObject, rule_for

SYNC_FILTER_COLUMN = "new_synctomkto"
"""Optional Two Options column on any entity: explicit No keeps the record out of the sync."""

DELETED_FLAG_FIELD = "deletedInDynamics"
"""Marketo person field the sync sets when the linked Dynamics record is deleted (persons are flagged, never
deleted: Marketo keeps their activity history)."""

_COLUMN_PATTERN = r"^[a-z_][a-z0-9_]*$"
_MARKETO_FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Dataverse entity set names of the built-in entities; custom entities must name theirs.
_ENTITY_SETS = {
    "lead": "leads",
    "contact": "contacts",
    "account": "accounts",
    "systemuser": "systemusers",
    "opportunity": "opportunities",
    "team": "teams",
}


class FieldType(StrEnum):
    """The Dataverse column types users map, named for what the value is."""

    TEXT = "text"
    MEMO = "memo"
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    DOUBLE = "double"
    MONEY = "money"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    LOOKUP = "lookup"


class FieldState(StrEnum):
    """Life cycle of one mapped pair."""

    ACTIVE = "active"
    AWAITING_QUICK_SYNC = "awaiting_quick_sync"  # added while the sync runs: values to refresh from Dynamics
    QUICK_SYNC_RUNNING = "quick_sync_running"  # being refreshed; live changes still flow beside it
    BROKEN = "broken"  # the Dynamics column is gone or unreadable: reported, skipped, others go on

    @property
    def in_quick_sync(self) -> bool:
        return self in (FieldState.AWAITING_QUICK_SYNC, FieldState.QUICK_SYNC_RUNNING)


class LookupPart(StrEnum):
    ID = "id"  # the referenced record's GUID
    NAME = "name"  # its display name


class FieldFlow(StrEnum):
    """Which way a field's values go. On a one-way entity every field goes to Marketo."""

    BOTH = "both"
    TO_MARKETO = "to_marketo"  # Dynamics -> Marketo only (as ``one_way``): a Marketo edit is overwritten
    TO_DYNAMICS = (
        "to_dynamics"  # Marketo-owned data (lead score, last interesting moment): a Dynamics edit is overwritten
    )


class FieldWinner(StrEnum):
    """Who wins a collision on this field, overriding the entity's rule (Marketo for leads, Dynamics for contacts)."""

    DYNAMICS = "dynamics"
    MARKETO = "marketo"
    LATEST = "latest"  # the side whose record was modified last (Dynamics ``modifiedon``, Marketo ``updatedAt``)


class EntityState(StrEnum):
    """Life cycle of one mapped entity."""

    ACTIVE = "active"
    INITIAL_SYNC = "initial_sync"  # added while the sync runs: its initial sync job reads the table; live changes
    # sync beside it, and the catch-up leaves the table to the job until the job has saved the table's delta link


class ChoiceOption(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: int
    label: str = Field(min_length=1)


class FieldMapping(BaseModel):
    """One Dynamics column paired with one Marketo field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dynamics: str = Field(pattern=_COLUMN_PATTERN, description="Dataverse column logical name")
    marketo: str = Field(pattern=_MARKETO_FIELD_PATTERN, description="Marketo REST API field name")
    type: FieldType
    state: FieldState = FieldState.ACTIVE
    one_way: bool = Field(default=False, description="sync Dynamics -> Marketo only, even on a two-way entity")
    direction: FieldFlow = Field(
        default=FieldFlow.BOTH, description="both, to_marketo (as one_way) or to_dynamics (Marketo-owned data)"
    )
    winner: FieldWinner | None = Field(
        default=None,
        description="who wins a collision on this field: dynamics, marketo or latest (default: the entity's rule)",
    )
    max_length: int | None = Field(default=None, ge=1, description="Marketo field length (text)")
    dynamics_max_length: int | None = Field(default=None, ge=1, description="Dataverse column MaxLength (text)")
    options: tuple[ChoiceOption, ...] = ()
    lookup_part: LookupPart | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FieldMapping:
        kind = self.type
        if kind in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
            if not self.options:
                raise ValueError(f"{kind.value} field needs its option metadata (options: [{{value, label}}])")
            values = [o.value for o in self.options]
            labels = [o.label.casefold() for o in self.options]
            if len(set(values)) != len(values):
                raise ValueError("option values must be unique")
            if len(set(labels)) != len(labels):
                raise ValueError("option labels must be unique (ignoring case)")
            if kind is FieldType.MULTI_CHOICE and any(";" in o.label for o in self.options):
                raise ValueError("multi-select option labels cannot contain ';' (Marketo's separator)")
        elif self.options:
            raise ValueError(f"options are only for choice fields, not {kind.value}")
        if self.lookup_part is not None and kind is not FieldType.LOOKUP:
            raise ValueError(f"lookup_part is only for lookup fields, not {kind.value}")
        if (self.max_length or self.dynamics_max_length) and kind not in (FieldType.TEXT, FieldType.MEMO):
            raise ValueError(f"max_length is only for text fields, not {kind.value}")
        if self.one_way and self.direction is FieldFlow.TO_DYNAMICS:
            raise ValueError("one_way (Dynamics -> Marketo) contradicts direction to_dynamics")
        if self.flow is FieldFlow.TO_DYNAMICS and kind is FieldType.LOOKUP:
            raise ValueError("a lookup cannot flow to Dynamics: its value is a Dynamics record id")
        if self.winner is not None and self.flow is not FieldFlow.BOTH:
            raise ValueError(f"winner is for fields that sync both ways; this one flows {self.flow.value} only")
        return self

    @property
    def flow(self) -> FieldFlow:
        """``direction``, with ``one_way`` (the older spelling) read as to_marketo."""
        return FieldFlow.TO_MARKETO if self.one_way else self.direction

    @property
    def marketo_owned(self) -> bool:
        return self.flow is FieldFlow.TO_DYNAMICS

    @property
    def selected_as(self) -> str:
        """The name a ``$select`` reads the column by: a lookup as ``_<column>_value``, the Web API's rule."""
        return f"_{self.dynamics}_value" if self.type is FieldType.LOOKUP else self.dynamics

    @cached_property
    def to_dynamics_allowed(self) -> bool:
        """Lookups and one-way fields never write to Dynamics."""
        return self.flow is not FieldFlow.TO_MARKETO and self.type is not FieldType.LOOKUP

    @cached_property
    def labels_by_value(self) -> dict[int, str]:
        return {o.value: o.label for o in self.options}

    @cached_property
    def values_by_label(self) -> dict[str, int]:
        return {o.label.casefold(): o.value for o in self.options}

    @cached_property
    def option_order(self) -> dict[int, int]:
        return {o.value: i for i, o in enumerate(self.options)}


class EntityMapping(BaseModel):
    """The mapped fields of one Dynamics entity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entity: str = Field(pattern=_COLUMN_PATTERN, description="Dataverse table logical name")
    entity_set: str | None = Field(default=None, pattern=_COLUMN_PATTERN, description="Web API entity set")
    custom_object: str | None = Field(
        default=None, pattern=_MARKETO_FIELD_PATTERN, description="Marketo custom object API name (team, custom)"
    )
    link_field: str | None = Field(
        default=None, pattern=_MARKETO_FIELD_PATTERN, description="Marketo field holding the Dynamics id"
    )
    sync_filter: bool = Field(
        default=False, description=f"the table has the optional '{SYNC_FILTER_COLUMN}' Two Options column"
    )
    state: EntityState = Field(default=EntityState.ACTIVE, description="active, or initial_sync (added at runtime)")
    fields: tuple[FieldMapping, ...] = ()

    @field_validator("entity", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> EntityMapping:
        seen_columns: set[str] = set()
        seen_marketo: set[str] = set()
        for field in self.fields:
            if field.dynamics in seen_columns:
                raise ValueError(f"field '{field.dynamics}': mapped more than once")
            if field.marketo.casefold() in seen_marketo:
                raise ValueError(f"field '{field.dynamics}': Marketo field '{field.marketo}' is already mapped")
            if field.dynamics == SYNC_FILTER_COLUMN:
                raise ValueError(
                    f"field '{field.dynamics}': the sync filter column controls the sync, it is not synced"
                )
            seen_columns.add(field.dynamics)
            seen_marketo.add(field.marketo.casefold())
        if self.entity not in _ENTITY_SETS and self.entity_set is None:
            raise ValueError("custom entity: entity_set (the Web API plural, e.g. 'new_projects') is required")
        if self.rule.marketo_object is MarketoObject.CUSTOM_OBJECT and self.custom_object is None:
            raise ValueError("syncs to a Marketo custom object: custom_object (its API name) is required")
        if self.rule.marketo_object is not MarketoObject.CUSTOM_OBJECT and self.custom_object is not None:
            raise ValueError(f"custom_object is only for team and custom entities, not {self.entity}")
        if not self.rule.two_way:
            for field in self.fields:
                if field.marketo_owned or field.winner is not None:
                    raise ValueError(
                        f"field '{field.dynamics}': {self.entity} syncs Dynamics -> Marketo only, where Dynamics "
                        "always wins: no field of it can flow to Dynamics or name a collision winner"
                    )
        return self

    @cached_property
    def rule(self) -> EntityRule:
        return rule_for(self.entity)

    @property
    def direction(self) -> Direction:
        return self.rule.direction

    @property
    def web_api_set(self) -> str:
        return self.entity_set or _ENTITY_SETS[self.entity]

    @property
    def id_column(self) -> str:
        return f"{self.entity}id"

    @property
    def marketo_link_field(self) -> str:
        return self.link_field or self.rule.marketo_key

    @cached_property
    def wants_modified_times(self) -> bool:
        """A field's collisions go to the side modified last: both records' modified times must be read."""
        return any(f.winner is FieldWinner.LATEST for f in self.live_fields)

    @cached_property
    def by_column(self) -> dict[str, FieldMapping]:
        return {f.dynamics: f for f in self.fields}

    @cached_property
    def by_marketo(self) -> dict[str, FieldMapping]:
        return {f.marketo.casefold(): f for f in self.fields}

    @cached_property
    def live_fields(self) -> tuple[FieldMapping, ...]:
        """Fields the live sync reads: all but broken ones."""
        return tuple(f for f in self.fields if f.state is not FieldState.BROKEN)

    def columns(self) -> list[str]:
        """The Dataverse columns to ``$select``: the id, mapped live columns and the sync filter if present."""
        extra = [SYNC_FILTER_COLUMN] if self.sync_filter else []
        return [self.id_column, *(f.selected_as for f in self.live_fields), *extra]

    def marketo_fields(self) -> list[str]:
        return [f.marketo for f in self.live_fields]


class SyncMapping(BaseModel):
    """Every synced entity's mapping."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entities: tuple[EntityMapping, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> SyncMapping:
        names = [e.entity for e in self.entities]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"entity '{name}' is mapped more than once")
        return self

    @cached_property
    def by_entity(self) -> dict[str, EntityMapping]:
        return {e.entity: e for e in self.entities}

    def get(self, entity: str) -> EntityMapping:
        try:
            return self.by_entity[entity.lower()]
        except KeyError:
            raise MappingError(f"entity '{entity}': not in the sync mapping") from None


class MappingError(ValueError):
    """A mapping that cannot be used; the message names the entity, the field and the problem."""


def load_mapping(source: str | bytes | Mapping[str, Any]) -> SyncMapping:
    """Parse and validate a mapping document (JSON text or already-decoded data)."""
    if isinstance(source, str | bytes):
        try:
            data: Any = json.loads(source)
        except json.JSONDecodeError as exc:
            raise MappingError(
                f"mapping is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
    else:
        data = source
    try:
        return SyncMapping.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(data, err["loc"], err["msg"]) for err in exc.errors()]
        raise MappingError("invalid sync mapping:\n  " + "\n  ".join(problems)) from None


def _describe(data: Any, loc: Sequence[int | str], message: str) -> str:
    """Turn a pydantic error location into 'entity 'lead', field 'x', type: problem'."""
    entity = field = None
    node: Any = data
    trail: list[str] = []
    path = list(loc)
    for i, part in enumerate(path):
        node = _step(node, part)
        previous = path[i - 1] if i else None
        if previous == "entities" and isinstance(part, int):
            entity = _name(node, "entity") or f"#{part}"
        elif previous == "fields" and isinstance(part, int):
            field = _name(node, "dynamics") or _name(node, "marketo") or f"#{part}"
        elif isinstance(part, str) and part not in ("entities", "fields"):
            trail.append(part)
    where = []
    if entity:
        where.append(f"entity '{entity}'")
    if field:
        where.append(f"field '{field}'")
    if trail:
        where.append(".".join(trail))
    problem = message.removeprefix("Value error, ")
    return f"{', '.join(where) or 'mapping'}: {problem}"


def _step(node: Any, part: int | str) -> Any:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _name(node: Any, key: str) -> str | None:
    value = node.get(key) if isinstance(node, Mapping) else None
    return value if isinstance(value, str) and value else None
