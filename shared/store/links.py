"""Links and baselines in the store's rows: read, saved on their ETags, walked, and moved out of the legacy layout.

Addresses are :mod:`shared.store.link_keys`'s: :data:`~shared.store.link_keys.SHARDS` partitions per entity,
row keys in Dataverse's page order. A store written before that layout holds *legacy* rows (the entity's one
partition, the id as key). While an entity has any, a link not found at its address is looked for there too
(whether it has any is asked again every :data:`LEGACY_RECHECK_SECONDS`: one row read). A legacy link is never
written in place: saving it *moves* it -- its new row inserted at its address (the insert fails if another
instance moved it first: a :class:`Conflict`, re-read and decide again, as for any changed row), then the legacy
row deleted on its ETag. A crash between the two leaves a stale legacy row behind the new one, which wins every
read and is deleted by the next move. :mod:`shared.store.link_layout` moves the rest, a batch at a time.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.errors import Conflict
from shared.store.link_keys import SHARDS, address, dynamics_id_of, legacy_address, partitions
from shared.store.model import Link
from shared.store.rows import BATCH_LIMIT, LINKS, Row, Rows, Write

log = logging.getLogger(__name__)
T = TypeVar("T")

REPLACE_ROUNDS = 3  # batch rounds of a replace that leave the moved rows out before it goes row by row
LEGACY_RECHECK_SECONDS = 60.0
"""How long an entity's answer to "any legacy rows left?" is trusted before it is asked again."""

_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()


def _partition_readers() -> ThreadPoolExecutor:
    """One thread per shard, so the partitions of one read or batch of writes go at once (a backend read may use
    its own pool below this one; no task here submits to this pool, so none waits on another)."""
    with _pool_lock:
        if not _pool:
            _pool.append(ThreadPoolExecutor(SHARDS, thread_name_prefix="link-read"))
        return _pool[0]


def _in_parallel(work: Callable[[Any], T], items: Iterable[Any]) -> Iterator[T]:
    """``work`` on each item in the partition pool, each in a copy of the caller's context (its log context, and
    whatever else the caller's context variables say, go with it); results in order."""
    pool = _partition_readers()
    futures = [pool.submit(contextvars.copy_context().run, work, item) for item in items]
    for future in futures:
        yield future.result()


def _now() -> datetime:
    return datetime.now(UTC)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def link_doc(link: Link, synced_at: datetime) -> dict[str, Any]:
    """A link's row document."""
    doc: dict[str, Any] = {
        "marketo_id": link.marketo_id,
        "baseline": link.baseline,
        "deleted_in_dynamics": link.deleted_in_dynamics,
        "synced_at": synced_at.isoformat(),
        "followed_by": link.followed_by,
    }
    if link.intent:
        doc["intent"] = link.intent
    return doc


def to_link(entity: str, row: Row) -> Link:
    doc = row.doc
    return Link(
        entity=entity,
        dynamics_id=row.rk if row.pk == entity else dynamics_id_of(row.rk),  # a legacy row's key is the id
        marketo_id=doc.get("marketo_id"),
        baseline=dict(doc.get("baseline") or {}),
        deleted_in_dynamics=bool(doc.get("deleted_in_dynamics")),
        synced_at=_when(doc.get("synced_at")),
        followed_by=doc.get("followed_by"),
        intent=dict(doc.get("intent") or {}),
        etag=row.etag,
        row=(row.pk, row.rk),
    )


def is_legacy(link: Link) -> bool:
    """Read from a legacy row (the entity's own partition)."""
    return link.row is not None and link.row[0] == link.entity


def cursor(link: Link) -> str:
    """Where a walk over an entity's links stands after ``link``: comparable, in walk order."""
    if link.row is not None:
        return f"{link.row[0]}/{link.row[1]}"
    at = address(link.entity, link.dynamics_id)
    return f"{at.pk}/{at.rk}"


@dataclass(frozen=True, slots=True)
class Move:
    """A legacy row to move: the link's id, the document its new row gets, the legacy row's ETag."""

    dynamics_id: str
    doc: Mapping[str, Any]
    legacy_etag: str


