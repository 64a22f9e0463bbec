"""The lead database: leads with ids, the field schema, and the activity log that feeds Get Lead Changes.

Every field change made through any door (Sync Leads, bulk import, a simulated UI edit) records a Change Data
Value activity (type 13) per field and every create a New Lead activity (type 12), so the change feed sees what
really changed. Not thread-safe on its own: the simulator holds one lock around every call.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from local.simulators.marketo.envelope import ApiError, skipped
from local.simulators.marketo.fields import (
    DATA_TYPES,
    DEFAULT_RETURN_FIELDS,
    FieldDef,
    InvalidValue,
    as_text,
    coerce,
    standard_fields,
    valid_field_name,
)

NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
DELETE_LEAD = 37
API_SOURCE = "Web service API"
MAX_CUSTOM_FIELDS = 100


@dataclass(frozen=True, slots=True)
class LeadChangeNote:
    """What changed on one lead in one operation: the material for a Call Webhook payload."""

    lead_id: int
    email: str | None
    changes: Mapping[str, tuple[Any, Any]]  # field -> (new, old)
    source: str
    created: bool


def iso_z(epoch: float) -> str:
    return _iso_second(int(epoch // 1))


@lru_cache(maxsize=64)
def _iso_second(second: int) -> str:
    """One second's ``YYYY-MM-DDTHH:MM:SSZ``, kept: a bulk import stamps thousands of activities a second."""
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_token(kind: str, value: int) -> str:
    return base64.b32encode(f"{kind}:{value}".encode()).decode()


def decode_token(token: str, kind: str) -> int:
    try:
        text = base64.b32decode(token.encode(), casefold=True).decode()
        prefix, value = text.split(":", 1)
        if prefix != kind:
            raise ValueError(prefix)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("1003", f"Invalid next page token '{token[:40]}'") from exc


