"""Entities added and removed at runtime: ``/api/mapping/entities`` (see ``shared/pipeline/entities_admin.py``)."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import azure.functions as func

from functions.http import answers_errors, json_answer
from shared.pipeline import entities_admin
from shared.pipeline.quicksync.nudge import nudge
from shared.services import services

bp = func.Blueprint()


@bp.route(route="mapping/entities", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_entities(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    return json_answer(HTTPStatus.OK, entities_admin.list_entities(svc.store, svc.live_mapping, svc.clock()))


@bp.route(route="mapping/entities", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_add_entity(req: func.HttpRequest) -> func.HttpResponse:
    """202 with the entity (state ``initial_sync``) and its initial sync job, which starts once every instance has
    refreshed its mapping (``SYNC_MAPPING_REFRESH_SECONDS``): the nudge is scheduled for then."""
    svc = services()
    settle = timedelta(seconds=svc.settings.mapping_refresh_seconds)
    added = entities_admin.add_entity(
        req.get_body(),
        store=svc.store,
        dataverse=svc.dataverse,
        marketo=svc.marketo,
        mapping=svc.live_mapping,
        sync_user_id=lambda: svc.sync_user_id,
        now=svc.clock(),
        settle=settle,
    )
    nudge(svc.queue, svc.settings.quick_sync_queue, added.job.id, now=svc.clock(), delay=settle or None)
    return json_answer(HTTPStatus.ACCEPTED, added.view(svc.clock()))


@bp.route(route="mapping/entities/{entity}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def mapping_remove_entity(req: func.HttpRequest) -> func.HttpResponse:
    """200 once removed; 404 when the entity is not in the mapping (a second removal too)."""
    svc = services()
    removed = entities_admin.remove_entity(
        req.route_params["entity"], store=svc.store, mapping=svc.live_mapping, now=svc.clock()
    )
    return json_answer(HTTPStatus.OK, removed.view())
