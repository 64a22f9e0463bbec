"""``python -m shared.setup``: wire a deployed sync to Dynamics and Marketo, and check the wiring.

    register          create or update the Dataverse webhook endpoint and plug-in steps (idempotent)
    unregister        remove exactly what ``register`` created
    marketo-webhook   print the Marketo webhook to paste (--flow-steps: the flow-step webhooks too), and check
                      the Marketo credentials
    validate          a checklist like Marketo's Validate Sync; exit code 0 only when every item passes
    deadletters       list, replay or discard the changes queue's dead letters (``shared/setup/deadletters.py``)

Settings come from the environment (``Settings()``), or from a ``local.settings.json`` with ``--settings-file``.
The mapping is the one the sync uses (the state store, seeded from ``SYNC_MAPPING_FILE``), or ``--mapping-file``.
No secret is ever printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

import httpx

from shared.core.mapping import MappingError, SyncMapping, load_mapping
from shared.dataverse.client import DataverseClient
from shared.errors import SyncError
from shared.marketo.client import MarketoClient
from shared.queueing import DeadLetterQueue
from shared.services import build_dataverse, build_marketo, build_store, load_stored_mapping
from shared.settings import Settings
from shared.setup import deadletters, local_target
from shared.setup.commands import Outcome, register, unregister
from shared.setup.marketo_setup import check_marketo, daily_usage, flow_step_definitions, webhook_definition
from shared.setup.registration import Op
from shared.setup.validate import Check, Status, Validator
from shared.store.base import StateStore

DATAVERSE_ROUTE = "/api/dataverse/webhook"
MARKETO_ROUTE = "/api/marketo/webhook"


class UsageError(Exception):
    """A command line the tool cannot act on; the message says what to pass instead."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.setup", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings-file", help="read settings from this local.settings.json (Values) as well")
    common.add_argument("--mapping-file", help="use this mapping instead of the one in the state store")
    commands = parser.add_subparsers(dest="command", required=True)

    reg = commands.add_parser("register", parents=[common], help="register the Dataverse webhook and steps")
    reg.add_argument("--url", help=f"the Function App's webhook URL (…{DATAVERSE_ROUTE}) or its base URL")
    reg.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    reg.add_argument("--verbose", action="store_true", help="list unchanged registrations too")
    reg.add_argument(
        "--local", nargs="?", const="", default=None, metavar="SETTINGS_JSON",
        help="register in the simulated Dataverse make run (or make sims) is running, for its local host",
    )  # fmt: skip

    unreg = commands.add_parser("unregister", parents=[common], help="remove what register created")
    unreg.add_argument("--dry-run", action="store_true", help="show what would be removed")

    mk = commands.add_parser("marketo-webhook", parents=[common], help="print the Marketo webhook definition")
    mk.add_argument("--url", help=f"the Function App's Marketo webhook URL (…{MARKETO_ROUTE}) or its base URL")
    mk.add_argument("--no-check", action="store_true", help="skip the Marketo credentials check")
    mk.add_argument(
        "--flow-steps", action="store_true",
        help="also print the flow-step webhooks (sync-person, change-owner, create-task)",
    )  # fmt: skip

    val = commands.add_parser("validate", parents=[common], help="check the whole setup")
    val.add_argument("--url", help="the expected Dataverse webhook URL (default: the registered one)")
    val.add_argument("--json", action="store_true", help="machine-readable output")
    val.add_argument("--create-marketo-fields", action="store_true", help="create missing Marketo custom person fields")
    val.add_argument(
        "--local", nargs="?", const="", default=None, metavar="SETTINGS_JSON",
        help="check the simulated tenants make run (or make sims) is running: their settings file, by default "
        ".local/run/settings.json, else .sims/settings.json; the local host's webhook URL is the one expected",
    )  # fmt: skip

    deadletters.add_commands(commands, common)
    return parser


# --- inputs ---------------------------------------------------------------------------------------------------


def load_settings(settings_file: str | None) -> Settings:
    if not settings_file:
        return Settings()
    data = json.loads(Path(settings_file).read_text())
    values: dict[str, Any] = {k: v for k, v in (data.get("Values") or {}).items() if isinstance(v, str)}
    return Settings(**values)


def load_sync_mapping(settings: Settings, mapping_file: str | None) -> SyncMapping:
    if mapping_file:
        return load_mapping(Path(mapping_file).read_text())
    return load_stored_mapping(build_store(settings), settings)


def webhook_url(given: str | None, settings: Settings, route: str) -> str:
    """A full webhook URL from ``--url`` (full or base) or the app's public URL setting, HTTPS only."""
    base = given or str(getattr(settings, "function_app_url", "") or "")
    if not base:
        raise UsageError(f"pass --url https://<app>.azurewebsites.net{route} (the azd output AZURE_FUNCTION_APP_URL)")
    parsed = urlparse(base)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise UsageError(f"--url must be an absolute URL, got {base!r}")
    local = parsed.hostname in ("localhost", "127.0.0.1") or parsed.hostname.endswith(".localhost")
    if parsed.scheme != "https" and not local:
        raise UsageError("--url must use https: the webhook secret travels in a header")
    if parsed.path in ("", "/"):
        return base.rstrip("/") + route
    return base


# --- output ---------------------------------------------------------------------------------------------------


def _print_outcome(out: TextIO, title: str, outcome: Outcome, *, verbose: bool) -> None:
    print(title, file=out)
    for action in outcome.actions:
        if verbose or action.op is not Op.UNCHANGED:
            print(f"  {action.describe()}", file=out)
    counts = outcome.counts
    names = {"create": "created", "update": "updated", "unchanged": "unchanged", "delete": "deleted"}
    parts = [f"{counts[op]} {word}" for op, word in names.items()]
    print(("(dry run, nothing changed) " if not outcome.applied else "") + ", ".join(parts), file=out)
    for note in outcome.notes:
        print(f"note: {note}", file=out)


