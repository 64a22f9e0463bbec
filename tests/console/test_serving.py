"""How the console is served: behind the function key, from the route prefix, with its headers, and nothing else
(an unknown page or asset is a 404 in the product's shape; no path leaves the console's folder)."""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from shared import console as files
from tests.console.conftest import KEY, Console


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]  # names in lower case
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


def get(
    console: Console, path: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """A plain GET, redirects not followed. http.client logs nothing (httpx would log each URL, ``?code=`` key
    and all, and the log guard rightly fails a test whose log holds the key)."""
    where = urlsplit(console.base)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=10)
    try:
        connection.request("GET", path + (f"?{urlencode(params)}" if params else ""), headers=headers or {})
        answer = connection.getresponse()
        return Answer(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/api/console", "/api/console/", "/api/console/status", "/api/console/errors"])
def test_a_page_needs_the_key_and_comes_with_its_headers(console: Console, path: str) -> None:
    refused = get(console, path)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert get(console, path, params={"code": "wrong"}).status_code == 401
    page = get(console, path, params={"code": KEY})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert KEY not in page.text  # the key stays in the address; the markup never holds it
    assert get(console, path, headers={"x-functions-key": KEY}).status_code == 200


def test_the_page_holds_no_inline_script_or_style_and_links_from_the_route_prefix(console: Console) -> None:
    text = get(console, "/api/console/fields", params={"code": KEY}).text
    assert re.findall(r"<script[^>]*>", text) == ['<script type="module" src="/api/console/assets/console.js">']
    assert "<style" not in text
    assert " style=" not in text
    assert " on" not in re.sub(r"<meta[^>]*>", "", text).replace("<noscript>", "")  # no onclick= and the like
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', text)
    assert hrefs
    assert all(h.startswith("/api/console/") for h in hrefs), hrefs
    assert '<meta name="console-page" content="fields">' in text


@pytest.mark.parametrize(
    ("name", "media"),
    [
        ("console.js", "text/javascript"),
        ("status.js", "text/javascript"),
        ("console.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_without_the_key_with_type_and_revalidation(console: Console, name: str, media: str) -> None:
    answer = get(console, f"/api/console/assets/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.content == (files.HERE / name).read_bytes()
    again = get(console, f"/api/console/assets/{name}", headers={"if-none-match": answer.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


def test_every_asset_the_scripts_import_is_served(console: Console) -> None:
    """console.js imports the pages, they import the helpers: every import names a file that is served."""
    names = {p.name for p in files.HERE.glob("*.js")}
    for name in names:
        for imported in re.findall(r'from "\./([^"]+)"', (files.HERE / name).read_text()):
            assert imported in names, f"{name} imports {imported}"
    for name in names:
        assert get(console, f"/api/console/assets/{name}").status_code == 200


def test_no_script_writes_markup(console: Console) -> None:
    """Values go in as text: no innerHTML, outerHTML, insertAdjacentHTML or document.write anywhere."""
    for path in files.HERE.glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, f"{path.name} uses {sink}"


@pytest.mark.parametrize(
    "path",
    [
        "/api/console/nope",
        "/api/console/assets/nope.js",
        "/api/console/assets/shell.html",
        "/api/console/assets/__init__.py",
        "/api/console/assets/..%2F__init__.py",
        "/api/console/assets/%2e%2e%2fconsole.py",
        "/api/console/assets/.console.js",
        "/api/console/assets/CONSOLE.JS",
    ],
)
def test_an_unknown_page_or_asset_is_a_404_and_no_path_leaves_the_folder(console: Console, path: str) -> None:
    answer = get(console, path, params={"code": KEY})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not-found"


def test_the_asset_reader_takes_plain_names_only() -> None:
    for name in ("../functions/console.py", "/etc/passwd", "a/b.js", "..", "", "console.js\x00", "x" * 100 + ".js"):
        assert files.asset(name) is None
    assert files.asset("console.css") is not None
    assert files.page("nope", "/api") is None


def test_the_html_status_redirects_to_the_console_keeping_the_key(console: Console) -> None:
    moved = get(console, "/api/status", params={"format": "html", "code": KEY})
    assert moved.status_code == 302
    assert moved.headers["location"] == f"/api/console/status?code={KEY}"
    browser_like = get(console, "/api/status", headers={"x-functions-key": KEY, "accept": "text/html,*/*"})
    assert (browser_like.status_code, browser_like.headers["location"]) == (302, "/api/console/status")
    assert get(console, "/api/status", headers={"x-functions-key": KEY}).json()["entities"]
    assert get(console, "/api/status", params={"format": "html"}).status_code == 401