class Links:
    def __init__(self, rows: Rows, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rows = rows
        self._clock = clock
        self._legacy: dict[str, tuple[float, bool]] = {}  # entity -> (when asked, any legacy rows)
        self._lock = threading.Lock()

    # --- the legacy layout ---------------------------------------------------------------------------------------

    def legacy_left(self, entity: str, *, fresh: bool = False) -> bool:
        """Whether the entity's legacy partition holds any rows (the answer kept a while, unless ``fresh``)."""
        with self._lock:
            known = self._legacy.get(entity)
        if known is not None and not fresh and self._clock() - known[0] < LEGACY_RECHECK_SECONDS:
            return known[1]
        left = next(iter(self.rows.query_range(LINKS, entity, limit=1)), None) is not None
        with self._lock:
            self._legacy[entity] = (self._clock(), left)
        return left

    # --- reads ---------------------------------------------------------------------------------------------------

    def get(self, entity: str, dynamics_id: str) -> Link | None:
        at = address(entity, dynamics_id)
        row = self.rows.get(LINKS, at.pk, at.rk)
        if row is None and self.legacy_left(entity):
            old = legacy_address(entity, dynamics_id)
            row = self.rows.get(LINKS, old.pk, old.rk)
            if row is None:  # moved between the two reads (a move inserts before it deletes): it is there now
                row = self.rows.get(LINKS, at.pk, at.rk)
        return to_link(entity, row) if row is not None else None

    def get_many(self, entity: str, dynamics_ids: Iterable[str]) -> dict[str, Link]:
        """Links by Dynamics id (lower case); ids without a link are absent. Each partition's keys in one backend
        read (a run of keys as a range), the partitions at once."""
        wanted = {i.lower() for i in dynamics_ids}
        found = self.get_many_current(entity, wanted)
        missing = wanted - found.keys()
        if missing and self.legacy_left(entity):
            for key, row in self.rows.get_many(LINKS, entity, missing).items():
                found.setdefault(key, to_link(entity, row))
            if missing - found.keys():  # any moved between the two reads is at its address now
                found.update(self.get_many_current(entity, missing - found.keys()))
        return found

    def get_many_current(self, entity: str, dynamics_ids: Iterable[str]) -> dict[str, Link]:
        """:meth:`get_many` in the current layout only."""
        parts: dict[str, list[str]] = defaultdict(list)
        for rid in dynamics_ids:
            at = address(entity, rid)
            parts[at.pk].append(at.rk)
        found: dict[str, Link] = {}
        for rows in self._read_parts(parts):
            for row in rows.values():
                link = to_link(entity, row)
                found[link.dynamics_id] = link
        return found

    def _read_parts(self, parts: Mapping[str, list[str]]) -> Iterator[dict[str, Row]]:
        if len(parts) <= 1:
            for pk, keys in parts.items():
                yield self.rows.get_many(LINKS, pk, keys)
            return
        yield from _in_parallel(lambda item: self.rows.get_many(LINKS, item[0], item[1]), parts.items())

    def walk(self, entity: str, *, after: str = "", limit: int = 300) -> list[Link]:
        """Up to ``limit`` links after the :func:`cursor` ``after`` ("": from the first), in walk order: the
        legacy partition, then the shards. An ``after`` without a partition (a walk saved before the shards) is a
        place in the legacy partition."""
        pk, _, rk = after.partition("/") if "/" in after else (entity, "", after)
        order = [entity, *partitions(entity)]
        found: list[Link] = []
        for part in order[order.index(pk) if pk in order else 0 :]:
            start = rk if part == pk else ""
            rows = self.rows.query_range(LINKS, part, ge=start, limit=limit - len(found) + 1)
            found.extend(to_link(entity, row) for row in rows if not (part == pk and row.rk == start and start))
            if len(found) >= limit:
                return found[:limit]
        return found

    def every(self, entity: str) -> Iterator[Link]:
        """Every link of the entity (a legacy row that a moved one outlived is left out)."""
        seen: set[str] = set()
        for part in partitions(entity):
            for row in self.rows.query(LINKS, part):
                link = to_link(entity, row)
                seen.add(link.dynamics_id)
                yield link
        for row in self.rows.query(LINKS, entity):
            if row.rk not in seen:
                yield to_link(entity, row)

    # --- writes --------------------------------------------------------------------------------------------------

    def save(self, link: Link, index: Callable[[str, str], None]) -> Link:
        """Create (``etag`` None) or replace a link on its ETag (a legacy one is moved); ``index(marketo_id,
        key)`` keeps the Marketo-id index in step."""
        synced_at = link.synced_at or _now()
        doc = link_doc(link, synced_at)
        key = link.dynamics_id.lower()
        at = address(link.entity, key)
        if link.etag is None:
            etag = self.rows.insert(LINKS, at.pk, at.rk, doc)
        elif is_legacy(link):
            moved, conflicts = self.move(link.entity, [Move(key, doc, link.etag)])
            if key in conflicts:
                raise Conflict(f"link {link.entity}/{key}: moved since it was read")
            etag = str(moved[key])
        else:
            etag = self.rows.replace(LINKS, at.pk, at.rk, doc, link.etag)
        if link.marketo_id is not None and link.followed_by is None:
            index(str(link.marketo_id), key)
        return replace(link, dynamics_id=key, etag=etag, synced_at=synced_at, row=(at.pk, at.rk))

    def insert_many(self, entity: str, links: Iterable[Link]) -> int:
        """New links (none of them stored yet), in batch transactions per partition, the Marketo-id index left to
        the caller (seeding a store in bulk). Returns how many."""
        parts: dict[str, list[Write]] = defaultdict(list)
        now = _now()
        for link in links:
            at = address(entity, link.dynamics_id)
            parts[at.pk].append(Write("insert", at.rk, link_doc(link, link.synced_at or now)))

        def insert(pk: str, writes: list[Write]) -> None:
            for start in range(0, len(writes), BATCH_LIMIT):
                self.rows.write_many(LINKS, pk, writes[start : start + BATCH_LIMIT])

        for _ in self._each_part(parts, insert):
            pass
        return sum(len(w) for w in parts.values())

    def replace_many(self, entity: str, links: Sequence[Link]) -> tuple[dict[str, Link], set[str]]:
        """Replace existing links on their ETags in batch transactions of up to :data:`BATCH_LIMIT` per
        partition (legacy ones moved, in batches too). Returns the saved links by id, and the ids whose row had
        changed meanwhile (not saved: left to the caller)."""
        saved: dict[str, Link] = {}
        conflicts: set[str] = set()  # row keys
        docs = {link.dynamics_id.lower(): link_doc(link, link.synced_at or _now()) for link in links}
        parts: dict[str, list[Write]] = defaultdict(list)
        moves: list[Move] = []
        for link in links:
            key = link.dynamics_id.lower()
            at = address(entity, key)
            if is_legacy(link):
                moves.append(Move(key, docs[key], str(link.etag)))
            else:
                parts[at.pk].append(Write("replace", at.rk, docs[key], link.etag))
        etags: dict[str, str | None] = {}
        for written, refused in self._each_part(parts, self._replace_part):
            etags.update(written)
            conflicts.update(refused)
        moved, lost = self.move(entity, moves)
        changed = {dynamics_id_of(rk) for rk in conflicts} | lost
        by_key = {dynamics_id_of(rk): etag for rk, etag in etags.items()} | moved
        for link in links:
            key = link.dynamics_id.lower()
            if key in by_key and key not in changed:
                at = address(entity, key)
                saved[key] = replace(link, dynamics_id=key, etag=by_key[key], row=(at.pk, at.rk))
        return saved, changed

    def _each_part(self, parts: Mapping[str, list[Write]], work: Callable[[str, list[Write]], T]) -> Iterator[T]:
        """``work`` on each partition's writes, the partitions at once (one partition's batches in order)."""
        if len(parts) <= 1:
            yield from (work(pk, writes) for pk, writes in parts.items())
            return
        yield from _in_parallel(lambda item: work(item[0], item[1]), parts.items())

    def _replace_part(self, pk: str, writes: list[Write]) -> tuple[dict[str, str | None], set[str]]:
        etags: dict[str, str | None] = {}
        conflicts: set[str] = set()
        for start in range(0, len(writes), BATCH_LIMIT):
            etags.update(self._replace_unmoved(pk, writes[start : start + BATCH_LIMIT], conflicts))
        return etags, conflicts

    def _replace_unmoved(self, pk: str, writes: list[Write], conflicts: set[str]) -> Mapping[str, str | None]:
        """One batch of replaces in one partition; when a row moved meanwhile (the batch changed nothing), the
        batch's rows are read again in one request, the moved ones left out (``conflicts``, by row key) and the
        rest sent again -- two requests for a row the live sync saved, not one per row. After
        :data:`REPLACE_ROUNDS` such rounds (the rows keep moving) the rest go row by row."""

        def moved(current: Mapping[str, Row]) -> set[str]:
            return {w.rk for w in writes if w.rk not in current or current[w.rk].etag != w.etag}

        etags, rest = self._send_leaving_out(pk, writes, moved, conflicts)
        for write in rest:
            assert write.doc is not None  # a replace carries its document
            try:
                etags[write.rk] = self.rows.replace(LINKS, pk, write.rk, write.doc, str(write.etag))
            except Conflict:
                conflicts.add(write.rk)
        return etags

    def _send_leaving_out(
        self, pk: str, writes: list[Write], refused: Callable[[Mapping[str, Row]], set[str]], out: set[str]
    ) -> tuple[dict[str, str | None], list[Write]]:
        """Send one batch; when it is refused (a row changed meanwhile: the batch changed nothing), read its rows
        again in one request, leave out the keys ``refused`` names from what it read (into ``out``), and send the
        rest again, :data:`REPLACE_ROUNDS` times at most. Returns the ETags written, and what is still unsent."""
        for _ in range(REPLACE_ROUNDS):
            if not writes:
                return {}, []
            try:
                return dict(self.rows.write_many(LINKS, pk, writes)), []
            except Conflict:
                left_out = refused(self.rows.get_many(LINKS, pk, [w.rk for w in writes]))
                out.update(left_out)
                writes = [w for w in writes if w.rk not in left_out]
        return {}, writes

    def move(self, entity: str, moves: Sequence[Move]) -> tuple[dict[str, str], set[str]]:
        """Legacy rows to their addresses: each new row inserted (batch transactions per partition, the
        partitions at once), then the legacy rows deleted on their ETags. Returns the new rows' ETags by id, and
        the ids that had been moved already (their new row is the one that counts; the caller re-reads). Either
        way the legacy row goes."""
        moved: dict[str, str] = {}
        taken: set[str] = set()
        parts: dict[str, list[Write]] = defaultdict(list)
        for item in moves:
            at = address(entity, item.dynamics_id)
            parts[at.pk].append(Write("insert", at.rk, item.doc))
        for inserted, present in self._each_part(parts, self._insert_part):
            moved.update({dynamics_id_of(rk): str(etag) for rk, etag in inserted.items()})
            taken.update(present)
        gone = {dynamics_id_of(rk) for rk in taken}
        self._delete_legacy(entity, moves, moved)
        return moved, gone

    def _insert_part(self, pk: str, writes: list[Write]) -> tuple[dict[str, str | None], set[str]]:
        """Insert one partition's rows in batches; rows that exist already (moved meanwhile) are left out and
        named (second of the pair)."""
        etags: dict[str, str | None] = {}
        taken: set[str] = set()
        for start in range(0, len(writes), BATCH_LIMIT):
            chunk = writes[start : start + BATCH_LIMIT]
            sent, rest = self._send_leaving_out(pk, chunk, set, taken)  # the keys already there
            etags.update(sent)
            for write in rest:  # absent when read, present when inserted, round after round: one by one
                try:
                    etags[write.rk] = self.rows.insert(LINKS, pk, write.rk, dict(write.doc or {}))
                except Conflict:
                    taken.add(write.rk)
        return etags, taken

    def _delete_legacy(self, entity: str, moves: Sequence[Move], moved: Mapping[str, str]) -> None:
        """Delete the moved rows' legacy rows on their ETags. One that changed meanwhile was written by a writer of
        the layout before this one (an instance of the previous version, during a deploy): its new content is
        carried over to the new row if that row is still as this move left it, then the legacy row goes."""
        for start in range(0, len(moves), BATCH_LIMIT):
            chunk = moves[start : start + BATCH_LIMIT]
            try:
                self.rows.write_many(LINKS, entity, [Write("delete", m.dynamics_id, etag=m.legacy_etag) for m in chunk])
                continue
            except Conflict:
                pass
            for item in chunk:
                try:
                    self.rows.write_many(LINKS, entity, [Write("delete", item.dynamics_id, etag=item.legacy_etag)])
                except Conflict:
                    self._carry_over(entity, item.dynamics_id, moved.get(item.dynamics_id))

    def _carry_over(self, entity: str, key: str, new_etag: str | None) -> None:
        """A legacy row changed after it was copied: keep its latest content in the new row (unless the new row
        moved on since), then delete it. A legacy row that is gone needs nothing."""
        old = self.rows.get(LINKS, entity, key)
        if old is None:
            return
        at = address(entity, key)
        try:
            if new_etag is not None:
                self.rows.replace(LINKS, at.pk, at.rk, old.doc, new_etag)
            self.rows.write_many(LINKS, entity, [Write("delete", key, etag=old.etag)])
        except Conflict:
            log.warning("link %s/%s: its legacy row keeps changing while it moves; the next move retries", entity, key)
