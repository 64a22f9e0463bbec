"""Dead letters as the admin sees them: what each carries (or why it cannot be read, without its values),
replayed under a fresh id exactly once, refused when it cannot succeed or another call holds it, discarded
with a record in the sync errors; and the summary the status view shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.broker import LocalBroker
from shared.errors import Busy, NotFound, NotPossible
from shared.pipeline import deadletters
from shared.pipeline.notification import Notification, Source, notification_message, parse_notification
from shared.queueing import OutgoingMessage
from shared.store.model import ErrorStatus
from shared.store.sqlite import sqlite_store

Q = "sync-changes"
ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-Sup3rSecretValue"


def note(entity: str, rid: str) -> Notification:
    return Notification(source=Source.DATAVERSE_WEBHOOK, entity=entity, dynamics_id=rid, dedupe_key=rid)


def dead_letter(broker: LocalBroker, *messages: OutgoingMessage) -> None:
    q = broker.queue(Q)
    q.send(messages)
    for _ in range(q.max_delivery_count):
        q.abandon(q.receive(len(messages), timeout=0.1), reason="RuntimeError: injected")


@pytest.fixture
def broker() -> LocalBroker:
    return LocalBroker(max_delivery_count=1)


def junk(mid: str, body: bytes) -> OutgoingMessage:
    return OutgoingMessage(body=body, message_id=mid)


def test_a_listed_notification_shows_its_entity_record_source_reason_and_delivery_count(broker: LocalBroker) -> None:
    dead_letter(broker, notification_message(note("lead", "11111111-1111-1111-1111-111111111111")))
    page = deadletters.list_dead_letters(broker, Q)
    assert (page["count"], page["next_after"]) == (1, None)
    (item,) = page["items"]
    assert item["notification"] == {
        "readable": True,
        "entity": "lead",
        "record_id": "11111111-1111-1111-1111-111111111111",
        "marketo_id": None,
        "source": "dataverse_webhook",
    }
    assert (item["reason"], item["delivery_count"]) == ("MaxDeliveryCountExceeded", 1)
    assert item["enqueued_at"]
    assert item["sequence_number"] == 1


def test_a_dataverse_context_posted_to_the_queue_is_read_as_one() -> None:
    body = (ROOT / "tests" / "fixtures" / "dataverse" / "webhook_update_contact.json").read_bytes()
    what = deadletters.carried(body)
    context = json.loads(body)
    assert (what.readable, what.entity, what.source) == (True, "contact", "dataverse_queue")
    assert what.record_id == context["PrimaryEntityId"]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"password": SECRET, "token": SECRET}).encode(),
        f"client_secret={SECRET}&grant_type=client_credentials".encode(),
        SECRET.encode() + b"\xff\xfe",
        json.dumps([SECRET]).encode(),
    ],
)
def test_an_unreadable_dead_letter_is_shown_with_the_parsers_reason_and_a_preview_without_its_values(
    broker: LocalBroker, body: bytes
) -> None:
    dead_letter(broker, junk("bad", body))
    (item,) = deadletters.list_dead_letters(broker, Q)["items"]
    shown = item["notification"]
    assert shown["readable"] is False
    assert shown["problem"]
    assert shown["preview"]
    assert "hunter2" not in json.dumps(item)
    assert "Sup3r" not in json.dumps(item)


def test_listing_pages_with_next_after(broker: LocalBroker) -> None:
    dead_letter(broker, *(notification_message(note("lead", f"{n}" * 8)) for n in range(1, 4)))
    first = deadletters.list_dead_letters(broker, Q, limit=2)
    assert first["count"] == 2
    assert first["next_after"] is not None
    rest = deadletters.list_dead_letters(broker, Q, after=first["next_after"], limit=2)
    assert (rest["count"], rest["next_after"]) == (1, None)


def test_a_replay_sends_the_same_notification_under_a_fresh_id_once(broker: LocalBroker) -> None:
    original = notification_message(note("lead", "abc"))
    dead_letter(broker, original)
    done = deadletters.replay(broker, Q, original.message_id)
    (item,) = done.replayed
    assert item["id"] == original.message_id
    assert item["new_message_id"] != original.message_id
    (queued,) = broker.queue(Q).peek()
    assert queued.message.message_id == item["new_message_id"]
    assert parse_notification(queued.message.body) == parse_notification(original.body)
    assert queued.message.application_properties["replayed_from"] == original.message_id
    with pytest.raises(NotFound):
        deadletters.replay(broker, Q, original.message_id)
    assert len(broker.queue(Q).peek()) == 1


def test_a_repeated_replay_after_a_lost_lock_is_dropped_by_duplicate_detection(broker: LocalBroker) -> None:
    dead_letter(broker, notification_message(note("lead", "abc")))
    (dead,) = broker.dead_letters(Q)
    broker.queue(Q).send([deadletters.replay_copy(dead), deadletters.replay_copy(dead)])
    assert broker.queue(Q).duplicates_dropped == 1


def test_a_dead_letter_another_call_holds_is_busy_not_replayed(broker: LocalBroker) -> None:
    original = notification_message(note("lead", "abc"))
    dead_letter(broker, original)
    (dead,) = broker.dead_letters(Q)
    broker.queue(Q).lock_dead_letters({dead.sequence_number})
    with pytest.raises(Busy):
        deadletters.replay(broker, Q, original.message_id)
    with pytest.raises(Busy):
        deadletters.discard(broker, sqlite_store(":memory:"), Q, original.message_id)
    assert broker.queue(Q).peek() == []


def test_an_unreadable_dead_letter_cannot_be_replayed_only_discarded(broker: LocalBroker) -> None:
    dead_letter(broker, junk("bad", b"not json"))
    with pytest.raises(NotPossible):
        deadletters.replay(broker, Q, "bad")
    store = sqlite_store(":memory:")
    done = deadletters.discard(broker, store, Q, "bad")
    assert broker.dead_letters(Q) == []
    assert broker.queue(Q).peek() == []
    record = store.get_error(done.sync_error)
    assert record is not None
    assert (record.code, record.status, record.operation) == ("dead-letter-discarded", ErrorStatus.RESOLVED, "discard")
    assert "MaxDeliveryCountExceeded" in record.message


def test_a_discarded_notification_is_recorded_against_its_record(broker: LocalBroker) -> None:
    original = notification_message(note("contact", "c-1"))
    dead_letter(broker, original)
    store = sqlite_store(":memory:")
    done = deadletters.discard(broker, store, Q, original.message_id)
    record = store.get_error(done.sync_error)
    assert record is not None
    assert (record.entity, record.record_id) == ("contact", "c-1")
    assert store.list_errors(status=ErrorStatus.OPEN) == []
    with pytest.raises(NotFound):
        deadletters.discard(broker, store, Q, original.message_id)


def test_replay_all_takes_every_readable_one_or_one_entitys_and_skips_the_unreadable(broker: LocalBroker) -> None:
    lead, contact = notification_message(note("lead", "l-1")), notification_message(note("contact", "c-1"))
    dead_letter(broker, lead, contact, junk("bad", b"\x00"))
    only_contacts = deadletters.replay_all(broker, Q, entity="contact")
    assert [r["id"] for r in only_contacts.replayed] == [contact.message_id]
    assert only_contacts.skipped_unreadable == []
    rest = deadletters.replay_all(broker, Q)
    assert [r["id"] for r in rest.replayed] == [lead.message_id]
    assert rest.skipped_unreadable == ["bad"]
    assert [d.message_id for d in broker.dead_letters(Q)] == ["bad"]
    assert len(broker.queue(Q).peek()) == 2


def test_the_summary_counts_dead_letters_and_names_the_oldest_ones_reason(broker: LocalBroker) -> None:
    assert deadletters.summary(broker, Q) == {"count": 0, "oldest": None}
    first = notification_message(note("lead", "l-1"))
    dead_letter(broker, first, notification_message(note("lead", "l-2")))
    found = deadletters.summary(broker, Q)
    assert found is not None
    assert found["count"] == 2
    assert found["oldest"]["id"] == first.message_id
    assert found["oldest"]["reason"] == "MaxDeliveryCountExceeded"
    assert deadletters.summary(object(), Q) is None  # a host without dead-letter access
