from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.store.base import StateStore
from shared.store.sqlite import sqlite_store
from shared.store.tables import TableRows, table_store

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's table service on a free loopback port, for the whole session (installed by `make test`)."""
    if not AZURITE.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("Azurite is not installed: `make test` runs `npm install` first")
        pytest.skip("Azurite not installed (run `make test`, which installs it)")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(  # noqa: S603 - fixed local binary and arguments
        [
            str(AZURITE),
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--disableProductStyleUrl",
            "--disableTelemetry",
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("Azurite did not start within 30 s")
    try:
        yield f"http://127.0.0.1:{port}/devstoreaccount1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


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
