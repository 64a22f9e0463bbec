"""What a flow-step body may hold, and what makes two deliveries the same run (shared/pipeline/flowsteps/request.py)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import InvalidRequest, NotFound
from shared.pipeline.flowsteps.request import CreateTaskBody, Step, parse_body, request_key, step_named


def test_the_same_body_is_the_same_run_and_a_request_id_tells_runs_apart() -> None:
    body = {"personId": 7, "subject": "Call", "priority": "high"}
    same = parse_body(Step.CREATE_TASK, {"priority": "high", "subject": "Call", "personId": "7"})
    assert request_key(Step.CREATE_TASK, parse_body(Step.CREATE_TASK, body)) == request_key(Step.CREATE_TASK, same)
    one = parse_body(Step.CREATE_TASK, {**body, "requestId": "2026-12-01 10:00"})
    two = parse_body(Step.CREATE_TASK, {**body, "requestId": "2026-12-01 10:05"})
    assert request_key(Step.CREATE_TASK, one) != request_key(Step.CREATE_TASK, two)
    other_step = parse_body(Step.SYNC_PERSON, {"personId": 7, "requestId": "2026-12-01 10:00"})
    assert request_key(Step.SYNC_PERSON, other_step) != request_key(Step.CREATE_TASK, one)


@pytest.mark.parametrize(
    ("step", "body", "field"),
    [
        (Step.SYNC_PERSON, {}, "personId"),
        (Step.SYNC_PERSON, {"personId": 0}, "personId"),
        (Step.SYNC_PERSON, {"personId": 2**31}, "personId"),
        (Step.SYNC_PERSON, {"personId": 1, "ownr": {}}, "ownr"),
        (Step.SYNC_PERSON, {"personId": 1, "owner": {"email": "a@b.c", "username": "u"}}, "owner"),
        (Step.SYNC_PERSON, {"personId": 1, "owner": {}}, "owner"),
        (Step.CHANGE_OWNER, {"personId": 1, "owner": {"id": "not-a-guid"}}, "owner.id"),
        (Step.CHANGE_OWNER, {"personId": 1}, "owner"),
        (Step.CREATE_TASK, {"personId": 1}, "subject"),
        (Step.CREATE_TASK, {"personId": 1, "subject": "x" * 201}, "subject"),
        (Step.CREATE_TASK, {"personId": 1, "subject": "x", "dueDate": "next tuesday"}, "dueDate"),
        (Step.CREATE_TASK, {"personId": 1, "subject": "x", "priority": 2}, "priority"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(step: Step, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_body(step, body)
    assert refused.value.field == field
    assert "not-a-guid" not in refused.value.message


def test_a_date_without_a_time_zone_is_utc_and_a_body_must_be_an_object() -> None:
    body = parse_body(Step.CREATE_TASK, {"personId": 1, "subject": "x", "dueDate": "2026-12-03"})
    assert isinstance(body, CreateTaskBody)
    assert body.dueDate is not None
    assert body.dueDate.isoformat() == "2026-12-03T00:00:00+00:00"
    with pytest.raises(InvalidRequest):
        parse_body(Step.SYNC_PERSON, [1])
    with pytest.raises(NotFound):
        step_named("convert-person")
