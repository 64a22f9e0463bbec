"""What ``make run`` leaves for the commands of the README: where everything is, and the made-up credentials.

Each start writes ``.local/run/`` (``--session DIR``):

- ``settings.json``: the app settings that point at the running tenants, in the form ``make sims`` writes
  ``.sims/settings.json`` (``python -m shared.setup validate --local`` reads it);
- ``env.sh``: short shell variables for the README's walkthrough (``. .local/run/env.sh``): ``API`` (the
  functions, so no command spells the port), ``DV`` and ``MK`` (the simulators), ``TENANT``, ``DEMO_ID`` /
  ``DEMO_SECRET`` (the simulated admin app, a person's Dynamics changes) and ``MK_ID`` / ``MK_SECRET`` (the
  Marketo API user). None of them is an app setting's name, so sourcing the file never changes what the next
  ``make run`` in that shell is configured with.

Nothing is written against real tenants (``SYNC_TARGET=live``): their credentials are not made up.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path

from local.stack import LocalStack

SESSION = Path(".local") / "run"
SETTINGS = "settings.json"
ENV = "env.sh"


def session_settings(stack: LocalStack, sims: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The running stack's settings for other processes; None against real tenants."""
    s = stack.settings
    product = stack.host.url.rstrip("/")
    if sims is not None:
        found = dict(sims)
    elif stack.tenants is not None:
        t = stack.tenants
        found = {
            **t.environment(s.dataverse_url, s.marketo_base_url),
            "DATAVERSE_WEBHOOK_HEADER": s.dataverse_webhook_header,
            "MARKETO_WEBHOOK_HEADER": s.marketo_webhook_header,
            "DEMO_CLIENT_ID": t.demo_client_id,
            "DEMO_CLIENT_SECRET": t.secrets.demo_client_secret,
        }
    else:
        return None
    return {
        **found,
        "PRODUCT_URL": product,
        "DATAVERSE_WEBHOOK_URL": f"{product}/api/dataverse/webhook",
        "MARKETO_WEBHOOK_URL": f"{product}/api/marketo/webhook",
    }


def shell_variables(settings: Mapping[str, str]) -> dict[str, str]:
    return {
        "API": settings["PRODUCT_URL"].rstrip("/") + "/api",
        "DV": settings["DATAVERSE_URL"].rstrip("/"),
        "MK": settings["MARKETO_BASE_URL"].rstrip("/"),
        "TENANT": settings["DATAVERSE_TENANT_ID"],
        "DEMO_ID": settings["DEMO_CLIENT_ID"],
        "DEMO_SECRET": settings["DEMO_CLIENT_SECRET"],
        "MK_ID": settings["MARKETO_CLIENT_ID"],
        "MK_SECRET": settings["MARKETO_CLIENT_SECRET"],
    }


def write_session(directory: Path, settings: Mapping[str, str]) -> Path:
    """Write ``settings.json`` and ``env.sh`` (readable by this user only: they hold made-up credentials)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by `make run` at start: the addresses and made-up credentials of this session.",
        *(f"{name}={shlex.quote(value)}" for name, value in shell_variables(settings).items()),
    ]
    for name, text in ((SETTINGS, json.dumps(dict(settings), indent=2)), (ENV, "\n".join(lines))):
        path = directory / name
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return directory / ENV
