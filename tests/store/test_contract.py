"""One contract, two backends: SQLite (local host) and Azure Table Storage (Azurite here, Azure in production)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import Conflict
from shared.store.base import StateStore
from shared.store.model import Checkpoint, ErrorStatus, Link, SyncErrorRecord

LEAD_ID = "7D8F1E2A-0B3C-4D5E-8F9A-1B2C3D4E5F60"


def test_a_new_link_is_created_once_and_read_back(store: StateStore) -> None:
    saved = store.save_link(Link("lead", LEAD_ID, marketo_id="1001", baseline={"jobtitle": "CTO", "revenue": "1.5"}))
    assert saved.etag
    again = store.get_link("lead", LEAD_ID)
    assert again is not None
    assert (again.dynamics_id, again.marketo_id, again.baseline) == (LEAD_ID.lower(), "1001", saved.baseline)
    assert again.etag == saved.etag
    with pytest.raises(Conflict):
        store.save_link(Link("lead", LEAD_ID, marketo_id="1002"))


def test_a_stale_baseline_cannot_overwrite_a_newer_one(store: StateStore) -> None:
    first = store.save_link(Link("contact", LEAD_ID, marketo_id="7", baseline={"jobtitle": "A"}))
    winner = store.save_link(Link("contact", LEAD_ID, "7", {"jobtitle": "B"}, etag=first.etag))
    with pytest.raises(Conflict):
        store.save_link(Link("contact", LEAD_ID, "7", {"jobtitle": "C"}, etag=first.etag))
    current = store.get_link("contact", LEAD_ID)
    assert current is not None
    assert current.baseline == {"jobtitle": "B"}
    assert current.etag == winner.etag


def test_concurrent_writers_with_the_same_etag_one_wins(store: StateStore) -> None:
    first = store.save_link(Link("lead", LEAD_ID, "1", {"n": 0}))
    outcomes: list[str] = []

    def write(value: int) -> None:
        try:
            store.save_link(Link("lead", LEAD_ID, "1", {"n": value}, etag=first.etag))
            outcomes.append("won")
        except Conflict:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 4 + ["won"]


def test_many_links_are_read_in_one_call_and_missing_ids_are_absent(store: StateStore) -> None:
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(40)]
    for i in ids[:30]:
        store.save_link(Link("account", i, marketo_id=i[-4:], baseline={"name": i}))
    found = store.get_links("account", [i.upper() for i in ids])
    assert sorted(found) == ids[:30]
    assert found[ids[3]].baseline == {"name": ids[3]}
    assert len(list(store.iter_links("account"))) == 30


def test_a_person_is_found_by_marketo_id_and_follows_its_lead_into_the_contact(store: StateStore) -> None:
    store.save_link(Link("lead", LEAD_ID, marketo_id="555"))
    by_person = store.find_by_marketo("lead", 555)
    assert by_person is not None
    assert by_person.entity == "lead"
    contact_id = "11111111-2222-3333-4444-555555555555"
    store.save_link(Link("contact", contact_id, marketo_id="555"))
    followed = store.find_by_marketo("contact", "555")
    assert followed is not None
    assert (followed.entity, followed.dynamics_id) == ("contact", contact_id)
    assert store.find_by_marketo("account", "555") is None


def test_many_persons_are_found_by_marketo_id_at_once(store: StateStore) -> None:
    lead = "11111111-0000-0000-0000-000000000001"
    contact = "22222222-0000-0000-0000-000000000002"
    store.save_link(Link("lead", lead, marketo_id="10"))
    store.save_link(Link("contact", contact, marketo_id="20"))
    found = store.find_many_by_marketo("lead", ["10", 20, "30"])
    assert {k: (v.entity, v.dynamics_id) for k, v in found.items()} == {
        "10": ("lead", lead),
        "20": ("contact", contact),
    }


def test_large_baselines_survive_the_round_trip(store: StateStore) -> None:
    memo = "x" * 100_000  # over one Table property's 64 KiB
    store.save_link(Link("lead", LEAD_ID, "1", {"description": memo, "emoji": "📈"}))
    link = store.get_link("lead", LEAD_ID)
    assert link is not None
    assert link.baseline == {"description": memo, "emoji": "📈"}


def test_checkpoints_advance_only_from_the_version_read(store: StateStore) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert store.get_checkpoint("marketo:leadchanges") is None
    saved = store.save_checkpoint(Checkpoint("marketo:leadchanges", "TOKEN1", now))
    moved = store.save_checkpoint(Checkpoint("marketo:leadchanges", "TOKEN2", now + timedelta(seconds=30), saved.etag))
    with pytest.raises(Conflict):
        store.save_checkpoint(Checkpoint("marketo:leadchanges", "TOKEN3", now, saved.etag))
    current = store.get_checkpoint("marketo:leadchanges")
    assert current is not None
    assert (current.value, current.updated_at, current.etag) == ("TOKEN2", now + timedelta(seconds=30), moved.etag)
    assert [c.name for c in store.list_checkpoints()] == ["marketo:leadchanges"]


def test_documents_are_versioned(store: StateStore) -> None:
    etag = store.save_document("mapping", '{"entities": []}', None)
    assert store.get_document("mapping") == ('{"entities": []}', etag)
    store.save_document("mapping", '{"entities": [1]}', etag)
    with pytest.raises(Conflict):
        store.save_document("mapping", "stale", etag)


def test_pause_and_resume_the_whole_sync_or_one_entity(store: StateStore) -> None:
    assert not store.get_pause().is_paused("lead")
    store.set_pause("lead", paused=True)
    state = store.get_pause()
    assert state.is_paused("lead")
    assert not state.is_paused("contact")
    store.set_pause(None, paused=True)
    assert store.get_pause().is_paused("contact")
    store.set_pause(None, paused=False)
    store.set_pause("lead", paused=False)
    assert not store.get_pause().is_paused("lead")


def test_resuming_the_whole_sync_keeps_the_entities_paused_by_name(store: StateStore) -> None:
    store.set_pause("account", paused=True)
    store.set_pause(None, paused=True)
    state = store.set_pause(None, paused=False)
    assert (state.all, sorted(state.entities)) == (False, ["account"])
    assert store.get_pause().is_paused("account")
    assert not store.get_pause().is_paused("lead")


def test_counters_come_back_in_five_minute_slots(store: StateStore) -> None:
    now = datetime(2026, 12, 1, 12, 33, 10, tzinfo=UTC)
    store.add_counts("lead", {"synced": 2}, at=now)
    store.add_counts("lead", {"synced": 1}, at=now.replace(minute=34))
    store.add_counts("lead", {"synced": 5}, at=now.replace(minute=2))
    store.add_counts("contact", {"errors": 1}, at=now - timedelta(hours=1))
    slots = store.counts_by_slot(now - timedelta(hours=1))
    assert slots == [
        (datetime(2026, 12, 1, 11, 30, tzinfo=UTC), "contact", {"errors": 1}),
        (datetime(2026, 12, 1, 12, 0, tzinfo=UTC), "lead", {"synced": 5}),
        (datetime(2026, 12, 1, 12, 30, tzinfo=UTC), "lead", {"synced": 3}),
    ]
    assert store.counts_since(now)["lead"]["synced"] == 8


def test_sync_errors_are_listed_newest_first_searchable_and_movable(store: StateStore) -> None:
    base = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    ids = []
    for i, (entity, code, message) in enumerate(
        [
            ("lead", "1006", "Field 'leadRating' not found"),
            ("contact", "CONVERSION", "unknown option label 'Tepid'"),
            ("lead", "0x80040220", "Principal user is missing prvReadLead privilege"),
        ]
    ):
        stored = store.add_error(
            SyncErrorRecord(
                entity=entity,
                record_id=f"rec-{i}",
                operation="update",
                direction="dynamics_to_marketo",
                code=code,
                message=message,
                last_seen=base + timedelta(minutes=i),
                field="leadqualitycode" if i == 1 else None,
            )
        )
        ids.append(stored.id)
    e0, e1, e2 = ids
    assert [e.id for e in store.list_errors()] == [e2, e1, e0]
    assert [e.id for e in store.list_errors(entity="lead")] == [e2, e0]
    assert [e.id for e in store.list_errors(search="TEPID")] == [e1]
    assert [e.id for e in store.list_errors(search="leadqualitycode")] == [e1]
    resolved = store.errors.move(e0, ErrorStatus.RESOLVED, by="admin", at=base)
    assert resolved is not None
    assert (resolved.status, resolved.resolved_by, resolved.resolved_at) == (ErrorStatus.RESOLVED, "admin", base)
    assert [e.id for e in store.list_errors(status=ErrorStatus.OPEN)] == [e2, e1]
    assert store.get_error("missing") is None
    assert store.errors.move("missing", ErrorStatus.RESOLVED, by="admin", at=base) is None


def test_counters_add_up_per_entity_across_hours(store: StateStore) -> None:
    now = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
    store.add_counts("lead", {"synced": 3, "collisions_marketo": 1}, at=now)
    store.add_counts("lead", {"synced": 2}, at=now)
    store.add_counts("lead", {"synced": 100}, at=now - timedelta(hours=3))
    store.add_counts("contact", {"errors": 1}, at=now)
    totals = store.counts_since(now - timedelta(hours=1))
    assert totals == {"lead": {"synced": 5, "collisions_marketo": 1}, "contact": {"errors": 1}}


def test_concurrent_counter_updates_are_not_lost(store: StateStore) -> None:
    now = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
    threads = [threading.Thread(target=store.add_counts, args=("lead", {"synced": 1}, now)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.counts_since(now)["lead"]["synced"] == 8