@dataclass
class LeadStore:
    now: Callable[[], float]
    fields: dict[str, FieldDef] = field(default_factory=lambda: {f.name: f for f in standard_fields()})
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    notes: list[LeadChangeNote] = field(default_factory=list)
    _times: list[float] = field(default_factory=list)
    _index: dict[str, dict[Any, set[int]]] = field(default_factory=dict)  # field -> match key -> lead ids
    _indexed: dict[int, dict[str, Any]] | None = None  # the leads dict the index was built over
    _next_lead: int = 1
    _next_field: int = 10_001

    # --- schema --------------------------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self.fields.values()]

    def describe2(self) -> list[dict[str, Any]]:
        searchable = [[f.name] for f in self.fields.values() if f.searchable]
        return [
            {
                "name": "API Lead",
                "searchableFields": searchable,
                "fields": [f.describe2() for f in self.fields.values()],
            }
        ]

    def key_field(self, name: str, role: str) -> FieldDef:
        """The field a query filters on or a sync matches on: 1003 if unknown, 1011 if Marketo refuses it."""
        definition = self.fields.get(name)
        if definition is None:
            raise ApiError("1003", f"Invalid {role} '{name}'")
        if not definition.searchable:
            raise ApiError("1011", f"Field '{name}' not supported")
        return definition

    def schema(self) -> list[dict[str, Any]]:
        return [f.schema() for f in self.fields.values()]

    def create_fields(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for item in items:
            name = str(item.get("name") or "")
            kind = str(item.get("dataType") or "")
            display = str(item.get("displayName") or "")
            if not valid_field_name(name) or kind not in DATA_TYPES or not display:
                results.append(skipped("1003", "Invalid field definition", name=name))
            elif name in self.fields or any(f.display_name == display for f in self.fields.values()):
                results.append(skipped("1005", f"Field '{name}' already exists", name=name))
            elif sum(f.is_custom for f in self.fields.values()) >= MAX_CUSTOM_FIELDS:
                results.append(skipped("1003", "Custom field limit reached", name=name))
            else:
                self.fields[name] = FieldDef(
                    id=self._next_field,
                    name=name,
                    display_name=display,
                    data_type=kind,
                    length=255 if kind in ("string", "email", "phone", "url") else None,
                    is_custom=True,
                    is_hidden=bool(item.get("isHidden", False)),
                    description=item.get("description"),
                )
                self._next_field += 1
                results.append({"name": name, "status": "created"})
        return results

    # --- query ---------------------------------------------------------------------------------------------

    def query(
        self, filter_type: str, values: Sequence[str], fields: Sequence[str] | None, batch_size: int, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        definition = self.key_field(filter_type, "filterType")
        if len(values) > 300:
            raise ApiError("1003", "Too many filter values, maximum is 300")
        for name in fields or ():
            if name not in self.fields:
                raise ApiError("1006", f"Field '{name}' not found")
        wanted = set()
        for value in values:
            try:
                wanted.add(_match_key(coerce(definition, value)))
            except InvalidValue:
                continue
        matches = [self.leads[i] for i in sorted({i for key in wanted for i in self._matching(filter_type, key)})]
        if len(matches) > 1000:
            raise ApiError("1003", "Too many results match the filter")
        offset = decode_token(token, "leads") if token else 0
        page = matches[offset : offset + batch_size]
        names = list(fields) if fields else list(DEFAULT_RETURN_FIELDS)
        rows = [{name: lead[name] for name in names if lead.get(name) is not None} for lead in page]
        more = offset + batch_size < len(matches)
        return rows, encode_token("leads", offset + batch_size) if more else None

    # --- writes --------------------------------------------------------------------------------------------

    def sync(
        self, action: str, lookup_field: str, records: Sequence[Mapping[str, Any]], *, source: str, reason: str
    ) -> list[dict[str, Any]]:
        if action not in ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate"):
            raise ApiError("1003", f"Invalid action '{action}'")
        lookup = self.key_field(lookup_field, "lookupField")
        if lookup_field == "id" and action != "updateOnly":
            raise ApiError("1003", "lookupField 'id' is only valid with action updateOnly")
        return [self.upsert(record, action, lookup, source=source, reason=reason) for record in records]

    def upsert(
        self, record: Mapping[str, Any], action: str, lookup: FieldDef, *, source: str, reason: str
    ) -> dict[str, Any]:
        for name in record:
            if name not in self.fields:
                return skipped("1006", f"Field '{name}' not found")
        if "id" in record and action != "updateOnly":
            return skipped("1003", "Field 'id' is only allowed with action updateOnly")
        values: dict[str, Any] = {}
        try:
            for name, raw in record.items():
                values[name] = coerce(self.fields[name], raw)
        except InvalidValue as exc:
            return skipped("1003", f"Invalid value '{exc}' for field '{name}'")
        if action == "createDuplicate":
            return {"id": self._create(values, source), "status": "created"}
        key = values.get(lookup.name)
        matches = [] if key is None else sorted(self._matching(lookup.name, key))
        if action == "createOnly":
            if matches:
                return skipped("1005")
            return {"id": self._create(values, source), "status": "created"}
        if len(matches) > 1:
            return skipped("1007")
        if not matches:
            if action == "updateOnly":
                return skipped("1004")
            return {"id": self._create(values, source), "status": "created"}
        lead_id = matches[0]
        self._update(lead_id, values, source=source, reason=reason)
        return {"id": lead_id, "status": "updated"}

    def _create(self, values: Mapping[str, Any], source: str) -> int:
        lead_id = self._next_lead
        self._next_lead += 1
        now = self.now()
        lead = {name: value for name, value in values.items() if value is not None and not self.fields[name].read_only}
        lead.update(id=lead_id, createdAt=iso_z(now), updatedAt=iso_z(now))
        self.leads[lead_id] = lead
        self._reindex(lead_id, {k: (v, None) for k, v in lead.items()})
        name = " ".join(str(lead[k]) for k in ("firstName", "lastName") if lead.get(k))
        self._record(
            lead_id,
            NEW_LEAD,
            fields=[],
            attributes=[{"name": "Source Type", "value": source}, {"name": "Created Date", "value": iso_z(now)[:10]}],
            primary=(lead_id, name or str(lead.get("email", ""))),
        )
        changes = {k: (v, None) for k, v in lead.items() if k not in ("id", "createdAt", "updatedAt")}
        self.notes.append(LeadChangeNote(lead_id, lead.get("email"), changes, source, created=True))
        return lead_id

    def _update(self, lead_id: int, values: Mapping[str, Any], *, source: str, reason: str) -> None:
        lead = self.leads[lead_id]
        changes: dict[str, tuple[Any, Any]] = {}
        for name, new in values.items():
            definition = self.fields[name]
            if definition.read_only:
                continue
            old = lead.get(name)
            if old == new and type(old) is type(new):
                continue
            if new is None:
                lead.pop(name, None)
            else:
                lead[name] = new
            changes[name] = (new, old)
            self._record(
                lead_id,
                CHANGE_DATA_VALUE,
                fields=[{"id": definition.id, "name": name, "newValue": as_text(new), "oldValue": as_text(old)}],
                attributes=[
                    {"name": "Reason", "value": reason},
                    {"name": "Source", "value": source},
                    {"name": "Lead ID", "value": lead_id},
                ],
            )
        if changes:
            self._reindex(lead_id, changes)
            lead["updatedAt"] = iso_z(self.now())
            self.notes.append(LeadChangeNote(lead_id, lead.get("email"), changes, source, created=False))

    def seed_many(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Leads put in place as a list import before any API user looked (bulk test setup: a million in seconds):
        every value coerced as a sync coerces it, the match indexes kept, but no activity and no change note, so
        neither feed nor webhook sees them. Returns the first id and the one after the last (ids are consecutive)."""
        first = self._next_lead
        stamp = iso_z(self.now())
        for record in records:
            lead: dict[str, Any] = {}
            for name, raw in record.items():
                definition = self.fields.get(name)
                if definition is None:
                    raise ApiError("1006", f"Field '{name}' not found")
                value = coerce(definition, raw)
                if value is not None and not definition.read_only:
                    lead[name] = value
            lead_id = self._next_lead
            self._next_lead += 1
            lead.update(id=lead_id, createdAt=stamp, updatedAt=stamp)
            self.leads[lead_id] = lead
            self._reindex(lead_id, {k: (v, None) for k, v in lead.items()})
        return [first, self._next_lead]

    def change(self, lead_id: int, values: Mapping[str, Any], *, source: str, reason: str) -> None:
        """A change made inside Marketo (a person in the UI, a flow step): not through the API."""
        if lead_id not in self.leads:
            raise KeyError(lead_id)
        coerced = {name: coerce(self.fields[name], value) for name, value in values.items()}
        self._update(lead_id, coerced, source=source, reason=reason)

    def delete(self, ids: Sequence[Any]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for raw in ids:
            lead = self.leads.pop(int(raw), None) if str(raw).isdigit() else None
            if lead is None:
                results.append(skipped("1004", id=raw))
                continue
            self._reindex(lead["id"], {k: (None, v) for k, v in lead.items()})
            name = " ".join(str(lead[k]) for k in ("firstName", "lastName") if lead.get(k))
            self._record(lead["id"], DELETE_LEAD, fields=None, attributes=[], primary=(lead["id"], name))
            results.append({"id": lead["id"], "status": "deleted"})
        return results

    # --- the lookup index: a match costs the same at any table size -----------------------------------------

    def _matching(self, name: str, key: Any) -> set[int]:
        """Ids of the leads whose ``name`` matches ``key`` as a lookup or filter compares (case-insensitive)."""
        if name == "id":
            lead = self.leads.get(key) if isinstance(key, int) else None
            return {key} if lead is not None and _same(lead.get("id"), key) else set()
        index = self._field_index(name)
        try:
            return set(index.get(_match_key(key), ()))
        except TypeError:  # an unhashable value: match the slow way
            return {i for i, lead in self.leads.items() if _same(lead.get(name), key)}

    def _field_index(self, name: str) -> dict[Any, set[int]]:
        if self._indexed is not self.leads:  # first use, or the leads were replaced (a restored state)
            self._index, self._indexed = {}, self.leads
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = {}
            for lead_id, lead in self.leads.items():
                _index_add(index, lead.get(name), lead_id)
        return index

    def _reindex(self, lead_id: int, changes: Mapping[str, tuple[Any, Any]]) -> None:
        if self._indexed is not self.leads:
            self._index, self._indexed = {}, self.leads
            return
        for name, (new, old) in changes.items():
            index = self._index.get(name)
            if index is None:
                continue
            _index_remove(index, old, lead_id)
            _index_add(index, new, lead_id)

    # --- activity feeds ------------------------------------------------------------------------------------

    def _record(
        self,
        lead_id: int,
        type_id: int,
        *,
        fields: list[dict[str, Any]] | None,
        attributes: list[dict[str, Any]],
        primary: tuple[int, str] | None = None,
    ) -> None:
        now = self.now()
        activity_id = len(self.activities) + 1
        activity: dict[str, Any] = {
            "id": activity_id,
            "marketoGUID": str(activity_id),
            "leadId": lead_id,
            # UTC with "Z": the activities page's current samples, and what marketorestpython's untilDatetime
            # filter parses (older samples show "+0000"; the product reads both).
            "activityDate": iso_z(now),
            "activityTypeId": type_id,
        }
        if primary is not None and type_id == DELETE_LEAD:
            activity["primaryAttributeValueId"], activity["primaryAttributeValue"] = primary
        if fields is not None:
            activity["fields"] = fields
        activity["attributes"] = attributes
        self.activities.append(activity)
        self._times.append(now)

    def paging_token(self, since: str) -> str:
        try:
            moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00").replace(" ", "+"))
        except ValueError as exc:
            raise ApiError("704", f"Invalid date format '{since}'") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        after = bisect.bisect_left(self._times, moment.timestamp())
        return encode_token("act", after)

    def feed(
        self,
        token: str,
        types: frozenset[int],
        *,
        fields: frozenset[str] | None,
        lead_ids: frozenset[int] | None,
        batch_size: int,
        scan_limit: int,
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """Activities after ``token``; scans at most ``scan_limit`` so a page can be short while more remain."""
        after = decode_token(token, "act")
        items: list[dict[str, Any]] = []
        index = max(after, 0)
        scanned = 0
        while index < len(self.activities) and scanned < scan_limit and len(items) < batch_size:
            activity = self.activities[index]
            index += 1
            scanned += 1
            if activity["activityTypeId"] not in types:
                continue
            if lead_ids is not None and activity["leadId"] not in lead_ids:
                continue
            if (
                fields is not None
                and activity["activityTypeId"] == CHANGE_DATA_VALUE
                and not any(change["name"] in fields for change in activity["fields"])
            ):
                continue
            items.append(dict(activity))
        return items, encode_token("act", index), index < len(self.activities)


def _index_add(index: dict[Any, set[int]], value: Any, lead_id: int) -> None:
    if value is None:
        return
    with suppress(TypeError):  # unhashable values are matched by a scan
        index.setdefault(_match_key(value), set()).add(lead_id)


def _index_remove(index: dict[Any, set[int]], value: Any, lead_id: int) -> None:
    if value is None:
        return
    try:
        ids = index.get(_match_key(value))
    except TypeError:
        return
    if ids is not None:
        ids.discard(lead_id)
        if not ids:
            del index[_match_key(value)]


def _match_key(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _same(left: Any, right: Any) -> bool:
    return bool(_match_key(left) == _match_key(right))
