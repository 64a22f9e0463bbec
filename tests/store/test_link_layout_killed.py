"""Moving links out of the previous layout, from outside one process: the mover and a live writer run as processes
of their own over one store, are killed (SIGKILL) at an arbitrary moment, and a fresh process finishes the move.
No link is lost or duplicated, and no acknowledged write is undone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.errors import Conflict
from shared.store.base import LINKS, StateStore, Write
from shared.store.link_keys import address, partitions
from shared.store.link_layout import move_legacy_links
from shared.store.links import link_doc
from shared.store.model import Link
from shared.store.sqlite import sqlite_store
from shared.store.tables import TableRows, table_store

ROOT = Path(__file__).parents[2]
COUNT = 1500
AT = datetime(2026, 12, 3, tzinfo=UTC)


def _open(spec: list[str]) -> StateStore:
    if spec[0] == "sqlite":
        return sqlite_store(spec[1])
    rows = TableRows.for_azurite(spec[1])
    rows.table_suffix = spec[2]
    return table_store(rows)


def _ids() -> list[str]:
    return [str(uuid.UUID(int=i * 7_919_993 + 5)) for i in range(COUNT)]


def mover(spec: list[str]) -> None:
    """A Quick Sync timer that never stops: moves a small page at a time."""
    store = _open(spec)
    while move_legacy_links(store, ["contact"], out_of_time=lambda: False, page=20).moved:
        pass


def writer(spec: list[str], acknowledged: str) -> None:
    """The live sync: read a link, add one to its count, save on the ETag; each save that returned is logged."""
    store = _open(spec)
    ids = _ids()
    with open(acknowledged, "a") as log:
        for n in range(100_000):
            rid = ids[(n * 37) % len(ids)]
            link = store.get_link("contact", rid)
            assert link is not None, rid
            try:
                store.save_link(replace(link, baseline={"count": int(str(link.baseline["count"])) + 1}))
            except Conflict:
                continue
            log.write(rid + "\n")
            log.flush()
            os.fsync(log.fileno())


def child(arguments: str) -> None:
    """A child process's body: ``[role, spec, *extra]`` as JSON."""
    role, spec, *extra = json.loads(arguments)
    if role == "mover":
        mover(spec)
    else:
        writer(spec, extra[0])


def _spawn(role: str, spec: list[str], *extra: str) -> subprocess.Popen[bytes]:
    code = "import sys; from tests.store.test_link_layout_killed import child; child(sys.argv[1])"
    arguments = json.dumps([role, spec, *extra])
    return subprocess.Popen(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-c", code, arguments], cwd=ROOT, stderr=subprocess.PIPE
    )


def _current(store: StateStore) -> int:
    return sum(1 for pk in partitions("contact") for _ in store.rows.query(LINKS, pk))


@pytest.fixture(params=["sqlite", "azure-tables"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    if request.param == "sqlite":
        return ["sqlite", str(tmp_path / "state.sqlite3")]
    return ["azurite", request.getfixturevalue("azurite_endpoint"), f"k{os.getpid()}{uuid.uuid4().hex[:8]}"]


@pytest.mark.parametrize("kill_after", [200, 700])
def test_killed_movers_and_writers_lose_nothing_and_a_new_run_finishes(
    spec: list[str], tmp_path: Path, kill_after: int
) -> None:
    store = _open(spec)
    ids = _ids()
    for start in range(0, COUNT, 100):
        docs = [Write("insert", rid, link_doc(Link("contact", rid, str(i), {"count": 0}), AT)) for i, rid in
                enumerate(ids[start : start + 100], start)]  # fmt: skip
        store.rows.write_many(LINKS, "contact", docs)
    acknowledged = tmp_path / "acknowledged.log"
    acknowledged.touch()
    writers = [_spawn("writer", spec, str(acknowledged)) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(acknowledged.read_text().split()) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)  # the live sync is under way (moving the links it saves) before the mover starts
    moving = _spawn("mover", spec)
    while _current(store) < kill_after and time.monotonic() < deadline and moving.poll() is None:
        time.sleep(0.02)
    for process in (moving, *writers):
        process.send_signal(signal.SIGKILL)
    for process in (moving, *writers):
        process.wait(30)
        assert process.returncode == -signal.SIGKILL, (process.stderr.read() if process.stderr else b"").decode()
    moved_before = _current(store)
    assert moved_before >= kill_after  # killed in the middle of the move

    again = _open(spec)
    move_legacy_links(again, ["contact"], out_of_time=lambda: False)

    assert list(again.rows.query(LINKS, "contact")) == []
    rows = sorted(row.rk for pk in partitions("contact") for row in again.rows.query(LINKS, pk))
    assert rows == sorted(address("contact", rid).rk for rid in ids)  # each link once, at its address
    links = again.get_links("contact", ids)
    assert all(links[rid].marketo_id == str(i) for i, rid in enumerate(ids))
    saves = acknowledged.read_text().split()
    assert saves, "the writers saved something before they were killed"
    for rid in ids:
        count = links[rid].baseline["count"]
        assert isinstance(count, int)
        done = saves.count(rid)
        assert done <= count <= done + 2  # every acknowledged save kept; at most each killed writer's last in flight
