"""The sync error lifecycle through the local host, as an admin meets it: a bad value typed in Marketo is one open
error towards Dynamics (its repeats counted on it), named and linked, filtered, exported, and resolved by itself
once the value is fixed in Marketo; ignore, resolve and retry by hand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from shared.pipeline.sync_errors import unreadable_message
from tests.e2e.conftest import World

ADA = {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}


def _errors(world: World, **params: str) -> list[dict[str, Any]]:
    answer = world.call("GET", "errors", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == len(body["errors"])
    errors: list[dict[str, Any]] = body["errors"]
    return errors


def _bad_rating(world: World) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A synced lead whose person gets a rating Dynamics has no option for: the lead, the person, the error."""
    lead_id = world.create("lead", **ADA)
    world.settle()
    person = world.person(email="ada@example.com")
    world.mk.change_lead(person["id"], leadRating="Tepid")
    world.settle()
    (error,) = _errors(world)
    return lead_id, person, error


def test_a_bad_marketo_value_is_one_open_error_counted_on_repeats_and_resolved_once_fixed(world: World) -> None:
    lead_id, person, error = _bad_rating(world)
    assert (error["record_id"], error["field"], error["code"]) == (lead_id, "leadqualitycode", "conversion")
    assert (error["direction"], error["status"], error["count"]) == ("marketo_to_dynamics", "open", 1)
    assert error["label"] == "Ada Lovelace <ada@example.com>"
    assert error["marketo_id"] == str(person["id"])
    dataverse = world.stack.settings.dataverse_url.rstrip("/")
    assert error["dynamics_url"] == f"{dataverse}/main.aspx?etn=lead&id={lead_id}&pagetype=entityrecord"
    assert error["marketo_url"] == f"https://app.marketo.com/leadDatabase/loadLeadDetail?leadId={person['id']}"
    assert "." not in error["last_seen"]  # to the second
    assert (error["resolved_at"], error["resolved_by"]) == (None, None)

    world.mk.change_lead(person["id"], title="Countess")  # the next passes meet the bad value again
    world.settle()
    (again,) = _errors(world)
    assert (again["id"], again["status"], again["count"]) == (error["id"], "open", 2)
    world.update("lead", lead_id, mobilephone="+44 20 7946 0000")  # (its write to Marketo echoes: one more pass)
    world.settle()
    (again,) = _errors(world)
    assert (again["id"], again["status"]) == (error["id"], "open")
    assert again["count"] >= 3
    assert again["first_seen"] == error["first_seen"]
    assert world.row("lead", lead_id)["jobtitle"] == "Countess"  # the other fields sync on

    world.mk.change_lead(person["id"], leadRating="Warm")  # fixed in Marketo
    world.settle()
    answer = world.call("GET", f"errors/{error['id']}")
    assert answer.status_code == 200
    resolved = answer.json()
    assert (resolved["status"], resolved["resolved_by"], resolved["count"]) == ("resolved", "sync", again["count"])
    assert resolved["resolved_at"] is not None
    assert world.row("lead", lead_id)["leadqualitycode"] == 2
    assert _errors(world, status="open") == []


def test_errors_are_filtered_searched_and_exported_as_filtered(world: World) -> None:
    lead_id, _, error = _bad_rating(world)
    assert [e["id"] for e in _errors(world, direction="marketo_to_dynamics", entity="lead")] == [error["id"]]
    assert _errors(world, direction="dynamics_to_marketo") == []
    assert _errors(world, entity="contact") == []
    assert [e["id"] for e in _errors(world, error_code="conversion", status="open")] == [error["id"]]
    assert [e["id"] for e in _errors(world, code="the-function-key")] == [error["id"]]  # ?code= is Azure's key
    assert [e["id"] for e in _errors(world, q="LOVELACE")] == [error["id"]]  # the label
    assert [e["id"] for e in _errors(world, q=lead_id[:8])] == [error["id"]]
    assert _errors(world, q="no such thing") == []
    assert [e["id"] for e in _errors(world, since=error["last_seen"])] == [error["id"]]
    assert _errors(world, until="2000-01-01T00:00:00Z") == []

    answer = world.call("GET", "errors.csv", params={"direction": "marketo_to_dynamics"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    (row,) = csv.DictReader(io.StringIO(answer.text))
    assert list(row)[:5] == ["id", "entity", "record_id", "marketo_id", "label"]
    assert (row["id"], row["status"], row["count"]) == (error["id"], "open", "1")
    assert row["dynamics_url"] == error["dynamics_url"]
    empty = world.call("GET", "errors.csv", params={"status": "resolved"})
    assert list(csv.reader(io.StringIO(empty.text)))[1:] == []

    refused = world.call("GET", "errors", params={"direction": "sideways"})
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "direction"


def test_an_admin_ignores_resolves_and_retries_errors(world: World) -> None:
    lead_id, person, error = _bad_rating(world)
    ignored = world.call("POST", f"errors/{error['id']}/ignore")
    assert (ignored.status_code, ignored.json()["status"]) == (200, "ignored")
    world.mk.change_lead(person["id"], title="Countess")  # seen again: stays ignored, counted
    world.settle()
    (again,) = _errors(world)
    assert (again["status"], again["count"]) == ("ignored", 2)

    retried = world.call("POST", "errors/retry", params={"entity": "lead"})  # open ones only: none
    assert retried.status_code == 202
    assert retried.json() == {"status": "queued", "records": 0, "errors": []}
    one = world.call("POST", f"errors/{error['id']}/retry")  # by hand: it fails again, so it opens again
    assert (one.status_code, one.json()["status"], one.json()["attempts"]) == (202, "retrying", 1)
    world.settle()
    (failed,) = _errors(world)
    assert (failed["status"], failed["count"], failed["attempts"]) == ("open", 3, 1)

    bulk = world.call("POST", "errors/retry", params={"error_code": "conversion"})
    assert bulk.json() == {"status": "queued", "records": 1, "errors": [error["id"]]}
    world.settle()

    closed = world.call("POST", f"errors/{error['id']}/resolve")
    assert closed.status_code == 200
    assert (closed.json()["status"], closed.json()["resolved_by"]) == ("resolved", "admin")
    assert world.row("lead", lead_id)["leadqualitycode"] is None  # resolving by hand changes no data


def test_an_error_that_names_no_record_cannot_be_retried(world: World) -> None:
    message = unreadable_message("m-1", "not JSON", b"\x00garbage", at=datetime.now(UTC))
    world.store.add_error(message)  # a queue message nobody could read
    (error,) = _errors(world)
    assert (error["entity"], error["dynamics_url"], error["marketo_url"]) == ("-", None, None)
    refused = world.call("POST", f"errors/{error['id']}/retry")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "not-retryable"
    closed = world.call("POST", f"errors/{error['id']}/resolve")  # fixed at its source: closed by hand
    assert closed.json()["status"] == "resolved"
