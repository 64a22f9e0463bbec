"""GET /api/mapping/{entity}/catalogue through the local host: every column, mapped or not, readable by the sync
user or not, of a type the sync converts or not; one metadata read per entity and minute of the product's clock."""

from __future__ import annotations

from typing import Any

import httpx

from local.stack import IN_PROCESS_HOST, LocalStack
from shared.pipeline.catalogue import CACHE_SECONDS
from tests.e2e.conftest import ManualClock
from tests.stacks import running_stack


def get(stack: LocalStack, path: str) -> httpx.Response:
    return stack.host.handle_http(httpx.Request("GET", f"{IN_PROCESS_HOST}/api/{path}"))


def by_column(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["column"]: c for c in body["columns"]}


def test_the_catalogue_of_contact(stack: LocalStack) -> None:
    answer = get(stack, "mapping/contact/catalogue")
    assert answer.status_code == 200
    body = answer.json()
    assert body["entity"] == "contact"
    columns = by_column(body)
    assert body["count"] == len(columns) > body["mapped"] > 0
    assert columns["emailaddress1"] | {} == {
        "column": "emailaddress1", "label": "Email", "type": "String", "sync_type": "text", "mapped": True,
        "marketo": "email", "state": "active", "readable": True, "writable": True, "secured": False,
        "valid_for_sync": True,
        "reason": None,
    }  # fmt: skip
    assert columns["address1_line2"]["mapped"] is False
    assert columns["address1_line2"]["marketo"] is None
    secured = columns["new_nationalid"]
    assert (secured["secured"], secured["readable"], secured["valid_for_sync"]) == (True, False, True)
    assert "field security profile" in secured["reason"]
    assert (columns["contactid"]["valid_for_sync"], columns["new_synctomkto"]["valid_for_sync"]) == (False, False)
    assert (columns["fullname"]["readable"], columns["fullname"]["writable"]) == (True, False)  # read-only column
    mapped = [c["mapped"] for c in body["columns"]]
    assert mapped == sorted(mapped, reverse=True)  # mapped columns first


def test_an_unsupported_type_says_why(stack: LocalStack) -> None:
    columns = by_column(get(stack, "mapping/lead/catalogue").json())
    unsupported = [c for c in columns.values() if not c["valid_for_sync"] and c["column"] != "leadid"]
    assert unsupported, "the lead table has columns the sync cannot convert"
    assert all(c["reason"] and c["sync_type"] is None for c in unsupported if c["column"] != "new_synctomkto")
    multi = [c for c in columns.values() if c["type"] == "Virtual"]
    assert multi
    assert all(c["sync_type"] == "multi_choice" for c in multi)


def test_an_unmapped_entity_is_a_404(stack: LocalStack) -> None:
    answer = get(stack, "mapping/bogus/catalogue")
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not-found", "message": "the entity is not in the sync mapping"}}


def test_one_metadata_read_a_minute_and_a_new_field_shows_at_once() -> None:
    reads: list[str] = []
    clock = ManualClock()

    def observe(request: httpx.Request) -> None:
        if "EntityDefinitions(LogicalName='contact')/Attributes" in request.url.path:
            reads.append(request.url.path)

    with running_stack(observe=observe, clock=clock) as stack:
        assert get(stack, "mapping/contact/catalogue").status_code == 200
        first = len(reads)
        assert first == 1
        assert get(stack, "mapping/contact/catalogue").status_code == 200
        assert len(reads) == first
        added = stack.host.handle_http(
            httpx.Request("POST", f"{IN_PROCESS_HOST}/api/mapping/contact/fields",
                          json={"dynamics": "address1_line2", "marketo": "address"})
        )  # fmt: skip
        assert added.status_code == 202, added.text
        reads.clear()
        column = by_column(get(stack, "mapping/contact/catalogue").json())["address1_line2"]
        assert (column["mapped"], column["marketo"], column["state"]) == (True, "address", "awaiting_quick_sync")
        assert reads == []
        clock.advance(CACHE_SECONDS + 1)
        assert get(stack, "mapping/contact/catalogue").status_code == 200
        assert len(reads) == 1
