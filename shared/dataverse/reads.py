"""Reading Dataverse: queries (every page, or one page a call that resumes from a saved link), records by id in
few requests, change-tracking feeds.

Paging follows ``@odata.nextLink`` (``Prefer: odata.maxpagesize``, at most 5000 rows a page); a change feed ends
with the ``@odata.deltaLink`` that is the checkpoint for the next call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shared.dataverse.paging import NextLinkPaginator
from shared.dataverse.records import Record, record_from_row
from shared.dataverse.session import DataverseSession, EntityInfo, odata_literal

MAX_PAGE_SIZE = 5000


@dataclass(frozen=True, slots=True)
class Change:
    """One row from a change-tracking feed: ``upsert`` carries the record, ``removed`` only the id."""

    kind: str
    id: str
    record: Record | None = None


@dataclass(slots=True)
class ChangeFeed:
    """Iterate the changes; once exhausted, ``delta_link`` is the checkpoint for the next call."""

    _pages: Iterator[Change]
    _paginator: NextLinkPaginator
    delta_link: str | None = field(default=None)

    def __iter__(self) -> Iterator[Change]:
        yield from self._pages
        self.delta_link = self._paginator.delta_link

    @property
    def pages_read(self) -> int:
        """Pages fetched so far (a page is fetched when its first row is asked for)."""
        return self._paginator.pages

    @property
    def next_page_link(self) -> str | None:
        """The URL of the page after the one being read: where a run that stops early resumes."""
        return self._paginator.next_url


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of a change-tracking read: its rows, the page after it (None: the last), and on the last page the
    delta link for the changes after the read."""

    changes: list[Change]
    next_link: str | None
    delta_link: str | None


COUNT_LIMIT = 5000
"""The most ``$count`` reports: Dataverse counts no further."""


