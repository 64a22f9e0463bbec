"""``python -m local``: run the product here (the README's first command).

By default against the built-in Dataverse and Marketo simulators on loopback; with ``--sims DIR`` against the
simulators ``python -m local.simulators --state DIR`` runs in their own process (their ``DIR/settings.json``; the
state store defaults to ``DIR/state.sqlite``, so the product can be killed and restarted against the same tenants
and store); with ``SYNC_TARGET=live`` (and the tenant settings) against real ones. Prints where everything is and
how to try it; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import function_app
from local.session import ENV, SESSION, session_settings, write_session
from local.simulators.stopping import wait_for_stop
from local.stack import LocalStack
from shared.logcontext import log_to_console
from shared.settings import Settings

_SETTING_NAMES = {
    str(choices[0])
    for info in Settings.model_fields.values()
    if (choices := getattr(info.validation_alias, "choices", None))
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=None, help="HTTP port of the function endpoints (default 7071, or the --sims one)"
    )
    parser.add_argument("--no-timers", action="store_true", help="do not fire the timer functions on schedule")
    parser.add_argument(
        "--state", default=None, help="SQLite file for the state (default: in memory; DIR/state.sqlite with --sims)"
    )
    parser.add_argument(
        "--sims", type=Path, default=None, metavar="DIR", help="use the simulators of python -m local.simulators"
    )
    parser.add_argument(
        "--session", type=Path, default=SESSION, metavar="DIR",
        help=f"where the addresses and made-up credentials go for the README's commands (default {SESSION})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    log_to_console(Settings().log_format)  # LOG_FORMAT: text for people (the default), json lines
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides = {k: v for k, v in os.environ.items() if k in _SETTING_NAMES}
    sims = read_sims(args.sims) if args.sims is not None else None
    port, state = args.port, args.state
    if sims is not None:
        port = port if port is not None else urlparse(sims["PRODUCT_URL"]).port
        state = state or str(args.sims / "state.sqlite")
    stack = LocalStack(
        function_app.app,
        port=7071 if port is None else port,
        run_timers=not args.no_timers,
        overrides=overrides,
        state_path=state,
        sims=sims,
    ).start()
    settings = session_settings(stack, sims)
    if settings is not None:
        write_session(args.session, settings)
    print(banner(stack, sims), flush=True)
    if settings is not None:
        print(f"\nThe README's commands: . {args.session / ENV}  (API, DV, MK and these credentials)", flush=True)
    try:
        wait_for_stop()
    finally:
        stack.stop()


def read_sims(directory: Path) -> dict[str, str]:
    path = directory / "settings.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: start the simulators first (make sims, or python -m local.simulators "
                         f"--state {directory})")  # fmt: skip
    settings: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return settings


def banner(stack: LocalStack, sims: dict[str, str] | None = None) -> str:
    s = stack.settings
    host = stack.host.url
    lines = [
        "",
        "Dynamics 365 <-> Marketo sync is running locally.",
        f"  console        {host}/api/console{'?code=$LOCAL_FUNCTIONS_KEY' if stack.host.requires_key else ''}",
        f"  admin CLI      .venv/bin/python -m shared.admin --url {host} status",
        f"  functions      {host}/api/",
    ]
    for route in stack.host.functions.http:
        lines.append(f"    {'/'.join(sorted(route.methods)):<10} /api/{route.route}")
    if stack.host.requires_key:
        lines.append("  key            required: ?code=$LOCAL_FUNCTIONS_KEY or the x-functions-key header")
    else:
        lines.append("  key            not required (set LOCAL_FUNCTIONS_KEY to require one)")
    lines.append(f"  queue          {s.changes_queue} (local broker), timers: "
                 + ", ".join(t.name for t in stack.host.functions.timers))  # fmt: skip
    if stack.tenants is not None or sims is not None:
        t, sims = stack.tenants, sims or {}
        demo_id = t.demo_client_id if t is not None else sims["DEMO_CLIENT_ID"]
        demo_secret = t.secrets.demo_client_secret if t is not None else sims["DEMO_CLIENT_SECRET"]
        lines += [
            f"  Dataverse sim  {s.dataverse_url}/api/data/v9.2/  (tenant {s.dataverse_tenant_id})",
            f"  Marketo sim    {s.marketo_base_url}/rest/v1/",
            "",
            "Try it: get a Dataverse token as the simulated admin app, change a contact, watch Marketo.",
            f"  DV={s.dataverse_url}; MK={s.marketo_base_url}",
            f"  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={demo_id} "
            f"-d client_secret={demo_secret} -d scope=$DV/.default "
            f"$DV/{s.dataverse_tenant_id}/oauth2/v2.0/token | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"access_token\"])')",
            '  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" '
            '-d \'{"firstname":"Ada","lastname":"Lovelace","emailaddress1":"ada@example.com","jobtitle":"Engineer"}\' '
            "$DV/api/data/v9.2/contacts",
            f'  MKTOKEN=$(curl -s "$MK/identity/oauth/token?grant_type=client_credentials&client_id={s.marketo_client_id}'
            f'&client_secret={s.marketo_client_secret.get_secret_value()}" | python3 -c \'import json,sys;print(json.load(sys.stdin)["access_token"])\')',
            '  curl -s -H "Authorization: Bearer $MKTOKEN" "$MK/rest/v1/leads.json?filterType=email&filterValues=ada@example.com&fields=email,title,dynamicsContactId"',
            "  (these credentials are made up at start and live only as long as this process)"
            if t is not None
            else "  (the simulators run in their own process: restart this one freely, the tenants stay)",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
