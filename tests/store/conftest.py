from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.azurite import AzuriteMissing, azurite
from shared.store.base import StateStore
from shared.store.sqlite import sqlite_store
from shared.store.tables import TableRows, table_store


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's table service on a free loopback port, for the whole session (installed by `make test`)."""
    try:
        with azurite(str(tmp_path_factory.mktemp("azurite"))) as service:
            yield service.endpoint
    except AzuriteMissing:
        if os.environ.get("CI"):
            pytest.fail("Azurite is not installed: `make test` runs `npm install` first")
        pytest.skip("Azurite not installed (run `make test`, which installs it)")


_counter = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", "azure-tables"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """Each contract test runs against both backends; each test gets empty tables of its own."""
    if request.param == "sqlite":
        yield sqlite_store(tmp_path / "state.sqlite3")
        return
    endpoint = request.getfixturevalue("azurite_endpoint")
    rows = TableRows.for_azurite(endpoint)
    suffix = f"t{os.getpid()}n{next(_counter)}"
    rows.table_suffix = suffix
    yield table_store(rows)
