"""The admin console in a real browser: Debian's Chromium driven by Playwright, against the local host over a
real loopback port (the whole product in-process on the simulated tenants, a function key required).

One browser per test session (pytest-xdist: one per worker), a fresh browser context (cookies, cache) per test,
one product per test module.
Chromium is the Debian package (``make test`` installs it when missing); Playwright's own browser downloads are
never used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from local.stack import LocalStack
from tests.stacks import running_stack

CHROMIUM = Path(os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "console-test-key-0123456789"
TIMEOUT_MS = 10_000
ADA = {"firstname": "<i>Ada</i>", "lastname": "Lovelace", "emailaddress1": "ada@example.com", "jobtitle": "Engineer"}
BOB = {"firstname": "Bob", "lastname": "Bad", "emailaddress1": "bob@example.com", "jobtitle": "Clerk"}


@dataclass
class Console:
    """The product under test and where its console is."""

    stack: LocalStack
    ada: str  # lead ids
    bob: str
    key: str = KEY

    @property
    def base(self) -> str:
        return self.stack.host.url

    def url(self, page: str = "", *, key: str | None = KEY, **params: str) -> str:
        query = {**params, **({"code": key} if key else {})}
        path = f"/api/console/{page}" if page else "/api/console"
        return f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"x-functions-key": self.key, **kw.pop("headers", {})}
        return httpx.request(method, f"{self.base}/api/{path}", headers=headers, timeout=10, **kw)

    def settle(self) -> None:
        assert self.stack.drain(20), "the queue did not drain"


@pytest.fixture(scope="module")
def console() -> Iterator[Console]:
    """Two leads synced to Marketo; Bob's title then set in Marketo too long for Dynamics: one sync error.

    One product per module, not per session: its services are the process's (``shared.services.install``) and its
    host keeps pumping its queues, so it must not outlive the module while a worker goes on to other modules'
    stacks."""
    with running_stack(overrides={"LOCAL_FUNCTIONS_KEY": KEY}) as stack:
        tenants = stack.tenants
        assert tenants is not None
        ada = tenants.user_create("lead", **ADA)
        bob = tenants.user_create("lead", **BOB)
        assert stack.drain(20)
        (person,) = tenants.marketo.find_leads("email", "bob@example.com")
        tenants.marketo.change_lead(person["id"], title="x" * 150)  # the lead's jobtitle holds 100
        assert stack.drain(20)
        yield Console(stack, ada, bob)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh context in a fixed time zone and language; any script error or CSP violation fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB", timezone_id="Europe/Paris")
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    problems: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(message.text)

    opened.on("console", seen)
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    yield opened
    context.close()
    assert problems == []
