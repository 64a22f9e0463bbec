"""``admin entities list|add|remove`` against the product through the local host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.admin.conftest import Product
from tests.e2e.conftest import WORLD_BATCHING, World
from tests.e2e.test_entities_at_runtime import customise, widgets
from tests.stacks import running_stack


@pytest.fixture
def product() -> Iterator[Product]:
    overrides = {"PAUSE_RECHECK_SECONDS": "0.2", "SYNC_MAPPING_REFRESH_SECONDS": "0"}
    with running_stack(batching=WORLD_BATCHING, overrides=overrides) as stack:
        yield Product(World(stack))


def test_entities_add_watches_the_initial_sync_then_remove_and_list(product: Product) -> None:
    customise(product.stack)
    dv = product.world.dv
    ids = [dv.seed("new_widget", {"new_name": f"W{n}", "new_size": n}) for n in range(3)]

    ran = product.watching(
        "entities", "add", "new_widget", "--custom-object", "widget_c", "--field", "new_name=widgetName",
        "--field", "new_size=size", "--watch",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    first = ran.out.splitlines()[0]
    assert first == "added new_widget -> Marketo widget_c (link field dynamicsId, 2 fields); state initial_sync"
    assert "note: live changes of the table reach the sync through its plug-in steps only once" in ran.out
    product.world.settle()
    assert set(widgets(product.stack)) == set(ids)

    listed = product("entities", "list")
    assert listed.code == 0
    row = next(line for line in listed.out.splitlines() if line.startswith("new_widget "))
    assert row.split()[:3] == ["new_widget", "active", "widget_c"]

    again = product("entities", "add", "new_widget", "--custom-object", "widget_c")
    assert (again.code, again.err.strip()) == (1, "error 409 already-mapped: new_widget is already in the sync mapping")

    removed = product("entities", "remove", "new_widget")
    assert removed.code == 0, removed.err
    assert removed.out.splitlines()[0] == "removed new_widget from the sync; 0 job(s) cancelled"
    gone = product("entities", "remove", "new_widget")
    assert (gone.code, gone.err.split(":")[0]) == (1, "error 404 not-found")
    assert "new_widget" not in product("entities", "list").out


def test_a_field_that_is_not_column_or_column_equals_name_is_a_usage_error(product: Product) -> None:
    ran = product("entities", "add", "new_widget", "--custom-object", "widget_c", "--field", "=x")
    assert ran.code == 2
    assert "--field takes COLUMN or COLUMN=MARKETO_FIELD" in ran.err
