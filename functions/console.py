"""The admin console in the browser: its pages (behind the function key) and its static scripts and stylesheet.

Every page is the same HTML shell (``shared/console``) naming the page; its scripts read the key from the page's
``?code=`` and send it as the ``x-functions-key`` header on every call, and keep ``?code=`` on every link. The
assets hold no data and no key, so they are served without one (a ``<script src>`` cannot send a header, and a
key in the page's markup would be one more place for it to leak from). Every answer forbids other origins' scripts
and frames (``Content-Security-Policy``) and MIME sniffing; pages are never cached, assets are revalidated.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import quote, urlsplit

import azure.functions as func

from functions.http import answers_errors
from shared import console
from shared.errors import NotFound

bp = func.Blueprint()

DEFAULT_PREFIX = "/api"  # host.json sets no routePrefix
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's URL carries the key
    "X-Frame-Options": "DENY",
}


def route_prefix(req: func.HttpRequest, route: str) -> str:
    """The path the Functions host serves routes under (``/api`` unless host.json says otherwise), from the path
    this request came in on: ``route`` is the route it matched, with its parameters filled in."""
    path = urlsplit(req.url).path.rstrip("/")
    suffix = "/" + route.strip("/")
    return path[: -len(suffix)] if path.endswith(suffix) else DEFAULT_PREFIX


def console_location(req: func.HttpRequest, route: str, page: str = "status") -> str:
    """Where the console's page is, absolute from the route prefix, keeping a ``?code=`` key the request had."""
    location = f"{route_prefix(req, route)}/console/{page}"
    key = req.params.get("code")
    return f"{location}?code={quote(key, safe='')}" if key else location


def _page(req: func.HttpRequest, name: str, route: str) -> func.HttpResponse:
    text = console.page(name, route_prefix(req, route))
    if text is None:
        raise NotFound(f"the console has no page by this name; its pages: {', '.join(console.PAGES)}")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return func.HttpResponse(text, status_code=HTTPStatus.OK, headers=headers, mimetype="text/html", charset="utf-8")


@bp.route(route="console", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def console_home(req: func.HttpRequest) -> func.HttpResponse:
    return _page(req, "status", "console")


@bp.route(route="console/{page}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def console_page(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("page", "")
    return _page(req, name, f"console/{name}")


@bp.route(route="console/assets/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_errors
def console_asset(req: func.HttpRequest) -> func.HttpResponse:
    found = console.asset(req.route_params.get("name", ""))
    if found is None:
        raise NotFound("the console has no asset by this name")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": found.etag}
    if found.etag in (req.headers.get("if-none-match") or ""):
        return func.HttpResponse(status_code=HTTPStatus.NOT_MODIFIED, headers=headers)
    return func.HttpResponse(
        found.body, status_code=HTTPStatus.OK, headers=headers, mimetype=found.media_type, charset="utf-8"
    )
