"""No log record written while the tests run may hold a secret or an access token.

One handler on the root logger (installed by ``tests/conftest.py`` with the root level lowered to 1, so every level
of every propagating logger reaches it) formats each record as a log file would see it (message, exception text,
stack) and looks in it for every credential known so far:

- every client secret a simulated authority was given and every access token it issued (the Dataverse authority
  and the Marketo identity service tell :meth:`LogGuard.know` through their ``witness_credentials`` hooks), which
  covers the secrets the local tenants make up for each stack;
- every ``SecretStr`` setting of the services installed in the process (the webhook secrets, the client secrets,
  the functions key, connection strings), read whenever a record arrives;
- every ``*_SECRET`` / ``*_KEY`` variable in the environment when the session starts.

A value is also looked for URL-encoded. A test's records are checked when they arrive and again when the test
ends, against everything known by then; a leak fails that test's teardown, naming the test, the logger, the level
and what leaked (never the value). Records written outside any test are reported at the end of the session.
:data:`ALLOWED` names the one known leak that is not the product's.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

MIN_LENGTH = 8  # shorter values would match ordinary words; every made-up secret and token is longer
_RUNS = re.compile(r"[A-Za-z0-9_\-:%.~+/=]{" + str(MIN_LENGTH) + ",}")  # the characters secrets and tokens are made of
OUTSIDE = "<outside any test>"
ALLOWED = (
    ("tests/conformance/", "urllib3.connectionpool"),
    ("tests/simulators/", "urllib3.connectionpool"),
    ("tests/simulators/", "httpx"),
)
"""(test id prefix, logger) pairs whose leaks are let through, each for a reason:

- the conformance and simulator suites drive the simulators with third-party clients and plain httpx the way
  Marketo documents its API: the identity call as a GET with ``client_secret`` in the query string, and
  ``access_token`` as a query parameter; urllib3 (DEBUG) and httpx (INFO) log those URLs. That is test traffic to
  a simulator, not the product.

Everything else is checked: the product's clients (urllib3 included, which MSAL's token calls go through) in every
other test."""


@dataclass(frozen=True, slots=True)
class Leak:
    test: str
    logger: str
    level: str
    what: str  # which credential, never its value

    def __str__(self) -> str:
        return f"{self.test}: a {self.level} record of logger '{self.logger}' holds the {self.what}"


class LogGuard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self._known: dict[str, str] = {}  # value -> what it is
        self._index: dict[str, list[str]] = {}  # first MIN_LENGTH characters -> values
        self._held: list[tuple[str, str, str, str]] = []  # (test, logger, level, text) of the running test
        self._seen_settings: set[int] = set()
        self._catching: list[list[Leak]] = []
        self._reported: set[Leak] = set()
        self.leaks: list[Leak] = []
        self.allowed = 0  # leaks ALLOWED let through
        self.test = OUTSIDE
        self.guard_lock = threading.RLock()

    # --- what is secret -----------------------------------------------------------------------------------------

    def know(self, what: str, value: str | None) -> None:
        if not value or len(value) < MIN_LENGTH:
            return
        with self.guard_lock:
            for form, label in ((value, what), (quote(value, safe=""), f"{what} (URL-encoded)")):
                if form not in self._known:
                    self._known[form] = label
                    self._index.setdefault(form[:MIN_LENGTH], []).append(form)

    def know_environment(self, environ: dict[str, str] | os._Environ[str]) -> None:
        for name, value in environ.items():
            if name.upper().endswith(("_SECRET", "_KEY")):
                self.know(f"{name} setting", value)

    def _installed_settings(self) -> None:
        """The settings of the services the product uses now (``shared.services.install``), once per object."""
        module = sys.modules.get("shared.services")
        current = getattr(getattr(module, "_Current", None), "services", None)
        settings = getattr(current, "settings", None)
        if settings is None or id(settings) in self._seen_settings:
            return
        self._seen_settings.add(id(settings))
        for name, info in type(settings).model_fields.items():
            value = getattr(settings, name)
            if hasattr(value, "get_secret_value"):
                alias = info.validation_alias
                label = alias.choices[0] if hasattr(alias, "choices") else name.upper()
                self.know(f"{label} setting", value.get_secret_value())

    # --- looking -------------------------------------------------------------------------------------------------

    def _found(self, text: str) -> set[str]:
        found = set()
        for run in _RUNS.finditer(text):
            chunk = run.group()
            for i in range(len(chunk) - MIN_LENGTH + 1):
                for value in self._index.get(chunk[i : i + MIN_LENGTH], ()):
                    if chunk.startswith(value, i):
                        found.add(self._known[value])
        return found

    def _report(self, leak: Leak) -> None:
        if leak in self._reported:
            return
        if any(leak.test.startswith(prefix) and leak.logger == logger for prefix, logger in ALLOWED):
            self.allowed += 1
            return
        self._reported.add(leak)
        (self._catching[-1] if self._catching else self.leaks).append(leak)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record whose arguments do not format is written as its bare message
            text = f"{record.msg} {record.args}"
        with self.guard_lock:
            self._installed_settings()
            entry = (self.test, record.name, record.levelname, text)
            if self.test != OUTSIDE:
                self._held.append(entry)
            self._check(*entry)

    def _check(self, test: str, logger: str, level: str, text: str) -> None:
        for what in self._found(text):
            self._report(Leak(test, logger, level, what))

    # --- a test's life -------------------------------------------------------------------------------------------

    def start(self, test: str) -> None:
        with self.guard_lock:
            self.test, self._held = test, []

    def finish(self, test: str) -> list[Leak]:
        """Check the test's records again (a secret may have become known after it was logged); its leaks."""
        with self.guard_lock:
            self._installed_settings()
            for entry in self._held:
                self._check(*entry)
            self._held, self.test = [], OUTSIDE
            mine = [leak for leak in self.leaks if leak.test == test]
            self.leaks = [leak for leak in self.leaks if leak.test != test]
            return mine

    @contextmanager
    def catching(self) -> Iterator[list[Leak]]:
        """Leaks found inside the block go to the yielded list instead of failing the test: to prove the guard."""
        box: list[Leak] = []
        with self.guard_lock:
            self._catching.append(box)
        try:
            yield box
        finally:
            with self.guard_lock:
                self._catching.remove(box)


GUARD = LogGuard()


def install(guard: LogGuard = GUARD) -> None:
    """The handler on the root logger, every level let through, and the simulators' credential hooks."""
    from local.simulators.dataverse import authority  # imported once a session starts
    from local.simulators.marketo import identity

    root = logging.getLogger()
    root.addHandler(guard)
    root.setLevel(1)
    authority.witness_credentials(guard.know)
    identity.witness_credentials(guard.know)
    guard.know_environment(os.environ)


def describe(leaks: list[Leak]) -> str:
    return "secrets reached the log:\n" + "\n".join(f"  {leak}" for leak in leaks)


__all__ = ["GUARD", "Leak", "LogGuard", "describe", "install"]
