"""What a Marketo flow-step webhook may send, checked as a value before anything is stored.

Marketo fills the template's tokens at send time; with "Request Token Encoding: JSON" a string token arrives as a
JSON string (quotes included) and ``{{lead.Id}}`` as a number, so the template writes tokens bare:
``{"personId": {{lead.Id}}, "owner": {"email": {{lead.Lead Owner Email Address}}}}``. A body that does not fit
is refused with the first bad field named (:class:`InvalidRequest`), never echoing a value.

The idempotency key is the step, the person and the caller's ``requestId`` (a token or a constant chosen in the
template); without one, the request's canonical content stands in, so the same flow-step run delivered twice
(Marketo retrying, a double click) does one thing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import InvalidRequest, NotFound

MAX_MARKETO_ID = 2**31 - 1
PRIORITIES = {"low": 0, "normal": 1, "high": 2}
"""The task's ``prioritycode`` options (Dataverse task table)."""


class Step(StrEnum):
    SYNC_PERSON = "sync-person"
    CHANGE_OWNER = "change-owner"
    CREATE_TASK = "create-task"


def step_named(text: str) -> Step:
    try:
        return Step(text)
    except ValueError:
        steps = ", ".join(s.value for s in Step)
        raise NotFound(f"no such flow step (the steps are {steps})", code="unknown-step") from None


class Owner(BaseModel):
    """A Dynamics user, named by exactly one of: ``id`` (systemuserid), ``email`` (its primary e-mail,
    ``internalemailaddress``), ``username`` (``domainname``), or ``salesOwner: true`` (the Marketo person's sales
    owner: its ``externalSalesPersonId``, which names the Dynamics user of the sales person this sync keeps)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(default=None, pattern=r"^\{?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?$")
    email: str | None = Field(default=None, min_length=3, max_length=100)
    username: str | None = Field(default=None, min_length=1, max_length=1024)
    salesOwner: Literal[True] | None = None

    @model_validator(mode="after")
    def _one(self) -> Owner:
        given = [k for k in ("id", "email", "username", "salesOwner") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("name the owner by exactly one of id, email, username or salesOwner")
        return self

    def view(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    personId: int = Field(ge=1, le=MAX_MARKETO_ID)
    requestId: str | None = Field(default=None, max_length=200)

    @field_validator("requestId", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class SyncPersonBody(_Body):
    owner: Owner | None = None
    reassign: bool = False  # a matched or linked record gets the owner too (default: only a created lead does)


class ChangeOwnerBody(_Body):
    owner: Owner


class CreateTaskBody(_Body):
    subject: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    dueDate: datetime | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    owner: Owner | None = None  # default: the linked record's owner

    @field_validator("dueDate", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("a date (2026-12-01) or date and time (2026-12-01T15:00:00Z)") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return value


BODIES: dict[Step, type[_Body]] = {
    Step.SYNC_PERSON: SyncPersonBody,
    Step.CHANGE_OWNER: ChangeOwnerBody,
    Step.CREATE_TASK: CreateTaskBody,
}


def parse_body(step: Step, payload: Any) -> _Body:
    """The body as the step's model, or :class:`InvalidRequest` naming the first bad field (never its value)."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the body is not a JSON object", code="bad-body", field="body")
    try:
        return BODIES[step].model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        what = "is not allowed" if first["type"] == "extra_forbidden" else f"is not valid: {first['msg']}"
        if first["type"] == "missing":
            what = "is required"
        raise InvalidRequest(f"field '{where}' {what}", code="bad-field", field=where) from None


def request_key(step: Step, body: _Body) -> str:
    """What makes two deliveries the same flow-step run (see the module)."""
    token = body.requestId
    if token is None:
        canonical = json.dumps(body.model_dump(mode="json", exclude={"requestId"}), sort_keys=True)
        token = "body:" + hashlib.sha256(canonical.encode()).hexdigest()
    basis = f"{step.value}|{body.personId}|{token}"
    return hashlib.sha256(basis.encode()).hexdigest()[:40]


def stored_request(body: _Body) -> dict[str, Any]:
    """The request as it is kept with its run (JSON)."""
    return body.model_dump(mode="json", exclude_none=True)


def load_request(step: Step, doc: dict[str, Any]) -> _Body:
    return BODIES[step].model_validate(doc)
