"""The one mapping from the error tree to HTTP answers: every error class, its status, code and Retry-After."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import azure.functions as func
import pytest

from functions.http import ANSWERS, answers_errors, error_answer
from shared import errors
from shared.errors import (
    AlreadyExists,
    Busy,
    Conflict,
    Forbidden,
    InvalidRequest,
    MissingColumn,
    MissingField,
    NotFound,
    NotPossible,
    QuotaExhausted,
    Refused,
    RetryLater,
    SkipRecord,
    StopSync,
    SyncError,
    Throttled,
    TooLarge,
    Unauthenticated,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def body(response: func.HttpResponse) -> dict[str, dict[str, str]]:
    return json.loads(response.get_body())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (InvalidRequest("m"), 400, "bad-request", None),
        (TooLarge("m"), 413, "too-large", None),
        (Unauthenticated("m"), 401, "unauthorized", None),
        (Forbidden("m"), 403, "forbidden", None),
        (NotFound("m"), 404, "not-found", None),
        (AlreadyExists("m"), 409, "already-exists", None),
        (Busy("m"), 409, "busy", None),
        (NotPossible("m"), 422, "not-possible", None),
        (Refused("m"), 422, "refused", None),
        (Conflict("m"), 409, "conflict", None),
        (SkipRecord("m"), 422, "record-refused", None),
        (MissingColumn("m", table="lead", column="x"), 422, "record-refused", None),
        (MissingField("m", field="x"), 422, "record-refused", None),
        (RetryLater("m"), 503, "unavailable", "30"),
        (RetryLater("m", retry_after=4.2), 503, "unavailable", "5"),
        (Throttled("m", retry_after=0.01), 503, "throttled", "1"),
        (Throttled("m"), 503, "throttled", "30"),
        (StopSync("m"), 503, "stopped", None),
        (QuotaExhausted("m", resets_at=NOW + timedelta(seconds=90)), 503, "quota-exhausted", "90"),
        (QuotaExhausted("m"), 503, "quota-exhausted", None),
    ],
)
def test_each_error_class_has_its_status_code_and_retry_after(
    error: SyncError, status: int, code: str, retry_after: str | None
) -> None:
    response = error_answer(error, now=NOW)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert body(response) == {"error": {"code": code, "message": "m"}}
    assert response.headers.get("Retry-After") == retry_after


def test_an_errors_own_code_wins_over_its_class_default() -> None:
    response = error_answer(NotPossible("the column does not exist", code="column-not-found"))
    assert (response.status_code, body(response)["error"]["code"]) == (422, "column-not-found")


def test_an_invalid_request_names_the_field() -> None:
    response = error_answer(InvalidRequest("limit must be a whole number", field="limit"))
    assert body(response) == {
        "error": {"code": "bad-request", "message": "limit must be a whole number", "field": "limit"}
    }


def _tree(root: type[SyncError]) -> list[type[SyncError]]:
    return [root, *(c for sub in root.__subclasses__() for c in _tree(sub))]


def test_bad_input_is_never_answered_with_a_5xx() -> None:
    refusals = _tree(Refused)
    assert len(refusals) >= 9
    for cls in refusals:
        assert 400 <= error_answer(cls("m")).status_code < 500, cls.__name__


def test_no_error_the_product_defines_falls_through_to_the_internal_error_answer() -> None:
    tree = set(_tree(SyncError))  # the tree in shared.errors and every adapter's subclass of it
    assert {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, SyncError)} <= tree
    for cls in tree - {SyncError}:
        assert any(base in ANSWERS for base in cls.__mro__ if base is not SyncError), cls.__name__


@pytest.mark.parametrize("unexpected", [RuntimeError("db password=hunter2"), SyncError("bare root: hunter2")])
def test_an_unexpected_failure_is_a_500_that_names_only_its_kind(unexpected: Exception) -> None:
    response = error_answer(unexpected)
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert body(response)["error"]["code"] == "internal"
    assert "hunter2" not in response.get_body().decode()


def test_a_handler_answers_what_it_raises_and_passes_what_it_returns() -> None:
    @answers_errors
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        if req.params.get("fail"):
            raise NotFound("no such sync error")
        return func.HttpResponse("fine", status_code=200)

    assert handler(func.HttpRequest("GET", "/api/x", body=b"")).get_body() == b"fine"
    refused = handler(func.HttpRequest("GET", "/api/x", body=b"", params={"fail": "1"}))
    assert (refused.status_code, body(refused)["error"]["code"]) == (404, "not-found")
    assert handler.__name__ == "handler"  # the Functions host names the function after it
