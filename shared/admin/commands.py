"""One function per command: call the API, print what it answered. Each returns the exit code (0 done, 1 the
job it watched did not finish well); a refusal or an unreachable app is raised and turned into its exit code by
``__main__``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from shared.admin import views
from shared.admin.client import AdminClient, UsageError
from shared.admin.progress import Watcher, job_name

ERROR_FILTERS = ("entity", "direction", "code", "status", "q", "since", "until")


@dataclass
class Context:
    client: AdminClient
    out: TextIO
    watcher: Watcher
    now: Callable[[], datetime]

    def print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    def dump(self, data: Any) -> None:
        print(json.dumps(data, indent=2, default=str), file=self.out)


def _part(text: str) -> str:
    """One path segment of a route, escaped (an id or a name never reaches another route)."""
    return quote(text, safe="")


def error_filters(args: argparse.Namespace) -> dict[str, str | int | None]:
    query = {name: getattr(args, name, None) for name in ERROR_FILTERS}
    query["error_code"] = query.pop("code")  # "code" in a query is the function key
    return query


# --- status -----------------------------------------------------------------------------------------------------


def status(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client.get("status", {"entity": args.entity})
    if args.json:
        ctx.dump(data)
    else:
        ctx.print(*views.status_lines(data, ctx.now()))
    return 0


def pause(args: argparse.Namespace, ctx: Context) -> int:
    return _pause(args, ctx, "pause")


def resume(args: argparse.Namespace, ctx: Context) -> int:
    return _pause(args, ctx, "resume")


def _pause(args: argparse.Namespace, ctx: Context, action: str) -> int:
    data = ctx.client.post(f"sync/{action}", {"entity": args.entity})
    entities = data.get("paused_entities") or []
    state = (
        "ALL entities paused"
        if data.get("paused_all")
        else ("paused: " + ", ".join(entities) if entities else "nothing paused")
    )
    ctx.print(f"{action}d {args.entity or 'the whole sync'}; now {state}")
    return 0


# --- sync errors ------------------------------------------------------------------------------------------------


def errors_list(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client.get("errors", {**error_filters(args), "limit": args.limit})
    if args.json:
        ctx.dump(data)
    else:
        ctx.print(*views.error_lines(data))
    return 0


def errors_export(args: argparse.Namespace, ctx: Context) -> int:
    text = ctx.client.text("errors.csv", error_filters(args))
    if args.output in (None, "-"):
        ctx.out.write(text)
        return 0
    Path(args.output).write_text(text, encoding="utf-8")
    rows = max(0, len(text.splitlines()) - 1)
    ctx.print(f"wrote {rows} error(s) to {args.output}")
    return 0


def errors_retry(args: argparse.Namespace, ctx: Context) -> int:
    if bool(args.id) == bool(args.all):
        raise UsageError("name one error (errors retry ID) or pass --all (with filters to narrow it)")
    if args.id:
        data = ctx.client.post(f"errors/{_part(args.id)}/retry")
    else:
        data = ctx.client.post("errors/retry", error_filters(args))
    if "records" in data:
        ctx.print(f"retry queued: {data.get('records')} record(s), {len(data.get('errors', []))} error(s)")
    else:
        ctx.print(f"error {data.get('id', args.id)}: {data.get('status', 'retrying')}")
    return 0


def errors_ignore(args: argparse.Namespace, ctx: Context) -> int:
    return _error_action(args, ctx, "ignore")


def errors_resolve(args: argparse.Namespace, ctx: Context) -> int:
    return _error_action(args, ctx, "resolve")


def _error_action(args: argparse.Namespace, ctx: Context, action: str) -> int:
    data = ctx.client.post(f"errors/{_part(args.id)}/{action}")
    ctx.print(f"error {data.get('id', args.id)}: {data.get('status', action + 'd')}")
    return 0


# --- fields and Quick Sync --------------------------------------------------------------------------------------


def fields_list(args: argparse.Namespace, ctx: Context) -> int:
    if args.catalogue:
        data = ctx.client.get(f"mapping/{_part(args.entity)}/catalogue")
        ctx.dump(data) if args.json else ctx.print(*views.catalogue_lines(data))
        return 0
    mapping = ctx.client.get("mapping")
    entity = next((e for e in mapping.get("entities", []) if e.get("entity") == args.entity.lower()), None)
    if entity is None:
        names = ", ".join(e.get("entity", "?") for e in mapping.get("entities", []))
        raise UsageError(f"{args.entity} is not in the sync mapping (mapped: {names})")
    ctx.dump(entity) if args.json else ctx.print(*views.field_lines(entity))
    return 0


def fields_add(args: argparse.Namespace, ctx: Context) -> int:
    body: dict[str, Any] = {"dynamics": args.column, "marketo": args.marketo or args.column}
    if args.one_way:
        body["one_way"] = True
    if args.winner:
        body["winner"] = args.winner
    if args.create_marketo_field:
        body["create_marketo_field"] = True
    window = {"modified_from": args.modified_from, "modified_to": args.modified_to}
    if args.no_quick_sync:  # a window that starts now: no existing record to backfill, live changes carry it
        window = {"modified_from": ctx.now().isoformat(timespec="seconds"), "modified_to": None}
    body["quick_sync"] = {k: v for k, v in window.items() if v}
    data = ctx.client.post(f"mapping/{_part(args.entity)}/fields", body=body)
    f, job = data.get("field", {}), data.get("job") or {}
    created = " (Marketo field created)" if data.get("marketo_field_created") else ""
    ctx.print(f"added {data.get('entity')}.{f.get('dynamics')} -> {f.get('marketo')} ({f.get('type')}){created}")
    if job:
        scope = "records modified from now on only" if args.no_quick_sync else "existing records"
        ctx.print(
            f"Quick Sync {job.get('id')}: {job.get('state')} ({scope}); watch it: quicksync watch {job.get('id')}"
        )
    if args.watch and job.get("id"):
        return _watched(ctx, str(job["id"]))
    return 0


def fields_remove(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client.delete(f"mapping/{_part(args.entity)}/fields/{_part(args.column)}")
    f = data.get("field", {})
    ctx.print(f"removed {data.get('entity', args.entity)}.{f.get('dynamics', args.column)} (was -> {f.get('marketo')})")
    return 0


def quicksync_start(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client.post("quicksync", body={"entity": args.entity, "column": args.column})
    job = data.get("job") or data
    ctx.print(f"{job_name(job)}: {job.get('state')}{_already(data)}")
    return _watched(ctx, str(job["id"])) if args.watch else 0


def quicksync_watch(args: argparse.Namespace, ctx: Context) -> int:
    if args.job:
        return _watched(ctx, args.job)
    ended = ctx.watcher.active("quick_sync")
    if not ended:
        ctx.print("no Quick Sync is queued or running")
    return 0 if all(j.get("state") == "done" for j in ended) else 1


def _already(answer: dict[str, Any]) -> str:
    return "; the same job was queued or running already" if answer.get("created") is False else ""


def _watched(ctx: Context, job_id: str) -> int:
    job = ctx.watcher.job(job_id)
    return 0 if job.get("state") == "done" else 1


# --- force resync -----------------------------------------------------------------------------------------------


def resync(args: argparse.Namespace, ctx: Context) -> int:
    if args.ids and (args.modified_from or args.modified_to):
        raise UsageError("choose records by --id or by --from/--to, not both")
    body: dict[str, Any] = {"entity": args.entity, "mode": args.mode}
    if args.ids:
        body["ids"] = args.ids
    if args.modified_from:
        body["modified_from"] = args.modified_from
    if args.modified_to:
        body["modified_to"] = args.modified_to
    data = ctx.client.post("resync", body=body)
    job = data.get("job") or {}
    scope = f"scope {job.get('scope', '-')}, mode {job.get('mode', args.mode)}"
    ctx.print(f"{job_name(job)}: {job.get('state')} ({scope}){_already(data)}")
    return _watched(ctx, str(job["id"])) if args.watch and job.get("id") else 0


# --- dead letters -----------------------------------------------------------------------------------------------


def deadletters_list(args: argparse.Namespace, ctx: Context) -> int:
    page = ctx.client.get("deadletters", {"limit": args.limit, "after": args.after})
    ctx.dump(page) if args.json else ctx.print(*views.dead_letter_lines(page))
    return 0


def deadletters_replay(args: argparse.Namespace, ctx: Context) -> int:
    if bool(args.id) == bool(args.all or args.entity):
        raise UsageError("name one dead letter (deadletters replay ID) or pass --all / --entity E")
    if args.id:
        data = ctx.client.post(f"deadletters/{_part(args.id)}/replay")
    else:
        data = ctx.client.post("deadletters/replay", {"entity": args.entity})
    ctx.print(f"replayed {data.get('count', 0)} dead letter(s) on {data.get('queue')}")
    skipped = data.get("skipped_unreadable") or []
    if skipped:
        ctx.print(f"skipped {len(skipped)} unreadable (discard them): " + ", ".join(skipped))
    if data.get("missed"):
        ctx.print(f"missed {data['missed']}: another call took them meanwhile")
    return 0


def deadletters_discard(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client.post(f"deadletters/{_part(args.id)}/discard")
    ctx.print(f"discarded {data.get('id', args.id)}")
    return 0


# --- a record's history -----------------------------------------------------------------------------------------


def record(args: argparse.Namespace, ctx: Context) -> int:
    found = ctx.client.get("records", {"q": args.query})
    records = found.get("records", [])
    if not records:
        ctx.print(f"no record of the sync matches {args.query!r}")
        return 1
    if len(records) > 1 and not args.entity:
        ctx.print(f"{len(records)} records match; pass --entity to choose:", *views.match_lines(records))
        return 0
    chosen = next((r for r in records if not args.entity or r.get("entity") == args.entity), None)
    if chosen is None or not chosen.get("dynamics_id"):
        ctx.print(*views.match_lines([chosen] if chosen else records), "", "no Dynamics record (yet): no history")
        return 0
    route = f"records/{_part(str(chosen['entity']))}/{_part(str(chosen['dynamics_id']))}"
    data = ctx.client.get(route, {"limit": args.limit})
    ctx.dump(data) if args.json else ctx.print(*views.record_lines(data))
    return 0
