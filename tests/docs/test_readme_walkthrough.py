"""The README's walkthrough runs as written: its commands, read from the README, run in bash (``set -u``: an
undefined variable fails the step) against the product on loopback ports, with the session file ``make run``
writes. "A moment later" is a bounded poll of that step's own command (no fixed sleep)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import function_app
from local.session import SESSION, session_settings, shell_variables, write_session
from local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
SOURCE_LINE = f". {SESSION.as_posix()}/env.sh"
DEADLINE = 20.0
BASH = shutil.which("bash")
CURL = shutil.which("curl")


def walkthrough() -> str:
    """The README's shell block that starts from the session file."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    at = text.index(SOURCE_LINE)
    start = text.rindex("```sh\n", 0, at) + len("```sh\n")
    return text[start : text.index("```", at)]


def steps(block: str) -> dict[int, str]:
    """``# 1. ...`` up to the next numbered comment is step 1; what comes before is step 0."""
    found: dict[int, list[str]] = {0: []}
    current = 0
    for line in block.splitlines():
        numbered = re.match(r"# (\d+)\.", line)
        if numbered:
            current = int(numbered.group(1))
            found[current] = []
        found[current].append(line)
    return {n: "\n".join(lines) for n, lines in found.items()}


def assigned(block: str) -> list[str]:
    return sorted(set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", block, re.MULTILINE)))


def test_every_variable_is_defined_and_no_command_spells_the_port() -> None:
    block = walkthrough()
    assert SOURCE_LINE in block.splitlines()
    used = set(re.findall(r"(?<!\\)\$\{?([A-Za-z_][A-Za-z0-9_]*)", block))
    defined = set(assigned(block)) | set(shell_variables(_sample_settings()))
    assert used - defined == set()
    commands = [line for line in block.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in commands if re.search(r"127\.0\.0\.1|localhost|:\d{2,5}\b", line)]
    assert "$MK/rest/v1/leads.json" in steps(block)[4]  # the Marketo edit is a command, not a sentence


def _sample_settings() -> dict[str, str]:
    return {
        "PRODUCT_URL": "http://127.0.0.1:1",
        "DATAVERSE_URL": "http://127.0.0.1:2",
        "MARKETO_BASE_URL": "http://127.0.0.1:3",
        "DATAVERSE_TENANT_ID": "t",
        "DEMO_CLIENT_ID": "d",
        "DEMO_CLIENT_SECRET": "s",
        "MARKETO_CLIENT_ID": "m",
        "MARKETO_CLIENT_SECRET": "x",
    }


class Shell:
    """Runs one step at a time in a fresh bash, carrying the variables the steps assign in ``vars.sh``."""

    def __init__(self, cwd: Path, block: str) -> None:
        self.cwd = cwd
        self.names = assigned(block)
        self.preamble = steps(block)[0]

    def run(self, step: str) -> str:
        keep = " ".join(self.names)
        script = "\n".join(
            [
                "set -euo pipefail",
                self.preamble,
                "[ -f vars.sh ] && . ./vars.sh",
                step,
                f"declare -p {keep} 2>/dev/null > vars.sh || true",
            ]
        )
        assert BASH is not None
        done = subprocess.run(  # noqa: S603 - bash with the README's own commands, in a scratch directory
            [BASH, "-c", script], cwd=self.cwd, capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, f"step failed ({done.returncode}): {done.stderr[-2000:]}"
        return done.stdout

    def until(self, step: str, ok: Callable[[str], bool], settle: Callable[[], object]) -> str:
        end = time.monotonic() + DEADLINE
        while True:
            settle()
            out = self.run(step)
            if ok(out):
                return out
            if time.monotonic() > end:
                raise AssertionError(f"gave up after {DEADLINE} s waiting on: {step.splitlines()[0]}\n{out[-500:]}")


@pytest.fixture
def loopback_stack() -> Iterator[LocalStack]:
    stack = LocalStack(function_app.app, port=0, run_timers=False, retry_delay=0.05).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.skipif(BASH is None or CURL is None, reason="the walkthrough is bash and curl")
def test_the_walkthrough_runs_as_written_against_the_local_host(loopback_stack: LocalStack, tmp_path: Path) -> None:
    settings = session_settings(loopback_stack)
    assert settings is not None
    write_session(tmp_path / SESSION, settings)
    block = walkthrough()
    step = steps(block)
    shell = Shell(tmp_path, block)

    def settle() -> None:
        loopback_stack.drain(5.0)

    shell.run(step[1])
    assert "TOKEN=" in (tmp_path / "vars.sh").read_text()
    shell.run(step[2])
    linked = shell.until(step[3], lambda out: '"dynamicsContactId": "' in out, settle)
    assert '"title": "Engineer"' in linked
    assert '"success": true' in shell.run(step[4])
    moved = shell.until(step[5], lambda out: '"jobtitle": "Chief Engineer"' in out, settle)
    assert "Ada Lovelace" in moved
    status = shell.run(step[6])
    assert '"generated_at"' in status
