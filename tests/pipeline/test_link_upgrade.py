"""A store written by the previous version (links in one partition per entity, the id as key) upgraded in
place: the whole product in-process against the simulated tenants. The Quick Sync timer moves the legacy links
a share of its run at a time, the live sync keeps working on links in either layout meanwhile, and no person is
created twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.quicksync import seed_linked
from local.stack import LocalStack
from shared.store.base import LINKS, MARKETO_INDEX, StateStore, Write
from shared.store.link_keys import address, partitions
from tests.pipeline.test_quicksync import add_field
from tests.pipeline.test_quicksync_bulk import FIELD, tier
from tests.stacks import running_stack

COUNT = 1200
AT = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with running_stack(overrides={"QUICK_SYNC_BULK_MIN": "5000"}) as stack:  # sync calls: no import to wait for
        assert stack.tenants is not None
        stack.tenants.marketo.configure_webhook(None, None)  # the live sync's echo handling is not under test
        yield stack


def as_previous_version(store: StateStore, entity: str, ids: list[str]) -> None:
    """Rewrite the links as the previous version kept them (and its Marketo-id index)."""
    links = store.get_links(entity, ids)
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        store.rows.write_many(LINKS, entity, [Write("insert", rid, store.link_doc(links[rid], AT)) for rid in chunk])
    for rid in ids:
        at = address(entity, rid)
        store.rows.write_many(LINKS, at.pk, [Write("delete", at.rk, etag=links[rid].etag)])
        store.rows.upsert(MARKETO_INDEX, "person", str(links[rid].marketo_id), {"entity": entity, "id": rid})


def legacy_count(store: StateStore) -> int:
    return sum(1 for _ in store.rows.query(LINKS, "contact"))


def current_count(store: StateStore) -> int:
    return sum(1 for pk in partitions("contact") for _ in store.rows.query(LINKS, pk))


def test_an_upgraded_store_is_moved_by_the_timer_while_the_sync_goes_on(stack: LocalStack) -> None:
    assert stack.tenants is not None
    dv, mk = stack.tenants.dataverse, stack.tenants.marketo
    ids = seed_linked(stack, COUNT, "new_tier", tier)
    store = stack.services.store
    as_previous_version(store, "contact", ids)
    assert (legacy_count(store), current_count(store)) == (COUNT, 0)
    persons = len(mk.leads.leads)

    # A live change before anything moved: the reconcile finds the legacy link, and saving it moves it.
    admin = stack.tenants.admin_user_id
    dv.user_update("contact", ids[0], {"firstname": "Moved"}, user_id=admin)
    assert stack.drain(30)
    person = store.get_link("contact", ids[0])
    assert person is not None
    assert (mk.lead(int(str(person.marketo_id))) or {}).get("firstName") == "Moved"
    assert legacy_count(store) == COUNT - 1

    # A field added: the timer moves the rest, then its Quick Sync refreshes every record through them.
    status, body = add_field(stack, "contact", FIELD)
    assert status == 202, body
    stack.host.fire("quick_sync")
    assert (legacy_count(store), current_count(store)) == (0, COUNT)
    links = store.get_links("contact", ids)
    assert sorted(links) == sorted(ids)
    assert all(links[rid].baseline.get("new_tier") == tier(i) for i, rid in enumerate(ids))
    tiers: dict[str, Any] = {rid: (mk.lead(int(str(links[rid].marketo_id))) or {}).get("tier") for rid in ids}
    assert tiers == {rid: tier(i) for i, rid in enumerate(ids)}

    # Marketo's side still finds its links through the index, and nothing was created twice.
    assert store.find_by_marketo("contact", str(links[ids[5]].marketo_id)) == links[ids[5]]
    dv.user_update("contact", ids[7], {"firstname": "After"}, user_id=admin)
    assert stack.drain(30)
    assert len(mk.leads.leads) == persons
