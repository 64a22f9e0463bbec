"""What admins see and do: the Sync Status view, the Sync Errors view (list, export, retry), pause and resume,
and the explicit "sync person to Dynamics" action."""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.mapping import FieldType
from shared.core.values import ConversionError, from_marketo, to_dynamics
from shared.errors import Conflict, SyncError
from shared.pipeline.feeds import timer_checkpoint
from shared.pipeline.marketo_side import person_fields, read_persons
from shared.pipeline.notification import Notification, Source
from shared.pipeline.quicksync import quick_sync_status
from shared.pipeline.reconcile import notification_message
from shared.pipeline.webhooks import Reply, problem
from shared.services import Services
from shared.store.model import ErrorStatus, Link, SyncErrorRecord

TIMERS = ("marketo_feed", "dataverse_catchup", "quick_sync")


def status(services: Services, *, now: datetime | None = None) -> dict[str, Any]:
    """Per entity: backlog, oldest pending change, the last hour's throughput, errors and collisions."""
    moment = now or datetime.now(UTC)
    store = services.store
    queue = services.settings.changes_queue
    pending = services.observer.pending(queue) if services.observer else []
    backlog: dict[str, int] = defaultdict(int)
    oldest: dict[str, datetime] = {}
    for item in pending:
        backlog[item.entity] += 1
        if item.entity not in oldest or item.enqueued_at < oldest[item.entity]:
            oldest[item.entity] = item.enqueued_at
    hour = store.counts_since(moment - timedelta(hours=1))
    open_errors: dict[str, int] = defaultdict(int)
    for error in store.list_errors(status=ErrorStatus.OPEN, limit=100_000):
        open_errors[error.entity] += 1
    pause = store.get_pause()
    entities = []
    for mapping in services.mapping.entities:
        counts = hour.get(mapping.entity, {})
        first = oldest.get(mapping.entity)
        entities.append(
            {
                "entity": mapping.entity,
                "direction": mapping.direction.value,
                "paused": pause.is_paused(mapping.entity),
                "backlog": backlog.get(mapping.entity, 0),
                "oldest_pending": first.isoformat() if first else None,
                "oldest_pending_age_s": round((moment - first).total_seconds(), 1) if first else None,
                "synced_last_hour": counts.get("synced", 0),
                "changes_last_hour": counts.get("changes", 0),
                "errors_last_hour": counts.get("errors", 0),
                "open_errors": open_errors.get(mapping.entity, 0),
                "collisions_last_hour": {
                    "marketo_won": counts.get("collisions_marketo_won", 0),
                    "dynamics_won": counts.get("collisions_dynamics_won", 0),
                },
                "broken_fields": [f.dynamics for f in mapping.fields if f.state.value == "broken"],
            }
        )
    timers = {}
    for name in TIMERS:
        checkpoint = store.get_checkpoint(timer_checkpoint(name))
        timers[name] = checkpoint.value if checkpoint else None
    unresolved = backlog.get("person", 0)
    return {
        "generated_at": moment.isoformat(),
        "paused": pause.all,
        "queue": {
            "name": queue,
            "pending": len(pending),
            "unresolved_person_notifications": unresolved,
            "dead_lettered": services.observer.dead_lettered(queue) if services.observer else None,
        },
        "entities": entities,
        "timers": timers,
        "quick_sync": quick_sync_status(services),
    }


