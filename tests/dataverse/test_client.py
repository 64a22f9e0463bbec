from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from shared.dataverse.client import RecordUpdate
from shared.dataverse.values import EntityRef
from shared.errors import Conflict, RetryLater, SkipRecord, StopSync, Throttled
from shared.http.backoff import Backoff
from tests.dataverse.conftest import Env


def _lead(env: Env, **values: object) -> str:
    return env.sim.seed(
        "lead", {"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com"} | values
    )


def test_whoami_is_the_application_user_and_the_token_is_cached(env: Env) -> None:
    assert env.client.whoami().user_id == env.app_user
    env.client.whoami()
    env.client.whoami()
    assert env.sim.authority.issued == 1  # MSAL served the later calls from its cache
    assert env.sim.calls["GET WhoAmI"] == 3


def test_read_by_ids_one_request_selected_columns_and_etags(env: Env) -> None:
    a, b = _lead(env), _lead(env, firstname="Grace")
    found = env.client.read_by_ids("lead", [a, b.upper(), "00000000-0000-0000-0000-000000000001"], ["firstname"])

    assert set(found) == {a, b}
    assert found[b].values == {"leadid": b, "firstname": "Grace"}  # nothing but what was asked for
    assert found[a].etag == env.sim.etag("lead", a)
    assert env.sim.calls["GET leads"] == 1


def test_read_by_ids_chunks_to_keep_urls_short(env: Env) -> None:
    ids = [_lead(env) for _ in range(30)]
    client = env.new_client(max_url_length=900)
    found = client.read_by_ids("lead", ids, ["emailaddress1"])
    assert set(found) == set(ids)
    assert env.sim.calls["GET leads"] > 1


def test_query_pages_with_next_link_and_returns_annotations(env: Env) -> None:
    account = env.sim.seed("account", {"name": "Contoso"})
    for n in range(12):
        env.sim.seed("contact", {"lastname": f"C{n}", "donotemail": n % 2 == 0, "parentcustomerid": None})
    env.sim.seed("contact", {"lastname": "Linked", "_parentcustomerid_value": account})

    rows = list(env.client.query("contact", select=["lastname", "donotemail", "_parentcustomerid_value"], page_size=5))

    assert len(rows) == 13
    assert env.sim.calls["GET contacts"] == 3
    linked = next(r for r in rows if r.values["lastname"] == "Linked")
    assert linked.values["parentcustomerid"] == EntityRef(account, "account", "Contoso")
    first = next(r for r in rows if r.values["lastname"] == "C0")
    assert first.formatted_values["donotemail"] == "Do Not Allow"


def test_query_filters_on_a_modifiedon_range(env: Env) -> None:
    old = _lead(env)
    new = _lead(env)
    env.sim._state.rows["lead"][old]["modifiedon"] = "2020-01-01T00:00:00Z"
    rows = env.client.query(
        "lead", select=["firstname"], filter="modifiedon ge 2021-01-01T00:00:00Z and modifiedon le 2999-01-01T00:00:00Z"
    )
    assert [r.id for r in rows] == [new]


def test_update_with_etag_then_conflict_on_a_stale_one(env: Env) -> None:
    lead = _lead(env)
    etag = env.client.read_by_ids("lead", [lead], ["firstname"])[lead].etag

    new_etag = env.client.update("lead", lead, {"firstname": "Augusta"}, etag=etag)
    assert new_etag == env.sim.etag("lead", lead) != etag
    assert env.sim.get("lead", lead)["firstname"] == "Augusta"  # type: ignore[index]

    with pytest.raises(Conflict) as info:
        env.client.update("lead", lead, {"firstname": "Ada"}, etag=etag)
    assert info.value.code == "0x80060882"
    assert env.sim.get("lead", lead)["firstname"] == "Augusta"  # type: ignore[index]


def test_update_without_etag_never_creates_a_missing_record(env: Env) -> None:
    missing = "00000000-0000-0000-0000-00000000beef"
    with pytest.raises(SkipRecord) as info:
        env.client.update("lead", missing, {"firstname": "X"})
    assert not isinstance(info.value, Conflict)
    assert info.value.code == "0x80040217"
    assert env.sim.get("lead", missing) is None


def test_bad_data_is_a_skip_not_a_stop(env: Env) -> None:
    lead = _lead(env)
    with pytest.raises(SkipRecord, match="maximum allowed length"):
        env.client.update("lead", lead, {"firstname": "x" * 51})
    with pytest.raises(SkipRecord, match="outside the valid range"):
        env.client.update("lead", lead, {"leadsourcecode": 99})


