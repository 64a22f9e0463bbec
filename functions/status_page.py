"""The Sync Status view as an HTML page (``GET /api/status?format=html``), from the data ``admin.status`` returns.

Every value is escaped: entity names, field names, notices and error text all come from data, not from us.
"""

from __future__ import annotations

import html
from typing import Any


def status_page(data: dict[str, Any]) -> str:
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
    services = data.get("services", {})
    notices = "".join(
        f"<p class=outage><strong>{html.escape(str(s['notice']))}</strong></p>"
        for s in services.values()
        if s.get("notice")
    )
    pending = data.get("pending", {})
    waiting = (
        f"Pending records: {pending.get('total', 0)} ({pending.get('due', 0)} due for the sweep, "
        f"{pending.get('parked', 0)} given up: see the sync errors)."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sync status</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}th{{background:#f4f4f4}}</style></head>
<body><h1>Dynamics 365 &harr; Marketo sync</h1>
{notices}<p>{html.escape(waiting)}</p>
<p>{"<strong>The whole sync is paused.</strong> " if data["paused"] else ""}Generated {html.escape(data["generated_at"])}.
Queue <code>{html.escape(queue["name"])}</code>: {queue["pending"]} pending, {queue["dead_lettered"] or 0} dead-lettered.</p>
<table><tr><th>Entity</th><th>Direction</th><th>Paused</th><th>Backlog</th><th>Oldest pending (s)</th>
<th>Synced (1 h)</th><th>Errors (1 h)</th><th>Open errors</th><th>Collisions won (1 h)</th><th>Broken fields</th></tr>
{rows}</table>
<h2>Timers, last run</h2><ul>{timers}</ul>
<h2>Quick Sync</h2><ul>{quick}</ul>
<p><a href="errors">Sync errors</a> &middot; <a href="errors.csv">export CSV</a></p>
</body></html>"""