def _print_check(out: TextIO, check: Check) -> None:
    print(f"  {check.status.value}  {check.name}: {check.detail}", file=out)
    for fix in check.fixes:
        print(f"        fix: {fix}", file=out)


# --- commands -------------------------------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    http: httpx.Client | None = None,
    mapping: SyncMapping | None = None,
    out: TextIO | None = None,
    dead_letters: DeadLetterQueue | None = None,
    store: StateStore | None = None,
) -> int:
    """Run one command; returns the exit code. Tests pass ``settings``, ``http``, ``mapping``, ``dead_letters`` and
    ``store`` as seams."""
    stream = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "local", None) is not None:
            local, local_http, local_url, path = local_target.local_setup(args.local)
            if not getattr(args, "json", False):
                print(f"Validating the local setup of {path}", file=stream)
            settings, http, args.url = settings or local, http or local_http, args.url or local_url
        settings = settings or load_settings(args.settings_file)
        if args.command == "deadletters":
            return deadletters.run(args, settings, stream, dead_letters=dead_letters, store=store)
        client = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
        if args.command == "register":
            return _register(args, settings, client, mapping, stream)
        if args.command == "unregister":
            return _unregister(args, settings, client, stream)
        if args.command == "marketo-webhook":
            return _marketo_webhook(args, settings, client, mapping, stream)
        return _validate(args, settings, client, mapping, stream)
    except UsageError as exc:
        print(f"error: {exc}", file=stream)
        return 2
    except (SyncError, MappingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=stream)
        return 1


def _dataverse(settings: Settings, http: httpx.Client) -> DataverseClient:
    return build_dataverse(settings, http)


def _register(
    args: argparse.Namespace, settings: Settings, http: httpx.Client, mapping: SyncMapping | None, out: TextIO
) -> int:
    url = webhook_url(args.url, settings, DATAVERSE_ROUTE)
    sync_mapping = mapping or load_sync_mapping(settings, args.mapping_file)
    header = settings.dataverse_webhook_header
    title = f"Dataverse webhook registration -> {url} (header '{header}' carries DATAVERSE_WEBHOOK_SECRET)"
    outcome = register(
        _dataverse(settings, http),
        sync_mapping,
        url=url,
        header=header,
        secret=settings.dataverse_webhook_secret,
        dry_run=args.dry_run,
    )
    _print_outcome(out, title, outcome, verbose=args.verbose)
    return 0


def _unregister(args: argparse.Namespace, settings: Settings, http: httpx.Client, out: TextIO) -> int:
    outcome = unregister(_dataverse(settings, http), dry_run=args.dry_run)
    _print_outcome(out, "Removing this tool's Dataverse registrations", outcome, verbose=True)
    return 0


def _marketo_webhook(
    args: argparse.Namespace, settings: Settings, http: httpx.Client, mapping: SyncMapping | None, out: TextIO
) -> int:
    url = webhook_url(args.url, settings, MARKETO_ROUTE)
    sync_mapping = mapping or load_sync_mapping(settings, args.mapping_file)
    for line in webhook_definition(settings, sync_mapping, url):
        print(line, file=out)
    if args.flow_steps:
        for line in flow_step_definitions(settings, url.removesuffix(MARKETO_ROUTE)):
            print(line, file=out)
    if args.no_check:
        return 0
    marketo: MarketoClient = build_marketo(settings, http)
    result = check_marketo(marketo)
    print("", file=out)
    if not result.ok:
        print(f"Marketo credentials: FAIL  {result.detail}", file=out)
        print(f"  fix: {result.fix}", file=out)
        return 1
    used = daily_usage(http, marketo, settings.marketo_base_url)
    quota = settings.marketo_daily_quota
    usage = f"{used} of {quota} daily calls used" if used is not None else "daily usage not reported by this instance"
    print(f"Marketo credentials: PASS  {result.detail}; {usage}", file=out)
    print(
        f"  limits this app keeps to: {settings.marketo_calls_per_20s} calls / 20 s, "
        f"{settings.marketo_max_concurrency} concurrent, headroom {settings.marketo_headroom:.0%}",
        file=out,
    )
    return 0


def _validate(
    args: argparse.Namespace, settings: Settings, http: httpx.Client, mapping: SyncMapping | None, out: TextIO
) -> int:
    sync_mapping = mapping or load_sync_mapping(settings, args.mapping_file)
    url = webhook_url(args.url, settings, DATAVERSE_ROUTE) if args.url else None
    dataverse: DataverseClient | None
    try:
        dataverse = _dataverse(settings, http)
    except (SyncError, ValueError) as exc:
        print(f"cannot build the Dataverse client: {exc}", file=sys.stderr)
        dataverse = None
    validator = Validator(
        settings,
        sync_mapping,
        dataverse,
        build_marketo(settings, http),
        http=http,
        webhook_url=url,
        create_marketo_fields=args.create_marketo_fields,
    )
    if args.json:
        checks = validator.run()
        ok = all(c.status is Status.PASS for c in checks)
        print(json.dumps({"ok": ok, "checks": [c.as_dict() for c in checks]}, indent=2), file=out)
        return 0 if ok else 1
    print("Validate setup", file=out)
    checks = validator.run(report=lambda c: _print_check(out, c))
    failed = [c for c in checks if c.status is not Status.PASS]
    skipped = sum(1 for c in checks if c.status is Status.SKIP)
    print(f"{len(checks) - len(failed)} passed, {len(failed) - skipped} failed, {skipped} skipped", file=out)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