def test_create_returns_the_new_id(env: Env) -> None:
    new_id = env.client.create("contact", {"firstname": "Grace", "lastname": "Hopper"})
    row = env.sim.get("contact", new_id)
    assert row is not None
    assert row["fullname"] == "Grace Hopper"
    assert row["_ownerid_value"] == env.app_user


def test_batch_updates_report_each_operation(env: Env) -> None:
    a, b, c = _lead(env), _lead(env), _lead(env)
    stale = env.sim.etag("lead", b)
    env.sim.user_update("lead", b, {"jobtitle": "Engineer"}, user_id=env.app_user)

    results = env.client.update_many(
        "lead",
        [
            RecordUpdate(a, {"firstname": "A"}),
            RecordUpdate(b, {"firstname": "B"}, stale),
            RecordUpdate(c, {"firstname": "C"}),
        ],
    )

    assert [r.ok for r in results] == [True, False, True]
    assert results[1].fault is not None
    assert isinstance(results[1].fault.error(), Conflict)
    assert results[0].entity_id == a
    assert env.sim.get("lead", c)["firstname"] == "C"  # type: ignore[index]
    assert env.sim.calls["POST $batch"] == 1


def test_atomic_batch_rolls_back_everything_on_one_failure(env: Env) -> None:
    a = _lead(env)
    missing = "00000000-0000-0000-0000-00000000dead"
    results = env.client.update_many(
        "lead", [RecordUpdate(a, {"firstname": "Changed"}), RecordUpdate(missing, {"firstname": "X"})], atomic=True
    )
    assert all(not r.ok for r in results)
    assert env.sim.get("lead", a)["firstname"] == "Ada"  # type: ignore[index]


def test_create_many_splits_batches_at_1000(env: Env) -> None:
    results = env.client.create_many("new_project", [{"new_name": f"P{n}"} for n in range(1001)])
    assert len(results) == 1001
    assert all(r.ok and r.entity_id for r in results)
    assert env.sim.calls["POST $batch"] == 2
    assert len(env.sim.rows("new_project")) == 1001


def test_metadata_attributes_option_labels_and_entity_set(env: Env) -> None:
    attributes = {a.logical_name: a for a in env.client.attributes("lead")}
    assert attributes["firstname"].max_length == 50
    assert attributes["new_salarynotes"].is_secured
    assert not attributes["fullname"].valid_for_update
    labels = env.client.option_labels("lead", "leadsourcecode")
    assert (len(labels), labels[1], labels[2], labels[8], labels[10]) == (
        10,
        "Advertisement",
        "Employee Referral",
        "Web",
        "Other",
    )
    assert env.client.option_labels("lead", "donotemail", "Boolean") == {1: "Do Not Allow", 0: "Allow"}
    assert env.client.option_labels("lead", "new_interests", "MultiSelectPicklist")[3] == "Events"

    assert env.client.entity_set_name("new_project") == "new_projects"
    assert env.client.entity_set_name("new_project") == "new_projects"
    assert env.sim.calls["GET EntityDefinitions()"] == 1  # read once, then remembered


def test_secured_columns_need_a_field_security_privilege(env: Env) -> None:
    lead = _lead(env, new_salarynotes="confidential")
    assert env.client.read_by_ids("lead", [lead], ["new_salarynotes"])[lead].values["new_salarynotes"] is None
    assert env.client.secured_column_access("lead", env.app_user)["new_salarynotes"].can_read is False

    env.sim.grant_column(env.app_user, "lead", "new_salarynotes", read=True, update=False)

    assert env.client.read_by_ids("lead", [lead], ["new_salarynotes"])[lead].values["new_salarynotes"] == "confidential"
    access = env.client.secured_column_access("lead", env.app_user)["new_salarynotes"]
    assert (access.can_read, access.can_update) == (True, False)
    with pytest.raises(StopSync, match="secured field"):
        env.client.update("lead", lead, {"new_salarynotes": "x"})


def test_change_tracking_delta_link_returns_changes_and_removals(env: Env) -> None:
    a, b = _lead(env), _lead(env)
    first = env.client.changes("lead", select=["firstname"], page_size=1)
    assert {c.id for c in first} == {a, b}
    assert first.delta_link is not None

    env.sim.user_update("lead", a, {"firstname": "Changed"}, user_id=env.app_user)
    env.sim.user_delete("lead", b, user_id=env.app_user)
    c = env.sim.user_create("lead", {"lastname": "New"}, user_id=env.app_user)

    second = env.client.changes("lead", select=["firstname"], delta_link=first.delta_link)
    changes = {ch.id: ch for ch in second}
    assert changes[a].kind == "upsert"
    record = changes[a].record
    assert record is not None
    assert record.values["firstname"] == "Changed"
    assert changes[b].kind == "removed"
    assert changes[c].kind == "upsert"
    assert second.delta_link
    assert second.delta_link != first.delta_link

    assert list(env.client.changes("lead", select=["firstname"], delta_link=second.delta_link)) == []


