"""Between ``azure.functions`` HTTP objects and the product's :class:`Reply` values."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.errors import SyncError
from shared.pipeline.webhooks import Reply, problem

log = logging.getLogger(__name__)


def respond(reply: Reply) -> func.HttpResponse:
    return func.HttpResponse(
        reply.encoded(), status_code=reply.status, headers=dict(reply.headers), mimetype=reply.content_type
    )


def failure(exc: Exception) -> func.HttpResponse:
    """An unexpected failure still answers with JSON naming the kind of problem, never a stack trace."""
    if isinstance(exc, SyncError):
        log.warning("request failed: %s", exc)
        return respond(problem(503, exc.code or "unavailable", str(exc), **{"Retry-After": "30"}))
    log.exception("request failed")
    return respond(problem(500, "internal", f"unexpected {type(exc).__name__}; see the function logs"))