class DataverseReads(DataverseSession):
    """Rows out of Dataverse: only the columns asked for, every page, ids absent when not readable."""

    def query(
        self,
        entity: str,
        *,
        select: Sequence[str],
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
        annotations: bool = True,
    ) -> Iterator[Record]:
        """All matching rows, page by page (``Prefer: odata.maxpagesize``), following ``@odata.nextLink``."""
        info = self.entity(entity)
        params = _query_params(info, select, filter)
        if orderby:
            params["$orderby"] = orderby
        if top is not None:
            params["$top"] = str(top)
        prefer = self._prefer(page_size, annotations)
        first = self._get_json(info.entity_set_name, params=params, prefer=prefer)
        for row in self._follow(first, prefer, NextLinkPaginator()):
            yield record_from_row(row, info.primary_id_attribute)

    def query_page(
        self,
        entity: str,
        *,
        select: Sequence[str],
        filter: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        next_link: str | None = None,
    ) -> tuple[list[Record], str | None]:
        """One page of a query: the first, or the one a saved ``@odata.nextLink`` names; with the link to the page
        after it (None: that was the last). A reader that outlives one run keeps the link and resumes there.
        Pages come in the primary key's order (``$orderby`` says so, as Dataverse pages anyway): the links of a
        page are then one run of the store's keys (:mod:`shared.store.link_keys`)."""
        info = self.entity(entity)
        prefer = self._prefer(page_size, True)
        if next_link:
            page = self._get_json(next_link, prefer=prefer)
        else:
            params = {**_query_params(info, select, filter), "$orderby": info.primary_id_attribute}
            page = self._get_json(info.entity_set_name, params=params, prefer=prefer)
        paginator = NextLinkPaginator()
        paginator.update_state(page)
        rows = page.get("value") or []
        return [record_from_row(row, info.primary_id_attribute) for row in rows], paginator.next_url

    def count(self, entity: str, *, filter: str | None = None) -> int:
        """How many rows match, as Dataverse counts them: the ``@odata.count`` of a one-row page. Dataverse stops
        counting at :data:`COUNT_LIMIT`: that figure means "at least that many"."""
        info = self.entity(entity)
        params = {**_query_params(info, [], filter), "$count": "true"}
        page = self._get_json(info.entity_set_name, params=params, prefer=self._prefer(1, False))
        return int(page.get("@odata.count") or 0)

    def _prefer(self, page_size: int, annotations: bool, *extra: str) -> str:
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        parts = [f"odata.maxpagesize={size}", *extra]
        if annotations:
            parts.append('odata.include-annotations="*"')
        return ",".join(parts)

    def _follow(self, page: Any, prefer: str, paginator: NextLinkPaginator) -> Iterator[dict[str, Any]]:
        """The rows of ``page`` and of every page after it, fetched as they are asked for."""
        while True:
            paginator.update_state(page)
            yield from page.get("value", [])
            if not paginator.has_more or paginator.next_url is None:
                return
            page = self._get_json(paginator.next_url, prefer=prefer)

    def read_by_ids(self, entity: str, ids: Iterable[str], columns: Sequence[str]) -> dict[str, Record]:
        """Many records by id with only ``columns``, in as few requests as the URL length allows.

        Ids that do not exist (or the user cannot read) are simply absent from the result.
        """
        info = self.entity(entity)
        wanted = list(dict.fromkeys(i.lower() for i in ids))
        found: dict[str, Record] = {}
        for chunk in self._id_chunks(info, wanted, columns):
            values = ",".join(odata_literal(i) for i in chunk)
            flt = f"Microsoft.Dynamics.CRM.In(PropertyName={odata_literal(info.primary_id_attribute)},PropertyValues=[{values}])"
            for record in self.query(entity, select=columns, filter=flt):
                found[record.id] = record
        return found

    def _id_chunks(self, info: EntityInfo, ids: list[str], columns: Sequence[str]) -> Iterator[list[str]]:
        base = len(self.service_root) + len(info.entity_set_name) + 200
        base += len(quote(",".join([info.primary_id_attribute, *columns]), safe=","))
        chunk: list[str] = []
        size = base
        for item in ids:
            cost = len(quote(odata_literal(item) + ",", safe=""))
            if chunk and size + cost > self._max_url_length:
                yield chunk
                chunk, size = [], base
            chunk.append(item)
            size += cost
        if chunk:
            yield chunk

    def changes(
        self, entity: str, *, select: Sequence[str], delta_link: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> ChangeFeed:
        """Rows changed since ``delta_link`` (or every row, on the first call); checkpoint ``feed.delta_link``."""
        info = self.entity(entity)
        paginator = NextLinkPaginator()

        def rows() -> Iterator[Change]:
            prefer = self._prefer(page_size, True, "odata.track-changes")
            if delta_link:
                page = self._get_json(delta_link, prefer=prefer)
            else:
                page = self._get_json(info.entity_set_name, params=_query_params(info, select, None), prefer=prefer)
            for row in self._follow(page, prefer, paginator):
                yield _change(row, info.primary_id_attribute)

        return ChangeFeed(rows(), paginator)

    def changes_page(
        self, entity: str, *, select: Sequence[str], link: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> ChangePage:
        """One page of a change-tracking read: the first (every row, on a table never read this way) or the one a
        saved ``@odata.nextLink`` names. A reader that outlives one run keeps ``next_link`` and resumes there; the
        last page carries the ``delta_link`` that is the checkpoint for what changes after the read."""
        info = self.entity(entity)
        prefer = self._prefer(page_size, True, "odata.track-changes")
        if link:
            page = self._get_json(link, prefer=prefer)
        else:
            page = self._get_json(info.entity_set_name, params=_query_params(info, select, None), prefer=prefer)
        paginator = NextLinkPaginator()
        paginator.update_state(page)
        rows = [_change(row, info.primary_id_attribute) for row in page.get("value") or []]
        return ChangePage(rows, paginator.next_url, paginator.delta_link)


def _query_params(info: EntityInfo, select: Sequence[str], filter: str | None) -> dict[str, str]:
    """``$select`` (the primary id first: every record needs it) and ``$filter``."""
    params = {"$select": ",".join(dict.fromkeys([info.primary_id_attribute, *select]))}
    if filter:
        params["$filter"] = filter
    return params


def _change(row: Mapping[str, Any], id_attribute: str) -> Change:
    context = str(row.get("@odata.context", ""))
    if context.endswith("/$deletedEntity") or "@removed" in row:
        raw_id = row.get("id") or row.get(id_attribute) or ""
        return Change("removed", str(raw_id).lower())
    record = record_from_row(row, id_attribute)
    return Change("upsert", record.id, record)
