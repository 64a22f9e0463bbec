"""``python -m shared.setup deadletters``: the same pipeline functions as the admin API, a table or JSON, and
exit codes that say done (0), refused or failed (1), or a command line it cannot act on (2)."""

from __future__ import annotations

import io
import json

import pytest

from local.broker import LocalBroker
from shared.pipeline.notification import Notification, Source, notification_message
from shared.queueing import OutgoingMessage, ServiceBusObserver
from shared.settings import Settings
from shared.setup.__main__ import main
from shared.setup.deadletters import service_bus_dead_letters
from shared.store.base import StateStore
from shared.store.model import ErrorStatus
from shared.store.sqlite import sqlite_store

SETTINGS = Settings.model_validate({})
Q = SETTINGS.changes_queue
LEAD = notification_message(Notification(source=Source.MARKETO_FEED, entity="lead", dynamics_id="l-1", dedupe_key="1"))
CONTACT = notification_message(
    Notification(source=Source.DATAVERSE_WEBHOOK, entity="contact", dynamics_id="c-1", dedupe_key="2")
)
JUNK = OutgoingMessage(body=b"<not a notification>", message_id="junk")


@pytest.fixture
def broker() -> LocalBroker:
    broker = LocalBroker(max_delivery_count=1)
    q = broker.queue(Q)
    q.send([LEAD, CONTACT, JUNK])
    q.abandon(q.receive(3, timeout=0.1), reason="RuntimeError: injected")
    return broker


@pytest.fixture
def store() -> StateStore:
    return sqlite_store(":memory:")


def run(broker: LocalBroker, store: StateStore, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["deadletters", *argv], settings=SETTINGS, dead_letters=broker, store=store, out=out)
    return code, out.getvalue()


def test_list_prints_a_table_of_the_dead_letters(broker: LocalBroker, store: StateStore) -> None:
    code, text = run(broker, store, "list")
    assert code == 0
    header, *rows = text.splitlines()
    assert header.split() == ["ID", "SEQ", "ENQUEUED", "DELIVERIES", "REASON", "ENTITY", "RECORD"]
    assert rows[0].split()[0] == LEAD.message_id
    assert "MaxDeliveryCountExceeded" in rows[0]
    assert rows[2].split()[-2:] == ["unreadable", "-"]
    assert "3 dead letter(s)" in text


def test_list_json_pages_like_the_admin_api(broker: LocalBroker, store: StateStore) -> None:
    code, text = run(broker, store, "list", "--json", "--limit", "2")
    page = json.loads(text)
    assert code == 0
    assert page["count"] == 2
    code, text = run(broker, store, "list", "--json", "--after", str(page["next_after"]))
    assert [i["id"] for i in json.loads(text)["items"]] == ["junk"]


def test_replay_by_id_queues_it_once_and_then_finds_it_gone(broker: LocalBroker, store: StateStore) -> None:
    code, text = run(broker, store, "replay", "--id", LEAD.message_id)
    assert code == 0, text
    assert "1 replayed" in text
    assert len(broker.queue(Q).peek()) == 1
    code, text = run(broker, store, "replay", "--id", LEAD.message_id)
    assert code == 1
    assert text.startswith("error: [not-found]")


def test_replay_of_an_unreadable_dead_letter_is_refused(broker: LocalBroker, store: StateStore) -> None:
    code, text = run(broker, store, "replay", "--id", "junk")
    assert code == 1
    assert "discard it" in text


def test_replay_all_of_an_entity_or_everything_readable(broker: LocalBroker, store: StateStore) -> None:
    code, text = run(broker, store, "replay", "--entity", "contact", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(text)["replayed"]] == [CONTACT.message_id]
    code, text = run(broker, store, "replay", "--all", "--json")
    answer = json.loads(text)
    assert code == 0
    assert [r["id"] for r in answer["replayed"]] == [LEAD.message_id]
    assert answer["skipped_unreadable"] == ["junk"]


def test_discard_removes_it_and_records_a_resolved_sync_error(broker: LocalBroker, store: StateStore) -> None:
    code, text = run(broker, store, "discard", "--id", "junk", "--json")
    assert code == 0
    record = store.get_error(json.loads(text)["sync_error"])
    assert record is not None
    assert record.status is ErrorStatus.RESOLVED
    assert [d.message_id for d in broker.dead_letters(Q)] == [LEAD.message_id, CONTACT.message_id]


@pytest.mark.parametrize(
    "argv",
    [
        ("replay",),
        ("replay", "--id", "x", "--all"),
        ("replay", "--id", "x", "--entity", "lead"),
        ("list", "--limit", "0"),
        ("list", "--after", "-1"),
    ],
)
def test_a_command_line_it_cannot_act_on_is_exit_code_2(
    broker: LocalBroker, store: StateStore, argv: tuple[str, ...]
) -> None:
    code, text = run(broker, store, *argv)
    assert code == 2
    assert text.startswith("error: ")


def test_in_azure_it_needs_the_namespace_and_builds_the_service_bus_adapter_offline() -> None:
    out = io.StringIO()
    assert main(["deadletters", "list"], settings=SETTINGS, out=out) == 1
    assert "ServiceBusConnection__fullyQualifiedNamespace" in out.getvalue()
    settings = Settings.model_validate({"ServiceBusConnection__fullyQualifiedNamespace": "sb-x.servicebus.windows.net"})
    assert isinstance(service_bus_dead_letters(settings), ServiceBusObserver)
