"""The dead-letter admin endpoints: keyed like the other admin routes, 404 JSON for an id that is not there,
400 for a bad page, and a discard that answers with the sync error recording it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.stack import IN_PROCESS_HOST, LocalStack
from shared.pipeline.notification import Notification, Source, notification_message
from tests.stacks import PROMPT_BATCHING, running_stack

KEY = "test-functions-key"


@pytest.fixture(scope="module")
def keyed() -> Iterator[LocalStack]:
    with running_stack(retry_delay=0.01, batching=PROMPT_BATCHING, overrides={"LOCAL_FUNCTIONS_KEY": KEY}) as running:
        yield running


def call(stack: LocalStack, method: str, path: str, *, key: str | None = KEY, **kw: Any) -> httpx.Response:
    headers = {"x-functions-key": key} if key else {}
    return stack.host.handle_http(httpx.Request(method, f"{IN_PROCESS_HOST}/api/{path}", headers=headers, **kw))


class Broken:
    def run(self, notes: Any, carry: Any = None) -> Any:
        raise RuntimeError("injected failure")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "deadletters"),
        ("POST", "deadletters/replay"),
        ("POST", "deadletters/some-id/replay"),
        ("POST", "deadletters/some-id/discard"),
    ],
)
def test_every_dead_letter_route_needs_the_functions_key(keyed: LocalStack, method: str, path: str) -> None:
    response = call(keyed, method, path, key=None)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("action", ["replay", "discard"])
def test_an_unknown_dead_letter_is_a_404_in_json(keyed: LocalStack, action: str) -> None:
    response = call(keyed, "POST", f"deadletters/no-such-id/{action}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not-found"


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "x"}, {"limit": "1001"}, {"limit": "²"}, {"after": "-1"}, {"after": "9" * 5000}],
)
def test_a_bad_page_is_a_400_that_names_the_parameter(keyed: LocalStack, params: dict[str, str]) -> None:
    response = call(keyed, "GET", "deadletters", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == next(iter(params))


def test_the_listing_is_a_page_with_count_and_items(keyed: LocalStack) -> None:
    body = call(keyed, "GET", "deadletters", params={"limit": "5"}).json()
    assert set(body) == {"queue", "count", "items", "next_after"}
    assert body["queue"] == keyed.settings.changes_queue


def test_a_discarded_dead_letter_answers_with_the_sync_error_that_records_it(
    keyed: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = keyed.broker.queue(keyed.settings.changes_queue)
    note = Notification(source=Source.DATAVERSE_WEBHOOK, entity="lead", dynamics_id="l-404", dedupe_key="d1")
    message = notification_message(note)
    monkeypatch.setattr(keyed.services, "reconciler", Broken)
    queue.send([message])
    deadline = time.monotonic() + 15
    while not queue.dead_letters and time.monotonic() < deadline:
        time.sleep(0.02)
    monkeypatch.undo()
    assert [d.message.message_id for d in queue.dead_letters] == [message.message_id]
    response = call(keyed, "POST", f"deadletters/{message.message_id}/discard")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], answer["id"]) == ("discarded", message.message_id)
    record = keyed.services.store.get_error(answer["sync_error"])
    assert record is not None
    assert record.record_id == "l-404"
    assert queue.dead_letters == []
    assert queue.idle()
