"""Changes in: the Dataverse webhook (plugin step) and the Marketo "Call Webhook" flow step.

Anonymous at the host: each checks its own shared secret in constant time (Dataverse may also send it as the
``?code=`` of a WebhookKey registration), so the same code is secure under any host.
"""

from __future__ import annotations

import azure.functions as func

from functions.http import failure, respond
from shared.pipeline import webhooks
from shared.services import services

bp = func.Blueprint()


@bp.route(route="dataverse/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def dataverse_webhook(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(webhooks.dataverse_webhook(services(), dict(req.headers), dict(req.params), req.get_body()))
    except Exception as exc:
        return failure(exc)


@bp.route(route="marketo/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def marketo_webhook(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return respond(webhooks.marketo_webhook(services(), dict(req.headers), req.get_body()))
    except Exception as exc:
        return failure(exc)
