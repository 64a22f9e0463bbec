"""Bulk lead import files: CSV built from records and split so each file stays under Marketo's 10 MB limit."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

MAX_IMPORT_BYTES = 10 * 1024 * 1024
# Margin for the multipart envelope around the file and for a reading of "10 MB" as 10,000,000 bytes.
DEFAULT_FILE_BYTES = 9_500_000


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _row_bytes(values: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def import_files(
    records: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    max_bytes: int = DEFAULT_FILE_BYTES,
) -> list[bytes]:
    """CSV files (header first in each) holding every record, each under ``max_bytes``.

    ``columns`` defaults to the union of the records' keys in first-seen order. A single row that cannot fit in
    a file of its own raises ``ValueError``: no split can help it.
    """
    if columns is None:
        seen: dict[str, None] = {}
        for record in records:
            seen.update(dict.fromkeys(record))
        columns = list(seen)
    header = _row_bytes(list(columns))
    files: list[bytes] = []
    current: list[bytes] = []
    size = len(header)
    for index, record in enumerate(records):
        row = _row_bytes([_cell(record.get(column)) for column in columns])
        if len(header) + len(row) > max_bytes:
            raise ValueError(f"import row {index} is {len(row)} bytes: too large for any import file")
        if size + len(row) > max_bytes:
            files.append(header + b"".join(current))
            current, size = [], len(header)
        current.append(row)
        size += len(row)
    if current:
        files.append(header + b"".join(current))
    return files