def status_html(data: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return f"<td>{html.escape('' if value is None else str(value))}</td>"

    rows = "".join(
        "<tr>"
        + "".join(
            cell(e[k]) for k in ("entity", "direction", "paused", "backlog", "oldest_pending_age_s", "synced_last_hour")
        )
        + cell(e["errors_last_hour"])
        + cell(e["open_errors"])
        + cell(
            f"Marketo {e['collisions_last_hour']['marketo_won']} / Dynamics {e['collisions_last_hour']['dynamics_won']}"
        )
        + cell(", ".join(e["broken_fields"]) or "-")
        + "</tr>"
        for e in data["entities"]
    )
    timers = "".join(f"<li>{html.escape(k)}: {html.escape(str(v or 'never'))}</li>" for k, v in data["timers"].items())
    queue = data["queue"]
    quick = (
        "".join(
            f"<li>{html.escape(str(j.get('entity')))}.{html.escape(str(j.get('column')))}: "
            f"{html.escape(str(j.get('state')))}, {j.get('records_done', 0)} records"
            f"{' - ' + html.escape(str(j['notice'])) if j.get('notice') else ''}</li>"
            for j in data.get("quick_sync", [])
        )
        or "<li>none</li>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sync status</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}th{{background:#f4f4f4}}</style></head>
<body><h1>Dynamics 365 &harr; Marketo sync</h1>
<p>{"<strong>The whole sync is paused.</strong> " if data["paused"] else ""}Generated {html.escape(data["generated_at"])}.
Queue <code>{html.escape(queue["name"])}</code>: {queue["pending"]} pending, {queue["dead_lettered"] or 0} dead-lettered.</p>
<table><tr><th>Entity</th><th>Direction</th><th>Paused</th><th>Backlog</th><th>Oldest pending (s)</th>
<th>Synced (1 h)</th><th>Errors (1 h)</th><th>Open errors</th><th>Collisions won (1 h)</th><th>Broken fields</th></tr>
{rows}</table>
<h2>Timers, last run</h2><ul>{timers}</ul>
<h2>Quick Sync</h2><ul>{quick}</ul>
<p><a href="errors">Sync errors</a> &middot; <a href="errors.csv">export CSV</a></p>
</body></html>"""


def list_errors(services: Services, params: dict[str, str]) -> Reply:
    try:
        state = ErrorStatus(params["status"]) if params.get("status") else None
        limit = int(params.get("limit", "500"))
    except ValueError as exc:
        return problem(400, "bad-query", str(exc))
    errors = services.store.list_errors(entity=params.get("entity"), status=state, search=params.get("q"), limit=limit)
    return Reply(200, {"count": len(errors), "errors": [e.as_row() for e in errors]})


def export_errors(services: Services, params: dict[str, str]) -> Reply:
    errors = services.store.list_errors(entity=params.get("entity"), search=params.get("q"), limit=100_000)
    out = io.StringIO()
    columns = [
        "id",
        "occurred_at",
        "entity",
        "record_id",
        "operation",
        "direction",
        "field",
        "code",
        "message",
        "status",
        "attempts",
    ]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for error in errors:
        writer.writerow(error.as_row())
    return Reply(200, out.getvalue(), {"Content-Disposition": 'attachment; filename="sync-errors.csv"'}, "text/csv")


def retry_error(services: Services, error_id: str) -> Reply:
    """Put the failed record back on the queue; it is re-read and decided afresh."""
    error = services.store.get_error(error_id)
    if error is None:
        return problem(404, "not-found", f"no sync error '{error_id}'")
    return _retry(services, [error])


def retry_open_errors(services: Services, params: dict[str, str]) -> Reply:
    errors = services.store.list_errors(entity=params.get("entity"), status=ErrorStatus.OPEN, limit=10_000)
    return _retry(services, errors)


def _retry(services: Services, errors: list[SyncErrorRecord]) -> Reply:
    notes = {}
    for error in errors:
        if error.entity in services.mapping.by_entity and error.record_id:
            notes[(error.entity, error.record_id)] = Notification(
                source=Source.ADMIN_RETRY,
                entity=error.entity,
                dynamics_id=error.record_id,
                dedupe_key=f"retry:{error.id}:{datetime.now(UTC).isoformat()}",
            )
    try:
        services.queue.send(services.settings.changes_queue, [notification_message(n) for n in notes.values()])
    except SyncError as exc:
        return problem(503, "queue-unavailable", f"could not queue the retry: {exc}")
    for error in errors:
        services.store.set_error_status(error.id, ErrorStatus.RETRYING)
    return Reply(202, {"status": "queued", "records": len(notes), "errors": [e.id for e in errors]})


def set_pause(services: Services, params: dict[str, str], *, paused: bool) -> Reply:
    entity = params.get("entity") or None
    if entity is not None and entity not in services.mapping.by_entity:
        return problem(404, "not-found", f"entity '{entity}' is not in the sync mapping")
    state = services.store.set_pause(entity, paused)
    return Reply(200, {"paused_all": state.all, "paused_entities": sorted(state.entities)})


def sync_person_to_dynamics(services: Services, marketo_id: str) -> Reply:
    """Marketo's "Sync Person to Microsoft": create a Dynamics lead for an unlinked person; no-op when linked."""
    if not marketo_id.isdigit():
        return problem(400, "bad-id", f"'{marketo_id}' is not a Marketo lead id")
    store = services.store
    linked = store.find_by_marketo("lead", marketo_id)
    if linked is not None:
        return Reply(200, {"status": "already linked", "entity": linked.entity, "id": linked.dynamics_id})
    mapping = services.mapping.get("lead")
    person = read_persons(services.marketo, [marketo_id], person_fields(mapping)).get(marketo_id)
    if person is None:
        return problem(404, "not-found", f"Marketo has no person {marketo_id}")
    values: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    problems = []
    for f in mapping.live_fields:
        if not f.to_dynamics_allowed or f.type is FieldType.LOOKUP or f.marketo not in person:
            continue
        canonical = from_marketo(f, person[f.marketo])
        wire = canonical if isinstance(canonical, ConversionError) else to_dynamics(f, canonical)
        if isinstance(wire, ConversionError):
            problems.append(str(wire))
            continue
        if canonical is not None:
            values[f.dynamics] = wire
        baseline[f.dynamics] = canonical
    if problems:
        return problem(422, "unconvertible", "; ".join(problems))
    lead_id = services.dataverse.create("lead", values)
    with suppress(Conflict):  # the webhook for the new lead got there first; its link is as good
        store.save_link(Link("lead", lead_id, marketo_id, baseline, synced_at=datetime.now(UTC)))
    services.marketo.sync_leads(
        [{"id": int(marketo_id), mapping.marketo_link_field: lead_id}], action="updateOnly", lookup_field="id"
    )
    return Reply(201, {"status": "created", "entity": "lead", "id": lead_id})
