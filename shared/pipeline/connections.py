"""An opportunity's stakeholders: Dataverse connections from the opportunity to a contact, with a role.

A connection row links two records (``record1id`` the source, ``record2id`` the target), each with an optional
connection role (``record1roleid``, ``record2roleid`` -> ``connectionroles``, whose ``name`` is the role, e.g.
"Stakeholder", "Decision Maker"). Dataverse keeps each connection with its reciprocal (source and target
swapped), so an opportunity's stakeholders are the active connections whose ``record1id`` is the opportunity and
``record2id`` a contact; the role is the target's (``record2roleid``), read as the lookup's formatted value.

Connections are not a synced entity: a connection created, changed or deleted wakes the reconcile of its
opportunity, through the plug-in steps registered on the connection table (:func:`connection_notification`) and
through the catch-up, which reads the table's change tracking (:func:`connection_notes`). A removed row in the
delta carries only its id, so its opportunity is found by the connection tokens kept in opportunity baselines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from shared.dataverse.client import Change, DataverseClient
from shared.dataverse.context import EntityImage, ExecutionContext
from shared.dataverse.faults import EXPIRED_VERSION_STAMP
from shared.dataverse.records import Record
from shared.dataverse.values import EntityRef
from shared.errors import Conflict, SkipRecord
from shared.pipeline.dataverse_side import lookup_to
from shared.pipeline.notification import Notification, Source
from shared.pipeline.ports import ChangesQueue
from shared.store.base import StateStore
from shared.store.model import Checkpoint

log = logging.getLogger(__name__)

CONNECTION = "connection"
OPPORTUNITY = "opportunity"
WATCHED = frozenset({"record1id", "record2id", "record2roleid", "statecode"})
"""The connection columns whose change changes a role (the plug-in step's filtering attributes and images)."""
SELECT = ["_record1id_value", "_record2id_value", "_record2roleid_value", "statecode"]
ACTIVE = 0
_IDS_PER_QUERY = 25  # ``_record1id_value eq <id>`` terms per $filter: well inside the URL limit
CONNECTIONS_KEY = "_role_source:connections"  # in an opportunity's baseline: its stakeholder connections' tokens


@dataclass(frozen=True, slots=True)
class Stakeholder:
    """A contact connected to an opportunity, in a role (its name, None when the connection names none)."""

    connection_id: str
    contact_id: str
    role: str | None = None
    role_id: str | None = None

    @property
    def token(self) -> str:
        """How the opportunity's baseline remembers it (ids only: no names in the comparison)."""
        return f"{self.connection_id}:{self.contact_id}:{self.role_id or ''}"


def stakeholder(record: Record) -> tuple[str, Stakeholder] | None:
    """The opportunity and stakeholder an active connection row stands for (None: not opportunity -> contact)."""
    if record.values.get("statecode") not in (ACTIVE, None):
        return None
    opportunity = lookup_to(record, "record1id", OPPORTUNITY, polymorphic=True)
    contact = lookup_to(record, "record2id", "contact", polymorphic=True)
    if not opportunity or not contact:
        return None
    role = record.values.get("record2roleid")
    name = getattr(role, "name", None)
    role_id = getattr(role, "id", None)
    return opportunity, Stakeholder(record.id, contact, name if isinstance(name, str) else None, role_id)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    valid = [str(UUID(i)) for i in ids]  # Dataverse ids only: nothing else reaches the $filter
    for start in range(0, len(valid), _IDS_PER_QUERY):
        yield valid[start : start + _IDS_PER_QUERY]


def read_stakeholders(dataverse: DataverseClient, opportunities: Sequence[str]) -> dict[str, tuple[Stakeholder, ...]]:
    """The stakeholders of each opportunity, by opportunity id: one query per 25 opportunities."""
    found: dict[str, list[Stakeholder]] = {}
    for chunk in _chunks(opportunities):
        terms = " or ".join(f"_record1id_value eq {i}" for i in chunk)
        for record in dataverse.query(CONNECTION, select=SELECT, filter=f"statecode eq {ACTIVE} and ({terms})"):
            pair = stakeholder(record)
            if pair is not None:
                found.setdefault(pair[0], []).append(pair[1])
    return {rid: tuple(sorted(items, key=lambda s: s.connection_id)) for rid, items in found.items()}


def _opportunity_of(image: EntityImage | None) -> str | None:
    if image is None:
        return None
    for column in ("record1id", "record2id"):
        ref = image.attributes.get(column)
        if isinstance(ref, EntityRef) and ref.logical_name == OPPORTUNITY and ref.id:
            return ref.id.lower()
    return None


def connection_notification(context: ExecutionContext, *, source: Source) -> Notification | None:
    """The opportunity a connection's Create, Update or Delete concerns, to reconcile (its roles follow the
    connection); None when the connection touches no opportunity, or its context carries no image to tell."""
    opportunity = (
        _opportunity_of(context.image("post"))
        or _opportunity_of(context.image("pre"))
        or _opportunity_of(context.target)
    )
    if opportunity is None:
        return None
    return Notification(
        source=source,
        entity=OPPORTUNITY,
        dynamics_id=opportunity,
        correlation_id=context.correlation_id,
        observed_at=context.operation_created_on or datetime.now(UTC),
        dedupe_key=f"connection:{context.delivery_key}",
    )


def tokens(baseline: Mapping[str, object]) -> set[str]:
    text = baseline.get(CONNECTIONS_KEY)
    return {t for t in text.split(",") if t} if isinstance(text, str) else set()


def connection_notes(store: StateStore, changes: Iterable[Change]) -> list[Notification]:
    """Catch-up: the opportunities whose stakeholders a page of connection changes may have changed. A row whose
    token its opportunity's baseline already holds is in step (skipped), and so is one that is no stakeholder and
    never was; a removed row names only itself: the opportunities whose baselines hold its id are found by reading
    the opportunity links (removals are rare)."""
    rows = list(changes)
    wanted: dict[str, str] = {}  # opportunity -> dedupe basis
    current: list[tuple[Change, str, Stakeholder | None]] = []
    for change in rows:
        if change.kind == "removed" or change.record is None:
            continue
        pair = stakeholder(change.record)
        opportunity = pair[0] if pair else lookup_to(change.record, "record1id", OPPORTUNITY, polymorphic=True)
        if opportunity:  # a connection of no opportunity is no role
            current.append((change, opportunity, pair[1] if pair else None))
    links = store.get_links(OPPORTUNITY, {opportunity for _, opportunity, _ in current})
    for change, opportunity, person in current:
        held = tokens(links[opportunity].baseline) if opportunity in links else set()
        if person is not None and person.token in held:
            continue  # in step already
        if person is None and not any(t.split(":", 1)[0] == change.id for t in held):
            continue  # not a stakeholder (inactive, or not to a contact), and never was one
        etag = change.record.etag if change.record is not None else None
        wanted[opportunity] = f"connection-etag:{etag or change.id}"
    gone = {c.id for c in rows if c.kind == "removed"}
    if gone:
        for link in store.iter_links(OPPORTUNITY):
            if any(t.split(":", 1)[0] in gone for t in tokens(link.baseline)):
                wanted.setdefault(link.dynamics_id, f"connection-removed:{','.join(sorted(gone))[:80]}")
    return [
        Notification(source=Source.DATAVERSE_CATCHUP, entity=OPPORTUNITY, dynamics_id=rid, dedupe_key=basis)
        for rid, basis in wanted.items()
    ]


CHECKPOINT = "dataverse:delta:connection"
_NOTES_PER_SEND = 1000


def catch_up_connections(
    store: StateStore,
    dataverse: DataverseClient,
    queue: ChangesQueue,
    *,
    now: Callable[[], datetime],
    page_size: int = 5000,
) -> int:
    """Queue the opportunities whose stakeholder connections changed since the checkpointed delta link (the first
    run reads every connection: opportunities already in step are skipped). Returns how many were queued.

    The notes are queued (marked pending first) before the delta link moves on; a crash in between reads the
    same changes again, which queues the same opportunities again: harmless."""
    checkpoint = store.get_checkpoint(CHECKPOINT)
    try:
        feed = dataverse.changes(
            CONNECTION, select=SELECT, delta_link=checkpoint.value if checkpoint else None, page_size=page_size
        )
        changes: list[Change] = []
        queued = 0
        for change in feed:
            changes.append(change)
            if len(changes) >= _NOTES_PER_SEND:
                queued += len(queue.send(connection_notes(store, changes)))
                changes = []
        queued += len(queue.send(connection_notes(store, changes))) if changes else 0
    except SkipRecord as exc:
        if exc.code != EXPIRED_VERSION_STAMP:
            raise
        log.warning("Dataverse catch-up: the connections' delta link expired; the next run reads them in full")
        with suppress(Conflict):
            store.save_checkpoint(Checkpoint(CHECKPOINT, "", now(), checkpoint.etag if checkpoint else None))
        return 0
    if feed.delta_link:
        with suppress(Conflict):  # another run moved it on: either delta link will do
            store.save_checkpoint(
                Checkpoint(CHECKPOINT, feed.delta_link, now(), checkpoint.etag if checkpoint else None)
            )
    return queued
