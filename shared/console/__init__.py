"""The admin console's static files: one HTML shell for every page, its stylesheet and its scripts.

Hand-written HTML, CSS and vanilla JavaScript, no external asset: ``functions/console.py`` serves them under
``/api/console``. The shell is filled in here (the route prefix and the page's name, escaped); the scripts read
every value from the API and put it on the page as text, never as markup.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent

PAGES: dict[str, str] = {
    "status": "Status",
    "errors": "Sync errors",
    "record": "Record",
    "fields": "Fields",
    "jobs": "Jobs",
    "deadletters": "Dead letters",
}
"""The console's pages by the name in their path, with the title people read."""

MEDIA_TYPES: dict[str, str] = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
"""By extension; each is UTF-8 text."""
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(?:js|css|svg)")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@functools.cache
def asset(name: str) -> Asset | None:
    """A script, stylesheet or icon of the console by its file name; None for any other name (no path: the name
    must be a plain file name of this folder, so ``..`` or ``a/b`` never reaches the file system)."""
    if not _ASSET_NAME.fullmatch(name):
        return None
    path = HERE / name
    if not path.is_file():
        return None
    body = path.read_bytes()
    return Asset(body, MEDIA_TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@functools.cache
def _shell() -> Template:
    return Template((HERE / "shell.html").read_text(encoding="utf-8"))


def page(name: str, base: str) -> str | None:
    """The HTML of one page (None for a name that is no page); ``base`` is the route prefix, e.g. ``/api``."""
    title = PAGES.get(name)
    if title is None:
        return None
    return _shell().substitute(base=html.escape(base), page=html.escape(name), title=html.escape(title))
