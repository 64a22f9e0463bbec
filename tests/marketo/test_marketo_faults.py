from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shared.errors import MissingField, QuotaExhausted, RetryLater, SkipRecord, StopSync, Throttled
from shared.marketo.faults import Action, classify, next_quota_reset, to_error
from shared.marketo.models import RecordOutcome, RecordStatus, SkipCode
from tests.marketo_harness import Harness

FIXTURES = Path(__file__).parents[1] / "fixtures" / "marketo"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def envelope(code: str) -> httpx.Response:
    return httpx.Response(200, json={"requestId": "1#2", "success": False, "errors": [{"code": code, "message": "m"}]})


@pytest.mark.parametrize(
    ("code", "action"),
    [
        ("601", Action.REAUTH),
        ("602", Action.REAUTH),
        ("604", Action.RETRY),
        ("606", Action.THROTTLED),
        ("607", Action.QUOTA),
        ("608", Action.RETRY),
        ("611", Action.RETRY),
        ("615", Action.THROTTLED),
        ("713", Action.RETRY),
        ("1016", Action.RETRY),
        ("603", Action.STOP),
        ("610", Action.STOP),
        ("609", Action.STOP),
        ("702", Action.SKIP),
        ("1003", Action.SKIP),
    ],
)
def test_error_codes_on_http_200_map_to_one_action(code: str, action: Action) -> None:
    verdict = classify(envelope(code))
    assert verdict.action is action
    assert verdict.code == code


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (502, Action.RETRY),
        (503, Action.RETRY),
        (500, Action.RETRY),
        (413, Action.SKIP),
        (414, Action.SKIP),
        (401, Action.STOP),
        (404, Action.STOP),
        (429, Action.THROTTLED),
    ],
)
def test_http_statuses(status: int, action: Action) -> None:
    assert classify(httpx.Response(status, text="<html/>")).action is action


def test_success_true_is_ok_and_non_json_is_retried() -> None:
    assert classify(httpx.Response(200, json={"success": True, "result": []})).ok
    assert classify(httpx.Response(200, text="<html>maintenance</html>")).action is Action.RETRY


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        # Winter (CST, UTC-6): 23:30 UTC on 10 Jan is 17:30 in Chicago; the reset is 11 Jan 06:00 UTC.
        (datetime(2026, 1, 10, 23, 30, tzinfo=UTC), datetime(2026, 1, 11, 6, 0, tzinfo=UTC)),
        # 03:00 UTC on 11 Jan is still 10 Jan (21:00) in Chicago.
        (datetime(2026, 1, 11, 3, 0, tzinfo=UTC), datetime(2026, 1, 11, 6, 0, tzinfo=UTC)),
        # Summer (CDT, UTC-5).
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), datetime(2026, 7, 2, 5, 0, tzinfo=UTC)),
    ],
)
def test_quota_resets_at_the_next_central_midnight(now: datetime, reset: datetime) -> None:
    assert next_quota_reset(now) == reset


def test_verdicts_become_the_product_error_tree() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    quota = to_error(classify(envelope("607")), what="x", now=now)
    assert isinstance(quota, QuotaExhausted)
    assert quota.resets_at == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert isinstance(to_error(classify(envelope("606")), what="x", now=now), Throttled)
    assert isinstance(to_error(classify(envelope("611")), what="x", now=now), RetryLater)
    assert isinstance(to_error(classify(envelope("1003")), what="x", now=now), SkipRecord)
    assert isinstance(to_error(classify(envelope("603")), what="x", now=now), StopSync)


def test_record_level_results_are_values() -> None:
    skipped = RecordOutcome.from_result(
        4, {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]}
    )
    assert skipped.status is RecordStatus.SKIPPED
    assert not skipped.ok
    assert skipped.reasons[0].known is SkipCode.NOT_FOUND
    created = RecordOutcome.from_result(0, {"seq": 0, "status": "created", "marketoGUID": "g-1"}, id_key="marketoGUID")
    assert created.ok
    assert created.id == "g-1"


def test_a_field_marketo_does_not_have_is_a_missing_field_naming_it() -> None:
    recorded = json.loads((FIXTURES / "error_field_not_found.json").read_text())["response"]
    verdict = classify(httpx.Response(200, json=recorded))
    assert (verdict.action, verdict.code, verdict.field) == (Action.MISSING_FIELD, "1006", "mobilePhone")
    error = to_error(verdict, what="get leads", now=NOW)
    assert isinstance(error, MissingField)
    assert error.field == "mobilePhone"
    assert isinstance(error, SkipRecord)  # the rest of the batch goes on


def test_a_1006_that_names_no_field_stays_a_plain_skip() -> None:
    verdict = classify(envelope("1006"))
    assert verdict.action is Action.SKIP
    error = to_error(verdict, what="get leads", now=NOW)
    assert isinstance(error, SkipRecord)
    assert not isinstance(error, MissingField)


def test_reading_a_field_deleted_in_marketo_raises_missing_field(h: Harness) -> None:
    h.sim.add_lead(email="ada@example.com", mobilePhone="+44 7700 900123")
    del h.sim.leads.fields["mobilePhone"]
    with pytest.raises(MissingField) as gone:
        h.client.get_leads("email", ["ada@example.com"], fields=["email", "mobilePhone"])
    assert gone.value.field == "mobilePhone"
    assert h.sim.calls["GET /rest/v1/leads.json"] == 1  # refused at once: asking again cannot help
