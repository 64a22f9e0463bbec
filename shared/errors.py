"""The product's error tree, grouped by what the caller must do.

    SyncError                       root: never raised itself
    ├── RetryLater                  transient: leave the message for redelivery (throttling, 5xx, timeouts)
    │   └── Throttled               the service said "slow down"; ``retry_after`` seconds if it said when
    ├── Conflict                    optimistic concurrency lost (ETag / If-Match 412): re-read and decide again
    ├── SkipRecord                  this record cannot sync as it is: log it in sync errors, carry on with the rest
    │   ├── MissingColumn           a Dynamics column named in the request does not exist (``table``, ``column``)
    │   └── MissingField            a Marketo field named in the request does not exist (``field``)
    └── StopSync                    configuration or credentials are wrong: nothing will work until a human acts
        └── QuotaExhausted          the daily quota is spent: stop until ``resets_at``

A conflict is not a skip: the record is fine, it only changed under us, so it is decided again rather than
reported. Missing columns and fields are raised where the service's answer is read, so callers mark that one
field broken and carry on, without reading service error text.

HTTP statuses and service error codes are mapped onto this tree in one place per service (the clients'
``faults`` modules). Messages never include secrets.
"""

from __future__ import annotations

from datetime import datetime


class SyncError(Exception):
    """Root of every error the product raises on purpose."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code else self.message


class RetryLater(SyncError):
    """A transient failure; the same work may succeed later."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Throttled(RetryLater):
    """The service asked us to slow down (HTTP 429, Marketo 606/615)."""


class SkipRecord(SyncError):
    """This record (or field) cannot be synced as it is; the rest of the batch goes on."""


class Conflict(SyncError):
    """The record changed under us (ETag mismatch); re-read it and decide again."""


class MissingColumn(SkipRecord):
    """Dataverse has no such column on the table (its answer to a ``$select`` or a write naming it)."""

    def __init__(self, message: str, *, table: str, column: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.table = table
        self.column = column


class MissingField(SkipRecord):
    """Marketo has no such field (1006 "Field 'x' not found") on the object the request named."""

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class StopSync(SyncError):
    """Nothing will succeed until configuration or credentials are fixed."""


class QuotaExhausted(StopSync):
    """The daily API quota is spent."""

    def __init__(self, message: str, *, code: str | None = None, resets_at: datetime | None = None) -> None:
        super().__init__(message, code=code)
        self.resets_at = resets_at
