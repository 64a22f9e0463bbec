"""Cutting work into calls Marketo accepts: at most 300 records and under 1 MB of JSON per call."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

MAX_BATCH = 300
MAX_BODY_BYTES = 1_000_000  # Marketo answers 413 above 1 MB ("1MB"); stay under the decimal reading to be safe.
_ENVELOPE_ALLOWANCE = 512  # action, lookupField, partitionName and the JSON punctuation around ``input``


def chunks(items: Sequence[T], size: int = MAX_BATCH) -> Iterator[tuple[int, Sequence[T]]]:
    """``(offset, chunk)`` pairs so per-record results can be mapped back to the caller's indices."""
    if size < 1:
        raise ValueError("chunk size must be >= 1")
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def record_batches(
    records: Sequence[Mapping[str, Any]], *, max_count: int = MAX_BATCH, max_bytes: int = MAX_BODY_BYTES
) -> Iterator[tuple[int, Sequence[Mapping[str, Any]]]]:
    """Greedy batches by count and serialized size; a single record too large on its own is refused clearly."""
    budget = max_bytes - _ENVELOPE_ALLOWANCE
    start = 0
    size = 0
    for index, record in enumerate(records):
        record_size = len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        if record_size > budget:
            raise ValueError(f"record {index} alone is {record_size} bytes, over Marketo's request limit")
        if index - start >= max_count or size + record_size > budget:
            yield start, records[start:index]
            start, size = index, 0
        size += record_size
    if start < len(records):
        yield start, records[start:]
