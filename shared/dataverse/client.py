"""The Dataverse Web API client the sync uses: reads, queries, writes, ``$batch``, metadata, change tracking.

One class, assembled from one module per concept so each stays small: the request loop every call goes through
(:mod:`~shared.dataverse.session`: concurrency gate, fault classification, retries inside a time budget), reads
and change tracking (:mod:`~shared.dataverse.reads`), writes and ``$batch`` (:mod:`~shared.dataverse.writes`),
metadata and column security (:mod:`~shared.dataverse.metadata`). Callers import everything from here.
"""

from __future__ import annotations

from shared.dataverse.metadata import AttributeInfo, ColumnDescription, ColumnPrivilege, DataverseMetadata
from shared.dataverse.reads import MAX_PAGE_SIZE, Change, ChangeFeed, DataverseReads
from shared.dataverse.session import STANDARD_ENTITIES, EntityInfo, WhoAmI
from shared.dataverse.writes import BatchResult, DataverseWrites, RecordUpdate, entity_id_from_header


class DataverseClient(DataverseReads, DataverseWrites, DataverseMetadata):
    """Every Dataverse operation the sync needs, over one request loop (see :class:`DataverseSession`)."""


__all__ = [
    "MAX_PAGE_SIZE",
    "STANDARD_ENTITIES",
    "AttributeInfo",
    "BatchResult",
    "Change",
    "ChangeFeed",
    "ColumnDescription",
    "ColumnPrivilege",
    "DataverseClient",
    "EntityInfo",
    "RecordUpdate",
    "WhoAmI",
    "entity_id_from_header",
]
