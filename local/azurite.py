"""Azurite's table service (the Azure Storage emulator, installed by ``npm install``) on a free loopback port, in
memory: the Table Storage state store's tests and ``bench.quicksync_table`` start it through :func:`azurite`.

Raises :class:`AzuriteMissing` when it is not installed, so each caller says what to do (a test skips or fails,
the benchmark exits with the command to run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from local.loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"
ARGUMENTS = ["--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--disableProductStyleUrl"]
ARGUMENTS += ["--disableTelemetry", "--tableHost", "127.0.0.1"]
START_SECONDS = 30.0


class AzuriteMissing(RuntimeError):
    """Azurite is not installed (``npm install``, which ``make test`` runs, installs it)."""


@dataclass
class Azurite:
    """A running Azurite table service."""

    process: subprocess.Popen[bytes]
    endpoint: str  # the account URL: http://127.0.0.1:<port>/devstoreaccount1
    workdir: str

    def cpu_seconds(self) -> float:
        """User and system CPU of the Azurite process (node) so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def installed() -> bool:
    """Azurite and node are there to start."""
    return AZURITE.exists() and shutil.which("node") is not None


@contextmanager
def azurite(workdir: str | None = None) -> Iterator[Azurite]:
    """Azurite started in ``workdir`` (a temporary directory, removed afterwards, when None) and stopped at the end."""
    node = shutil.which("node")
    if not installed() or node is None:
        raise AzuriteMissing("Azurite is not installed: run `npm install` (`make test` does) first")
    port, own = free_port(), workdir is None
    directory = tempfile.mkdtemp(prefix="azurite-") if workdir is None else workdir
    process = subprocess.Popen(  # noqa: S603 - the repository's own Azurite and fixed arguments
        [node, str(AZURITE), *ARGUMENTS, "--tablePort", str(port)],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(process, port)
        yield Azurite(process, f"http://127.0.0.1:{port}/devstoreaccount1", directory)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if own:
            shutil.rmtree(directory, ignore_errors=True)


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Azurite did not start within {START_SECONDS:.0f} s") from None
            time.sleep(0.05)
