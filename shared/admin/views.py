"""What each command prints: the app's JSON answers as lines for a terminal.

Every view reads the answer defensively (``.get`` with a default): the CLI may talk to an app one version older
or newer than itself, and a key it does not know is left out rather than breaking the command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.admin.progress import Measure
from shared.admin.render import age, cell, direction, duration, table, when


def _paused(data: dict[str, Any]) -> str:
    paused_all = data.get("paused_all", data.get("paused"))
    entities = data.get("paused_entities") or sorted(e["entity"] for e in data.get("entities", []) if e.get("paused"))
    if paused_all:
        return "ALL paused"
    return "paused: " + ", ".join(entities) if entities else "running"


def status_lines(data: dict[str, Any], now: datetime | None = None) -> list[str]:
    moment = now or datetime.now(UTC)
    lines = [f"Sync status at {when(data.get('generated_at'))}: {_paused(data)}", ""]
    rows = []
    for e in data.get("entities", []):
        collisions = e.get("collisions_last_hour") or {}
        rows.append(
            [
                e.get("entity"),
                direction(e.get("direction")),
                "PAUSED" if e.get("paused") else "",
                e.get("backlog_records", e.get("backlog")),
                age(e.get("oldest_pending"), moment),
                e.get("synced_last_hour"),
                e.get("failed_last_hour", e.get("errors_last_hour")),
                e.get("open_errors"),
                f"{collisions.get('marketo_won', 0)}/{collisions.get('dynamics_won', 0)}",
                sparkline(e.get("trend_24h")),
            ]
        )
    headers = ["ENTITY", "DIRECTION", "PAUSED", "BACKLOG", "OLDEST PENDING", "SYNCED 1H", "FAILED 1H", "OPEN ERRORS"]
    lines += table([*headers, "COLLISIONS 1H (MKTO/D365 WON)", "SYNCED PER HOUR, 24H"], rows)
    lines += _services(data.get("services"))
    lines += _budgets(data.get("budgets"))
    lines += _timers(data.get("timers"))
    lines += _jobs(data.get("jobs", data.get("quick_sync")))
    lines += _dead_letters(data.get("dead_letters"), data.get("queue"))
    return lines


def _services(services: Any) -> list[str]:
    if not isinstance(services, dict) or not services:
        return []
    lines = ["", "Services"]
    for name, s in services.items():
        if not isinstance(s, dict) or s.get("available", True):
            lines.append(f"  {name:<10} available")
        else:
            lines.append(f"  {name:<10} UNAVAILABLE: {s.get('notice') or s.get('reason') or ''}".rstrip())
            if s.get("next_probe_at"):
                lines.append(f"  {'':<10} next probe {when(s['next_probe_at'])}")
    return lines


BUDGET_PAIRS = (
    ("calls_last_20s", "limit_20s", "calls in the last 20 s"),
    ("requests_last_5min", "requests_limit_5min", "requests in the last 5 min"),
    ("in_flight", "concurrency_limit", "in flight"),
)


def _budget(b: dict[str, Any]) -> str:
    parts = [f"{cell(b.get(used))}/{cell(b.get(limit))} {words}" for used, limit, words in BUDGET_PAIRS if limit in b]
    if "daily_limit" in b:
        parts.append(
            f"{cell(b.get('daily_used'))}/{cell(b.get('daily_limit'))} today ({cell(b.get('daily_left'))} left)"
        )
    return ", ".join(parts) or "-"


def _budgets(budgets: Any) -> list[str]:
    if not isinstance(budgets, dict) or not budgets:
        return []
    return ["", "Budgets", *(f"  {name:<10} {_budget(b)}" for name, b in budgets.items() if isinstance(b, dict))]


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(trend: Any, key: str = "synced") -> str:
    """The 24-hour trend as one character an hour, oldest first (a dot: nothing that hour)."""
    if not isinstance(trend, list) or not trend:
        return ""
    values = [int(h.get(key) or 0) if isinstance(h, dict) else 0 for h in trend]
    top = max(values) or 1
    return "".join("·" if not v else SPARKS[min(len(SPARKS) - 1, (v * len(SPARKS) - 1) // top)] for v in values)


def _timers(timers: Any) -> list[str]:
    if not isinstance(timers, dict) or not timers:
        return []
    rows = []
    for name, value in timers.items():
        t = value if isinstance(value, dict) else {"last_run": value}
        rows.append([name, when(t.get("last_run")), when(t.get("next_run")), t.get("schedule")])
    return ["", "Timers", *("  " + line for line in table(["TIMER", "LAST RUN", "NEXT RUN", "SCHEDULE"], rows))]


def job_rows(jobs: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for j in jobs:
        figures = Measure(lambda: 0.0).figures(j)
        what = f"{j.get('entity')}.{j['column']}" if j.get("column") else j.get("entity")
        kind = j.get("kind") or ("quick_sync" if j.get("column") else "")
        pct = f"{figures.percent:.0f}%" if figures.percent is not None else ""
        rows.append([j.get("id"), kind, what, j.get("state"), figures.counts(), pct, duration(figures.eta)])
    return rows


JOB_HEADERS = ["JOB", "KIND", "WHAT", "STATE", "DONE/TOTAL", "%", "ETA"]


def _jobs(jobs: Any) -> list[str]:
    if not isinstance(jobs, list) or not jobs:
        return []
    active = [j for j in jobs if j.get("state") in ("queued", "running")]
    shown = active or jobs[:5]
    title = "Jobs (queued or running)" if active else "Jobs (latest)"
    return ["", title, *("  " + line for line in table(JOB_HEADERS, job_rows(shown)))]


def _dead_letters(dead: Any, queue: Any) -> list[str]:
    lines = []
    if isinstance(queue, dict):
        lines += ["", f"Queue {queue.get('name')}: {cell(queue.get('pending'))} messages waiting"]
    if isinstance(dead, dict):
        oldest = dead.get("oldest") or {}
        why = f" (oldest: {oldest.get('reason')}, {when(oldest.get('enqueued_at'))})" if oldest else ""
        lines.append(f"Dead letters: {dead.get('count', 0)}{why}")
    elif isinstance(dead, int):
        lines.append(f"Dead letters: {dead}")
    return lines


def error_lines(data: dict[str, Any]) -> list[str]:
    errors = data.get("errors", [])
    rows = [
        [
            e.get("id"),
            e.get("entity"),
            e.get("label") or e.get("record_id"),
            direction(e.get("direction")),
            e.get("field"),
            e.get("code"),
            e.get("status"),
            e.get("count"),
            when(e.get("last_seen")),
            e.get("message"),
        ]
        for e in errors
    ]
    headers = ["ID", "ENTITY", "RECORD", "DIRECTION", "FIELD", "CODE", "STATUS", "SEEN", "LAST SEEN", "MESSAGE"]
    return [*table(headers, rows, widest=48), f"{data.get('count', len(errors))} error(s)"]


def field_lines(entity: dict[str, Any]) -> list[str]:
    rows = []
    for f in entity.get("fields", []):
        quick = f.get("quick_sync") or {}
        progress = f"{quick.get('state')} {quick.get('records_done', 0)} done" if quick else ""
        one_way = f.get("one_way") or f.get("type") == "lookup" or entity.get("direction") == "dynamics_to_marketo"
        rows.append([f.get("dynamics"), f.get("marketo"), f.get("type"), "one way" if one_way else "both ways",
                     f.get("state"), progress])  # fmt: skip
    title = f"{entity.get('entity')} -> Marketo {entity.get('marketo_object')} ({direction(entity.get('direction'))})"
    headers = ["COLUMN", "MARKETO FIELD", "TYPE", "FLOWS", "STATE", "QUICK SYNC"]
    return [title, *table(headers, rows), f"{len(rows)} field(s)"]


def catalogue_lines(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            c.get("column"),
            c.get("label"),
            c.get("type"),
            c.get("marketo") if c.get("mapped") else "",
            c.get("readable"),
            c.get("writable"),
            c.get("valid_for_sync"),
            c.get("reason"),
        ]
        for c in data.get("columns", [])
    ]
    headers = ["COLUMN", "LABEL", "TYPE", "MAPPED TO", "READABLE", "WRITABLE", "SYNCABLE", "WHY NOT"]
    total, mapped = (
        data.get("count", len(rows)),
        data.get("mapped", sum(1 for c in data.get("columns", []) if c.get("mapped"))),
    )
    return [f"Columns of {data.get('entity')}", *table(headers, rows, widest=80), f"{total} column(s), {mapped} mapped"]


def dead_letter_lines(page: dict[str, Any]) -> list[str]:
    rows = []
    for d in page.get("items", []):
        n = d.get("notification") or {}
        rows.append([d.get("id"), d.get("sequence_number"), when(d.get("enqueued_at")), d.get("delivery_count"),
                     d.get("reason"), n.get("entity") if n.get("readable") else "(unreadable)",
                     n.get("record_id") or n.get("marketo_id")])  # fmt: skip
    lines = [*table(["ID", "SEQ", "ENQUEUED", "DELIVERIES", "REASON", "ENTITY", "RECORD"], rows)]
    lines.append(f"{page.get('count', len(rows))} dead letter(s) on {page.get('queue')}")
    if page.get("next_after") is not None:
        lines.append(f"more: --after {page['next_after']}")
    return lines


def record_lines(data: dict[str, Any]) -> list[str]:
    r = data.get("record", {})
    lines = [
        f"{r.get('entity')} {r.get('label') or ''}".rstrip(),
        f"  Dynamics id  {cell(r.get('dynamics_id'))}   {r.get('dynamics_url') or ''}".rstrip(),
        f"  Marketo id   {cell(r.get('marketo_id'))}   {r.get('marketo_url') or ''}".rstrip(),
        f"  linked {cell(r.get('linked'))}, last synced {when(r.get('synced_at'))}",
    ]
    history = data.get("history", [])
    lines += ["", f"History ({len(history)} decision(s), newest first)"]
    for entry in history:
        trigger = entry.get("trigger") or {}
        source = " ".join(str(trigger[k]) for k in ("source", "side") if trigger.get(k))
        reason = f": {entry['reason']}" if entry.get("reason") else ""
        lines.append(f"  {when(entry.get('at'))}  {entry.get('action')}{reason}  (triggered by {source or '-'})")
        fields = entry.get("fields", [])
        shown = [f for f in fields if any(_held(f.get(k)) for k in ("dynamics", "marketo", "baseline", "value"))]
        rows = [
            [f.get("field"), f.get("action"), f.get("dynamics"), f.get("marketo"), f.get("baseline"), f.get("value"),
             f.get("winner"), f.get("reason") if f.get("reason") != entry.get("reason") else ""]
            for f in shown
        ]  # fmt: skip
        if rows:
            headers = ["FIELD", "ACTION", "DYNAMICS", "MARKETO", "BASELINE", "WRITTEN", "WINNER", "REASON"]
            lines += ["    " + line for line in table(headers, rows, widest=32)]
        if len(shown) < len(fields):
            lines.append(f"    (and {len(fields) - len(shown)} field(s) empty on both sides)")
    errors = data.get("errors", [])
    if errors:
        lines += ["", "Sync errors", *("  " + line for line in error_lines({"errors": errors}))]
    return lines


def _held(value: Any) -> bool:
    return value is not None and value not in ("", [])


def match_lines(records: list[dict[str, Any]]) -> list[str]:
    rows = [[r.get("entity"), r.get("dynamics_id"), r.get("marketo_id"), r.get("label")] for r in records]
    return table(["ENTITY", "DYNAMICS ID", "MARKETO ID", "LABEL"], rows)
