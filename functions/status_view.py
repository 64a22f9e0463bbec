"""What the status endpoint hands the pipeline's status view: the timers' schedules and the services' budgets."""

from __future__ import annotations

from typing import Any

from shared.pipeline import status
from shared.services import Services
from shared.settings import Settings


def timer_schedules(settings: Settings) -> dict[str, str]:
    """Every timer trigger's NCRONTAB, by function name (the same settings the bindings name)."""
    return {
        "marketo_feed": settings.marketo_feed_schedule,
        "dataverse_catchup": settings.dataverse_catchup_schedule,
        "quick_sync": settings.quick_sync_schedule,
        "pending_sweep": settings.pending_sweep_schedule,
        "verify_sweep": settings.verify_sweep_schedule,
        "history_prune": settings.history_prune_schedule,
        "flow_steps_sweep": settings.pending_sweep_schedule,  # the flow-step runs' sweep keeps the pending sweep's
    }


def status_data(svc: Services, entity: str | None) -> dict[str, Any]:
    """``GET /api/status[?entity=]``: NotFound for an entity the mapping lacks (before any service is asked)."""
    now = svc.clock()
    mapping = svc.mapping
    if entity and entity not in mapping.by_entity:
        return status.status(svc.store, mapping, None, svc.settings.changes_queue, now=now, entity=entity)
    limits = status.budgets(
        svc.marketo,
        svc.dataverse,
        calls_per_20s=svc.settings.marketo_calls_per_20s,
        daily_quota=svc.settings.marketo_daily_quota,
        marketo_available=status.marketo_available(svc.store, now),
    )
    return status.status(
        svc.store,
        mapping,
        svc.observer,
        svc.settings.changes_queue,
        now=now,
        entity=entity or None,
        schedules=timer_schedules(svc.settings),
        limits=limits,
    )
