"""Seeding many records through the control surfaces (``POST /_simulator/seed``), and a person's edit in Dynamics
(``POST /_simulator/edit``), so a benchmark can fill simulators that run in their own process.

A seed body names how many records and gives templates: each string value is formatted with the record's number
``i`` (``"b{i}@example.com"``, ``"{i:012x}"``), a list gives record ``i`` its item ``i`` modulo its length
(``["Gold", "Silver"]``), other values are taken as they are. A million records take
seconds: they are put in place as test setup is (no webhook, no activity, no call counted, no limit charged).

- Dataverse: ``{"entity": "contact", "count": 1000000, "id": "00000000-0000-4000-8000-{i:012x}", "values":
  {"lastname": "L{i}"}, "columns": [{"name": "new_tier", "type": "String", "max_length": 80}]}`` -- the
  ``columns`` (optional) are added to the table first, as the customiser adds them. Answers ``{"seeded": n}``.
- Marketo: ``{"count": 1000000, "values": {"email": "b{i}@example.com", "new_dynamicsid": "..."}}``. The ids are
  consecutive; answers ``{"seeded": n, "first_id": ..., "last_id": ...}``.
- ``POST /_simulator/edit`` (Dataverse): ``{"entity": "contact", "id": "...", "values": {"new_tier": "Gold"}}``:
  a person (``user_id``, default the organisation's first user who is no application) edits the record in the
  app, so its plug-in steps post to the product as for any human change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from local.simulators.control_surface import BadInput, answer, only, text, whole

if TYPE_CHECKING:
    from local.simulators.dataverse.schema import Column
    from local.simulators.dataverse.simulator import DataverseSimulator
    from local.simulators.marketo.simulator import MarketoSimulator

MAX_SEED = 5_000_000


def _templates(body: Mapping[str, Any], name: str = "values") -> dict[str, Any]:
    values = body.get(name)
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise BadInput(f"{name} must be an object of field names and templates")
    return values


def _expand(template: Any, i: int) -> Any:
    if isinstance(template, list):
        return _expand(template[i % len(template)], i) if template else None
    return template.format(i=i) if isinstance(template, str) else template


def _records(templates: Mapping[str, Any], count: int) -> Iterator[dict[str, Any]]:
    try:
        for i in range(count):
            yield {name: _expand(value, i) for name, value in templates.items()}
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInput(f"a template does not format with {{i}}: {exc}") from None


def _column(raw: Any) -> Column:
    from local.simulators.dataverse.schema import Column  # noqa: PLC0415 - the control imports this module

    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("type"), str):
        raise BadInput("each column needs a name and a type (an AttributeType: String, Integer, ...)")
    only(raw, {"name", "type", "max_length"})
    return Column(raw["name"], raw["type"], max_length=whole(raw, "max_length", minimum=1), custom=True)


def seed_dataverse(sim: DataverseSimulator, body: dict[str, Any]) -> httpx.Response:
    only(body, {"entity", "count", "id", "values", "columns"})
    entity, count, id_template = (
        text(body, "entity"),
        whole(body, "count", minimum=1, maximum=MAX_SEED),
        text(body, "id"),
    )
    if entity is None or count is None or id_template is None:
        raise BadInput("give entity, count, id (a template of the record id) and values")
    table = sim.tables.get(entity)
    if table is None:
        raise BadInput(f"no table {entity!r}")
    templates = _templates(body)
    columns = [_column(raw) for raw in body.get("columns") or []]
    with sim.org.lock:
        for column in columns:
            table.columns.setdefault(column.name, column)
        ids = (_expand(id_template, i) for i in range(count))
        seeded = sim.org.seed_many(table, zip(ids, _records(templates, count), strict=True))
    return answer(200, {"seeded": seeded})


def edit_dataverse(sim: DataverseSimulator, body: dict[str, Any]) -> httpx.Response:
    only(body, {"entity", "id", "values", "user_id"})
    entity, record_id, user_id = text(body, "entity"), text(body, "id"), text(body, "user_id")
    if entity is None or record_id is None or entity not in sim.tables:
        raise BadInput("give entity (a table), id and values")
    values = _templates(body)
    if user_id is None:
        people = [row for row in sim.rows("systemuser") if not row.get("applicationid")]
        if not people:
            raise BadInput("no user to edit as: give user_id")
        user_id = str(people[0]["systemuserid"])
    if sim.get(entity, record_id) is None:
        return answer(404, {"error": {"code": "not-found", "message": f"no {entity} {record_id}"}})
    sim.user_update(entity, record_id, values, user_id=user_id)
    return answer(200, {"edited": record_id})


def seed_marketo(sim: MarketoSimulator, body: dict[str, Any]) -> httpx.Response:
    only(body, {"count", "values"})
    count = whole(body, "count", minimum=1, maximum=MAX_SEED)
    if count is None:
        raise BadInput("give count and values")
    templates = _templates(body)
    from local.simulators.marketo.envelope import ApiError  # noqa: PLC0415 - the controls import this module
    from local.simulators.marketo.fields import InvalidValue  # noqa: PLC0415

    try:
        with sim._lock:  # the simulator's own lock: seeding, not an API call
            first, after = sim.leads.seed_many(_records(templates, count))
    except (ApiError, InvalidValue) as exc:
        raise BadInput(f"a lead could not be seeded: {exc}") from None
    return answer(200, {"seeded": after - first, "first_id": first, "last_id": after - 1})
