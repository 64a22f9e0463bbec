"""Bulk lead import files: CSV built row by row and split so each file stays under Marketo's 10 MB limit."""

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


class ImportFileBuilder:
    """CSV import files of fixed ``columns`` (header first in each), built one row at a time: a row is encoded
    as it is added and only the encoded files are kept, each under ``max_bytes``. A single row that cannot fit in
    a file of its own raises ``ValueError``: no split can help it."""

    def __init__(self, columns: Sequence[str], *, max_bytes: int = DEFAULT_FILE_BYTES) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")
        self.max_bytes = max_bytes
        self.header = self._encode([str(c) for c in columns])
        self.rows = 0
        self._files: list[bytes] = []
        self._current = self._new_file()  # the file being filled, its header first
        self._size = len(self.header)

    def _new_file(self) -> io.BytesIO:
        file = io.BytesIO()
        file.write(self.header)
        return file

    def _close_file(self) -> None:
        """The file being filled joins the finished ones: BytesIO hands over its buffer without a copy once
        nothing more is written to it, so a file never sits in memory twice."""
        self._files.append(self._current.getvalue())
        self._current, self._size = self._new_file(), len(self.header)

    def _encode(self, values: Sequence[str]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(values)
        return self._buffer.getvalue().encode("utf-8")

    def add(self, values: Sequence[Any]) -> None:
        """One row, its cells in the order of the columns."""
        row = self._encode([_cell(value) for value in values])
        if len(self.header) + len(row) > self.max_bytes:
            raise ValueError(f"import row {self.rows} is {len(row)} bytes: too large for any import file")
        if self._size > len(self.header) and self._size + len(row) > self.max_bytes:
            self._close_file()
        self._current.write(row)
        self._size += len(row)
        self.rows += 1

    def files(self) -> list[bytes]:
        """The files of every row added so far (none without rows). The file being filled is closed: rows added
        afterwards start a new one."""
        if self._size > len(self.header):
            self._close_file()
        return list(self._files)


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
    builder = ImportFileBuilder(columns, max_bytes=max_bytes)
    for record in records:
        builder.add([record.get(column) for column in columns])
    return builder.files()
