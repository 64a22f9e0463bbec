"""The product's error tree, grouped by what the caller must do.

    SyncError                       root: never raised itself
    ├── RetryLater                  transient: leave the message for redelivery (throttling, 5xx, timeouts)
    │   └── Throttled               the service said "slow down"; ``retry_after`` seconds if it said when
    ├── Conflict                    optimistic concurrency lost (ETag / If-Match 412): re-read and decide again
    ├── SkipRecord                  this record cannot sync as it is: log it in sync errors, carry on with the rest
    │   ├── MissingColumn           a Dynamics column named in the request does not exist (``table``, ``column``)
    │   └── MissingField            a Marketo field named in the request does not exist (``field``)
    ├── StopSync                    configuration or credentials are wrong: nothing will work until a human acts
    │   └── QuotaExhausted          the daily quota is spent: stop until ``resets_at``
    └── Refused                     a caller's request is refused as it stands: asked again unchanged, it gets the
        │                           same answer; the message says what to change (the request, the systems, or when)
        ├── InvalidRequest          unusable input (not JSON, wrong shape, a bad value); ``field`` names the part
        │   └── TooLarge            the body is over the size limit
        ├── Unauthenticated         no credential, or the wrong one (a webhook's shared secret)
        ├── Forbidden               a known caller asking for what is not this sync's (another organization)
        ├── NotFound                what the request names does not exist (an entity, a sync error, a person)
        ├── AlreadyExists           what the request adds is there already, or its name is the sync's own
        ├── Busy                    what the request changes is in use (its Quick Sync runs): ask once it is done
        └── NotPossible             understood, but the systems as they stand do not allow it: change them first

A conflict is not a skip: the record is fine, it only changed under us, so it is decided again rather than
reported. Missing columns and fields are raised where the service's answer is read, so callers mark that one
field broken and carry on, without reading service error text.

A refusal is about a caller's request (an admin endpoint, a webhook call), not about the sync's own work; the
checks that raise it run before anything is changed wherever they can.

HTTP statuses and service error codes are mapped onto this tree in one place per service (the clients'
``faults`` modules); the tree is mapped back onto HTTP answers in one place too (``functions/http.py``).
Messages never include secrets, and a refusal's message never repeats a value the caller sent (it names the
field instead): both may reach logs and anonymous callers.
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


class Refused(SyncError):
    """The caller's request cannot be carried out as asked; nothing was changed."""


class InvalidRequest(Refused):
    """The input cannot be used (not JSON, the wrong shape, a value out of range); ``field`` names where."""

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class TooLarge(InvalidRequest):
    """The body is larger than the endpoint accepts."""


class Unauthenticated(Refused):
    """No credential, or not the configured one: the caller must present the right secret."""


class Forbidden(Refused):
    """The caller is known, but what it asks about is not this sync's (a webhook from another organization)."""


class NotFound(Refused):
    """What the request names does not exist (an entity not in the mapping, a sync error, a Marketo person)."""


class AlreadyExists(Refused):
    """What the request adds is there already (a mapped pair), or its name is one the sync uses itself."""


class Busy(Refused):
    """What the request would change is in use right now (its Quick Sync is queued or running)."""


class NotPossible(Refused):
    """Understood, but not possible as the systems stand: the message says what to change there first."""
