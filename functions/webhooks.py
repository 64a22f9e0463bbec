"""Changes in: the Dataverse webhook (plugin step) and the Marketo "Call Webhook" flow step.

Anonymous at the host: each checks its own shared secret in constant time (Dataverse may also send it as the
``?code=`` of a WebhookKey registration), so the same code is secure under any host. A call is answered 202 once
its notification is on the queue and 200 when it needs no sync, so the sender does not retry either.
"""

from __future__ import annotations

from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from shared.pipeline import webhooks
from shared.pipeline.intake import Ignored
from shared.services import services
from shared.telemetry import traced_http

bp = func.Blueprint()


def _call(req: func.HttpRequest) -> webhooks.WebhookCall:
    return webhooks.WebhookCall(dict(req.headers), dict(req.params), req.get_body())


def _answer(outcome: webhooks.Queued | Ignored) -> func.HttpResponse:
    if isinstance(outcome, Ignored):
        return json_answer(HTTPStatus.OK, {"status": "ignored", "reason": outcome.reason})
    return json_answer(HTTPStatus.ACCEPTED, {"status": "queued", "messageId": outcome.message_id})


@bp.route(route="dataverse/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@traced_http
@answers_errors
def dataverse_webhook(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    outcome = webhooks.dataverse_webhook(
        _call(req),
        settings=svc.settings,
        mapping=svc.mapping,
        sync_user_id=svc.known_sync_user_id,
        queue=svc.changes,
    )
    return _answer(outcome)


@bp.route(route="marketo/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@traced_http
@answers_errors
def marketo_webhook(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    outcome = webhooks.marketo_webhook(
        _call(req), settings=svc.settings, mapping=svc.mapping, store=svc.store, queue=svc.changes
    )
    return _answer(outcome)
