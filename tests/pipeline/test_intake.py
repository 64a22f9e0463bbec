"""Intake: what arrives becomes a notification, or is ignored with a reason, or is refused with one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.core.mapping import SyncMapping, load_mapping
from shared.dataverse.context import parse_context
from shared.errors import InvalidRequest
from shared.pipeline.intake import Ignored, from_dataverse, from_marketo_webhook
from shared.pipeline.notification import (
    Kind,
    Notification,
    NotificationError,
    Source,
    looks_like_dataverse_context,
    parse_notification,
)

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = json.loads((ROOT / "tests" / "fixtures" / "dataverse" / "webhook_update_contact.json").read_text())
SYNC_USER = "99999999-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def mapping() -> SyncMapping:
    return load_mapping((ROOT / "config" / "mapping.json").read_text())


def _context(**changes: Any) -> dict[str, Any]:
    return {**CONTEXT, **changes}


def test_a_recorded_update_context_becomes_a_notification_for_that_record(mapping: SyncMapping) -> None:
    note = from_dataverse(parse_context(CONTEXT), mapping, sync_user_id=SYNC_USER, source=Source.DATAVERSE_WEBHOOK)
    assert isinstance(note, Notification)
    assert (note.entity, note.dynamics_id, note.kind) == (
        "contact",
        "6d81597f-0f9f-e711-8122-000d3aa2331c",
        Kind.UPSERT,
    )
    assert note.correlation_id == CONTEXT["CorrelationId"]
    assert note.dedupe_key == CONTEXT["OperationId"]


def test_a_synchronous_steps_empty_operation_id_does_not_make_every_change_of_a_record_one_message(
    mapping: SyncMapping,
) -> None:
    """A synchronous step has no system job: its OperationId is the empty GUID, the same for every change."""
    empty = "00000000-0000-0000-0000-000000000000"
    first = from_dataverse(
        parse_context(_context(OperationId=empty)), mapping, sync_user_id=SYNC_USER, source=Source.DATAVERSE_WEBHOOK
    )
    later = from_dataverse(
        parse_context(_context(OperationId=empty, CorrelationId="1f7b8e1a-3c2d-4e5f-8a9b-0c1d2e3f4a5b")),
        mapping,
        sync_user_id=SYNC_USER,
        source=Source.DATAVERSE_WEBHOOK,
    )
    assert isinstance(first, Notification)
    assert isinstance(later, Notification)
    assert first.dedupe_key == CONTEXT["CorrelationId"]
    assert first.message_id != later.message_id


def test_a_delete_becomes_a_delete_notification(mapping: SyncMapping) -> None:
    ref = {"key": "Target", "value": {"Id": CONTEXT["PrimaryEntityId"], "LogicalName": "contact", "Name": None}}
    ctx = _context(MessageName="Delete", InputParameters=[ref], PostEntityImages=[])
    note = from_dataverse(parse_context(ctx), mapping, sync_user_id=None, source=Source.DATAVERSE_WEBHOOK)
    assert isinstance(note, Notification)
    assert note.kind is Kind.DELETE


def test_the_syncs_own_change_is_not_echoed(mapping: SyncMapping) -> None:
    ctx = _context(InitiatingUserId=SYNC_USER.upper())
    outcome = from_dataverse(parse_context(ctx), mapping, sync_user_id=SYNC_USER, source=Source.DATAVERSE_WEBHOOK)
    assert isinstance(outcome, Ignored)
    assert "sync's own application user" in outcome.reason


def test_an_entity_outside_the_mapping_is_ignored_with_the_reason(mapping: SyncMapping) -> None:
    ctx = _context(PrimaryEntityName="campaign")
    outcome = from_dataverse(parse_context(ctx), mapping, sync_user_id=None, source=Source.DATAVERSE_WEBHOOK)
    assert outcome == Ignored("entity 'campaign' is not in the sync mapping")


def test_a_message_that_changes_no_data_is_ignored(mapping: SyncMapping) -> None:
    ctx = _context(MessageName="Retrieve")
    outcome = from_dataverse(parse_context(ctx), mapping, sync_user_id=None, source=Source.DATAVERSE_WEBHOOK)
    assert isinstance(outcome, Ignored)


def test_a_size_exceeded_context_still_names_the_record(mapping: SyncMapping) -> None:
    ctx = {k: v for k, v in CONTEXT.items() if k not in ("InputParameters", "PreEntityImages", "PostEntityImages")}
    context = parse_context(ctx, size_exceeded=True)
    note = from_dataverse(context, mapping, sync_user_id=None, source=Source.DATAVERSE_WEBHOOK)
    assert isinstance(note, Notification)
    assert note.dynamics_id == CONTEXT["PrimaryEntityId"]


@pytest.mark.parametrize("lead_id", [1001, "1001", " 1001 "])
def test_a_marketo_webhook_names_the_person(lead_id: object) -> None:
    note = from_marketo_webhook({"leadId": lead_id, "email": "ada@example.com"})
    assert (note.marketo_id, note.source) == ("1001", Source.MARKETO_WEBHOOK)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([1, 2], "JSON object"),
        ({"email": "x"}, "'leadId' is required"),
        ({"leadId": "{{lead.Id}}"}, "must be a Marketo lead id"),
    ],
)
def test_a_bad_marketo_webhook_is_refused_with_the_reason(payload: object, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem) as refused:
        from_marketo_webhook(payload)
    assert refused.value.code == "bad-payload"


def test_a_bad_lead_id_is_named_not_repeated() -> None:
    with pytest.raises(InvalidRequest) as refused:
        from_marketo_webhook({"leadId": "<script>sneaky</script>"})
    assert refused.value.field == "leadId"
    assert "sneaky" not in str(refused.value)


def test_two_edits_of_a_lead_within_one_second_are_two_messages_and_a_resent_copy_is_one() -> None:
    """A date token has whole seconds: the changed values tell two edits apart, so duplicate detection drops
    only a copy of the same call."""

    def call(title: str) -> dict[str, object]:
        return {
            "leadId": 7,
            "changedAt": "2026-12-02 10:15:00",
            "changes": [{"field": "title", "newValue": title, "oldValue": "Engineer"}],
        }

    first, second = from_marketo_webhook(call("CTO")), from_marketo_webhook(call("CEO"))
    assert first.message_id != second.message_id
    assert from_marketo_webhook(call("CTO")).message_id == first.message_id
    unnamed = {"leadId": 7, "changedAt": "2026-12-02 10:15:00"}
    assert from_marketo_webhook(unnamed).message_id == from_marketo_webhook(dict(unnamed)).message_id


def test_notifications_round_trip_through_the_queue_body() -> None:
    note = Notification(source=Source.DATAVERSE_CATCHUP, entity="lead", dynamics_id="abc", dedupe_key="v1")
    again = parse_notification(note.to_body())
    assert again == note
    assert again.message_id == note.message_id
    assert note.model_copy(update={"attempt": 1}).message_id != note.message_id


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"source": "dataverse_webhook"}', "names a Dynamics record"),
        (b'{"source": "carrier_pigeon", "marketo_id": "1"}', "source"),
    ],
)
def test_a_message_that_is_not_a_notification_is_refused_with_the_reason(body: bytes, problem: str) -> None:
    with pytest.raises(NotificationError, match=problem):
        parse_notification(body)


def test_a_dataverse_context_is_recognised_on_the_queue() -> None:
    assert looks_like_dataverse_context(CONTEXT)
    assert not looks_like_dataverse_context({"source": "marketo_feed", "marketo_id": "1"})
