"""``python -m shared.setup deadletters list|replay|discard``: the admin API's dead-letter actions from a shell.

The same pipeline functions as ``/api/deadletters``, on the changes queue (``SYNC_CHANGES_QUEUE``) of the
namespace in ``ServiceBusConnection__fullyQualifiedNamespace``, as the identity ``DefaultAzureCredential`` finds
(``az login`` on a laptop; the app's managed identity, ``AZURE_CLIENT_ID``, inside Azure). That identity needs
the Azure Service Bus Data Receiver and Data Sender roles on the namespace, and for ``discard`` (which records a
sync error) access to the state store.

Exit codes: 0 done; 1 refused or failed (the message says why: not found, busy, unreadable, Service Bus
unavailable, or a replay that missed some dead letters); 2 a command line it cannot act on.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from azure.identity import DefaultAzureCredential
from azure.servicebus import ServiceBusClient

from shared.pipeline import deadletters
from shared.queueing import DeadLetterQueue, ServiceBusObserver
from shared.services import build_store
from shared.settings import Settings
from shared.store.base import StateStore

COLUMNS = ("id", "seq", "enqueued", "deliveries", "reason", "entity", "record")


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """``commands``: the setup CLI's subparsers."""
    dl = commands.add_parser("deadletters", parents=[common], help="list, replay or discard dead-lettered changes")
    actions = dl.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100, help=f"at most this many (1-{deadletters.MAX_LISTED})")
    listing.add_argument("--after", type=int, default=0, help="the next_after of the previous page")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    replay = actions.add_parser("replay", help="send dead letters back to the queue (--id, --all or --entity)")
    replay.add_argument("--id", help="the dead letter's id (its message id)")
    replay.add_argument("--all", action="store_true", help="every readable dead letter")
    replay.add_argument("--entity", help="every readable dead letter of this entity ('person': not yet linked)")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    discard = actions.add_parser("discard", help="remove a dead letter without replaying it (recorded)")
    discard.add_argument("--id", required=True, help="the dead letter's id")
    discard.add_argument("--json", action="store_true", help="machine-readable output")


def service_bus_dead_letters(settings: Settings) -> ServiceBusObserver:
    if not settings.service_bus_namespace:
        raise ValueError("set ServiceBusConnection__fullyQualifiedNamespace (<namespace>.servicebus.windows.net)")
    credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id or None)
    return ServiceBusObserver(ServiceBusClient(settings.service_bus_namespace, credential=credential))


def run(
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    *,
    dead_letters: DeadLetterQueue | None = None,
    store: StateStore | None = None,
) -> int:
    """``dead_letters`` and ``store``: seams for tests (the local broker, SQLite); otherwise built from settings."""
    usage = _usage(args)
    if usage:
        print(f"error: {usage}", file=out)
        return 2
    dlq = dead_letters or service_bus_dead_letters(settings)
    queue = settings.changes_queue
    if args.action == "list":
        page = deadletters.list_dead_letters(dlq, queue, after=args.after, limit=args.limit)
        _print(out, args.json, page, _table(page))
        return 0
    if args.action == "replay":
        if args.id:
            done = deadletters.replay(dlq, queue, args.id)
        else:
            done = deadletters.replay_all(dlq, queue, entity=args.entity)
        data = done.as_dict()
        lines = [f"replayed {item['id']} as {item['new_message_id']}" for item in done.replayed]
        lines.append(f"{len(done.replayed)} replayed, {done.missed} missed (taken by another call meanwhile)")
        if done.skipped_unreadable:
            lines.append(f"{len(done.skipped_unreadable)} unreadable, not replayed (discard them): ")
            lines[-1] += ", ".join(done.skipped_unreadable)
        _print(out, args.json, data, lines)
        return 1 if done.missed else 0
    discarded = deadletters.discard(dlq, store or build_store(settings), queue, args.id)
    lines = [f"discarded {discarded.id}; recorded as sync error {discarded.sync_error}"]
    _print(out, args.json, discarded.as_dict(), lines)
    return 0


def _usage(args: argparse.Namespace) -> str | None:
    if args.action == "list" and not 1 <= args.limit <= deadletters.MAX_LISTED:
        return f"--limit must be from 1 to {deadletters.MAX_LISTED}"
    if args.action == "list" and args.after < 0:
        return "--after must be 0 or more"
    if args.action == "replay":
        if args.id and (args.all or args.entity):
            return "replay takes --id alone, or --all and/or --entity"
        if not (args.id or args.all or args.entity):
            return "replay needs --id ID, --all or --entity ENTITY"
    return None


def _print(out: TextIO, as_json: bool, data: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str), file=out)
        return
    for line in lines:
        print(line, file=out)


def _table(page: dict[str, Any]) -> list[str]:
    rows = []
    for item in page["items"]:
        carried = item["notification"]
        rows.append(
            (
                item["id"],
                str(item["sequence_number"]),
                item["enqueued_at"] or "-",
                str(item["delivery_count"]),
                item["reason"] or "-",
                carried.get("entity") or ("unreadable" if not carried["readable"] else "-"),
                carried.get("record_id") or carried.get("marketo_id") or "-",
            )
        )
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for item in page["items"]:
        if item["description"]:
            lines.append(f"{item['id']}: {item['description']}")
    after = page["next_after"]
    lines.append(f"{page['count']} dead letter(s)" + (f"; next page: --after {after}" if after else ""))
    return lines
