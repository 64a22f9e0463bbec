"""One record as the admin sees it: found by its Dynamics id, its Marketo id or its e-mail, with its link, its
history and its sync errors (GET /api/records, docs/record-history.md).

A Dynamics id is looked up in the links of every mapped entity (and, for a record never linked, in its history);
a Marketo id in the Marketo-id index (persons, then every Marketo object); an e-mail is asked of Marketo (a
lookup of persons by e-mail), whose persons lead to their links. Nothing here writes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.core.entities import MarketoObject
from shared.core.history import HistoryEntry
from shared.core.mapping import SyncMapping
from shared.core.record_links import RecordLinks, record_label
from shared.errors import InvalidRequest, NotFound
from shared.marketo.client import MarketoClient
from shared.pipeline.error_view import error_row
from shared.pipeline.history import Retention, record_entries
from shared.store.base import StateStore
from shared.store.model import Link

MAX_QUERY = 320  # an e-mail address is at most 320 characters; nothing we look up is longer


@dataclass(frozen=True, slots=True)
class Found:
    entity: str
    dynamics_id: str
    link: Link | None = None
    newest: HistoryEntry | None = None  # when there is no link: the record's newest history entry


def _is_person(mapping: SyncMapping, entity: str) -> bool:
    found = mapping.by_entity.get(entity)
    return found is not None and found.rule.marketo_object is MarketoObject.PERSON


def _guid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text)).lower()
    except ValueError:
        return None


def find_records(
    store: StateStore,
    mapping: SyncMapping,
    marketo: MarketoClient,
    q: str,
    *,
    urls: RecordLinks,
    now: datetime,
    retention: Retention,
) -> dict[str, Any]:
    """The records ``q`` names (a Dynamics id, a Marketo id or an e-mail), as ``{"records": [...]}``."""
    text = q.strip()
    if not text:
        raise InvalidRequest(
            "q is required: a Dynamics id, a Marketo id or an e-mail address", code="bad-query", field="q"
        )
    if len(text) > MAX_QUERY or any(c in text for c in "/\\#?,"):
        raise InvalidRequest("q must be a Dynamics id, a Marketo id or an e-mail address", code="bad-query", field="q")
    found: dict[tuple[str, str], Found] = {}
    if "@" in text:
        for person in marketo.get_leads("email", [text], fields=["id", "email"]):
            link = store.find_by_marketo("lead", str(person["id"]))
            if link is not None:
                found.setdefault((link.entity, link.dynamics_id), Found(link.entity, link.dynamics_id, link))
    else:
        for link in _by_marketo_id(store, mapping, text):
            found.setdefault((link.entity, link.dynamics_id), Found(link.entity, link.dynamics_id, link))
        guid = _guid(text)
        if guid is not None:
            for item in _by_dynamics_id(store, mapping, guid, now=now, retention=retention):
                found.setdefault((item.entity, item.dynamics_id), item)
    return {"records": [_summary(item, urls) for item in found.values()]}


def _by_marketo_id(store: StateStore, mapping: SyncMapping, marketo_id: str) -> list[Link]:
    links: list[Link] = []
    person = store.find_by_marketo("lead", marketo_id)  # leads and contacts share the person index
    if person is not None:
        links.append(person)
    for entity in mapping.by_entity:
        if not _is_person(mapping, entity):
            link = store.find_by_marketo(entity, marketo_id)
            if link is not None:
                links.append(link)
    return links


def _by_dynamics_id(
    store: StateStore, mapping: SyncMapping, dynamics_id: str, *, now: datetime, retention: Retention
) -> list[Found]:
    found = [Found(e, dynamics_id, link) for e in mapping.by_entity if (link := store.get_link(e, dynamics_id))]
    if found:
        return found
    for entity in mapping.by_entity:  # never linked (a create that failed, kept out by the sync filter...)
        newest = record_entries(store, entity, dynamics_id, now=now, retention=retention, limit=1)
        if newest:
            found.append(Found(entity, dynamics_id, None, newest[0]))
    return found


def _label(link: Link | None, newest: HistoryEntry | None) -> str:
    if link is not None and link.baseline:
        return record_label(link.baseline)
    if newest is not None:
        return record_label({f.field: f.dynamics for f in newest.fields})
    return ""


def _summary(item: Found, urls: RecordLinks) -> dict[str, Any]:
    marketo_id = str(item.link.marketo_id) if item.link is not None and item.link.marketo_id is not None else None
    return {
        "entity": item.entity,
        "dynamics_id": item.dynamics_id,
        "marketo_id": marketo_id,
        "label": _label(item.link, item.newest),
        "dynamics_url": urls.dynamics(item.entity, item.dynamics_id),
        "marketo_url": urls.marketo(item.entity, marketo_id),
    }


def record_view(
    store: StateStore,
    mapping: SyncMapping,
    entity: str,
    dynamics_id: str,
    *,
    urls: RecordLinks,
    now: datetime,
    retention: Retention,
    limit: int | None = None,
) -> dict[str, Any]:
    """The record, its history newest first and its sync errors; NotFound for an unmapped entity or a record the
    sync has never seen."""
    if entity not in mapping.by_entity:
        raise NotFound("the entity is not in the sync mapping", code="not-found")
    guid = _guid(dynamics_id)
    if guid is None:
        raise InvalidRequest("the record id must be a Dynamics GUID", code="bad-request", field="dynamics_id")
    link = store.get_link(entity, guid)
    history = record_entries(store, entity, guid, now=now, retention=retention, limit=limit)
    errors = [e for e in store.list_errors(entity=entity, search=guid) if e.record_id.lower() == guid]
    if link is None and not history and not errors:
        raise NotFound("the sync has no record of this id (no link, no history, no sync error)", code="not-found")
    summary = _summary(Found(entity, guid, link, history[0] if history else None), urls)
    if not summary["label"] and errors:
        summary["label"] = next((e.label for e in errors if e.label), "")
    if summary["marketo_id"] is None and errors:
        marketo_id = next((e.marketo_id for e in errors if e.marketo_id), None)
        summary.update(marketo_id=marketo_id, marketo_url=urls.marketo(entity, marketo_id) if marketo_id else None)
    record = {
        **summary,
        "linked": link is not None and link.marketo_id is not None,
        "synced_at": _iso(link.synced_at) if link is not None else None,
        "baseline": dict(link.baseline) if link is not None else {},
        "deleted_in_dynamics": link.deleted_in_dynamics if link is not None else False,
        "followed_by": link.followed_by if link is not None else None,
    }
    return {
        "record": record,
        "history": [entry.as_doc() for entry in history],
        "errors": [error_row(e, urls) for e in errors],
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat() if moment is not None else None
