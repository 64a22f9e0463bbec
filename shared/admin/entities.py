"""``entities list|add|remove``: the synced entities, one added at runtime with its initial sync, one removed."""

from __future__ import annotations

import argparse
from typing import Any

from shared.admin.client import UsageError
from shared.admin.commands import Context, _part, _watched
from shared.admin.progress import job_name


def _field(text: str) -> dict[str, Any]:
    """``COLUMN`` or ``COLUMN=MARKETO_FIELD`` (the Marketo field defaults to the column's name)."""
    column, _, marketo = text.partition("=")
    if not column.strip():
        raise UsageError(f"--field takes COLUMN or COLUMN=MARKETO_FIELD, not {text!r}")
    return {"dynamics": column.strip(), "marketo": (marketo or column).strip()}


def entities_list(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client.get("mapping/entities")
    if args.json:
        ctx.dump(data)
        return 0
    rows = data.get("entities", [])
    ctx.print(f"{'ENTITY':<24} {'STATE':<13} {'MARKETO':<28} {'LINK FIELD':<24} FIELDS")
    for e in rows:
        target = e.get("custom_object") or e.get("marketo_object") or "-"
        ctx.print(
            f"{e.get('entity', '?'):<24} {e.get('state', '-'):<13} {target:<28} {e.get('link_field') or '-':<24} "
            f"{e.get('fields', 0)}"
        )
        job = e.get("initial_sync")
        if job:
            ctx.print(f"  initial sync {job_name(job)}: {job.get('state')}, {job.get('records_done', 0)} records")
    return 0


def entities_add(args: argparse.Namespace, ctx: Context) -> int:
    body: dict[str, Any] = {"entity": args.entity, "custom_object": args.custom_object}
    if args.link_field:
        body["link_field"] = args.link_field
    body["fields"] = [_field(text) for text in args.fields or []]
    if args.page_size:
        body["page_size"] = args.page_size
    data = ctx.client.post("mapping/entities", body=body)
    entity, job = data.get("entity") or {}, data.get("job") or {}
    ctx.print(
        f"added {entity.get('entity', args.entity)} -> Marketo {entity.get('custom_object')} (link field "
        f"{entity.get('link_field')}, {len(entity.get('fields') or [])} fields); state {entity.get('state')}"
    )
    if job:
        ctx.print(f"initial sync {job.get('id')}: {job.get('state')}; watch it: quicksync watch {job.get('id')}")
    for notice in data.get("notices") or []:
        ctx.print(f"note: {notice}")
    if args.watch and job.get("id"):
        return _watched(ctx, str(job["id"]))
    return 0


def entities_remove(args: argparse.Namespace, ctx: Context) -> int:
    data = ctx.client.delete(f"mapping/entities/{_part(args.entity)}")
    cancelled = data.get("jobs_cancelled") or []
    ctx.print(f"removed {data.get('entity', args.entity)} from the sync; {len(cancelled)} job(s) cancelled")
    ctx.print(f"its links: {data.get('links', 'kept')}")
    return 0