def test_qualify_lead_creates_a_contact_pointing_at_the_lead(env: Env) -> None:
    lead = _lead(env)
    created = env.client.qualify_lead(lead)
    assert [ref.logical_name for ref in created] == ["contact"]
    contact = env.sim.get("contact", created[0].id)
    assert contact is not None
    assert contact["_originatingleadid_value"] == lead
    assert contact["emailaddress1"] == "ada@example.com"
    assert env.sim.get("lead", lead)["statecode"] == 1  # type: ignore[index]


# --- faults and limits ----------------------------------------------------------------------------------------


def test_429_honours_retry_after(env: Env) -> None:
    env.sim.inject(status=429, code="0x80072322", message="Number of requests exceeded", retry_after=7)
    assert env.client.whoami().user_id == env.app_user
    assert env.clock.sleeps == [7.0]


def test_throttling_past_the_budget_raises_throttled_with_retry_after(env: Env) -> None:
    env.sim.inject(status=429, code="0x80072321", message="Combined execution time", retry_after=40, times=5)
    with pytest.raises(Throttled) as info:
        env.client.whoami()
    assert info.value.retry_after == 40
    assert info.value.code == "0x80072321"
    assert sum(env.clock.sleeps) <= 60


def test_5xx_is_retried_with_backoff(env: Env) -> None:
    env.sim.inject(status=503, times=2)
    assert env.client.whoami().user_id == env.app_user
    assert env.clock.sleeps == [0.5, 1.0]


def test_persistent_5xx_becomes_retry_later(env: Env) -> None:
    env.sim.inject(status=500, times=10)
    with pytest.raises(RetryLater):
        env.client.whoami()
    assert len(env.clock.sleeps) == 4  # max_attempts=5


def test_create_is_not_retried_after_a_5xx(env: Env) -> None:
    env.sim.inject(status=502, method="POST")
    with pytest.raises(RetryLater):
        env.client.create("lead", {"lastname": "Once"})
    assert env.clock.sleeps == []


def test_timeouts_are_retried(env: Env) -> None:
    env.sim.inject(kind="timeout", delay=env.timeout_delay, path_contains="WhoAmI")
    assert env.impatient_client().whoami().user_id == env.app_user
    assert len(env.clock.sleeps) == 1


def test_expired_token_is_refreshed_transparently(env: Env) -> None:
    env.client.whoami()
    env.sim.expire_tokens()
    assert env.client.whoami().user_id == env.app_user
    assert env.sim.authority.issued == 2


def test_disabled_application_user_stops_the_sync(env: Env) -> None:
    env.sim._state.rows["systemuser"][env.app_user]["isdisabled"] = True
    with pytest.raises(StopSync) as info:
        env.client.whoami()
    assert info.value.code == "0x8004d24b"


def test_401_that_persists_stops_the_sync(env: Env) -> None:
    env.sim.inject(status=401, code="0x80072560", message="The user is not a member of the organization.", times=2)
    with pytest.raises(StopSync):
        env.client.whoami()


def test_request_count_limit_returns_429_with_the_real_code(env: Env) -> None:
    env.sim.request_limit = 3
    client = env.new_client(backoff=Backoff(max_attempts=1))
    for _ in range(3):
        client.whoami()
    with pytest.raises(Throttled) as info:
        client.whoami()
    assert info.value.code == "0x80072322"
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 300
    # after waiting as told, the window has moved on
    env.clock.sleep(info.value.retry_after)
    assert client.whoami().user_id == env.app_user


def test_rate_limit_headers_and_dop_hint_bound_concurrency(env: Env) -> None:
    env.sim.dop_hint = 2
    env.client.whoami()
    assert env.client.gate.limit == 2
    for _ in range(10):
        _lead(env)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            list(env.client.query("lead", select=["firstname"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert env.client.gate.peak <= 2
    assert env.sim.peak_in_flight <= 2


def test_concurrency_limit_is_the_service_maximum_at_most(env: Env) -> None:
    client = env.new_client(max_concurrency=100)
    env.sim.dop_hint = None
    client.whoami()
    assert client.gate.limit == 52


def test_metadata_dates_are_iso_in_web_api_rows(env: Env) -> None:
    lead = _lead(env)
    row = env.client.read_by_ids("lead", [lead], ["modifiedon"])[lead]
    parsed = datetime.fromisoformat(str(row.values["modifiedon"]).replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    assert parsed <= datetime.now(UTC)
