"""``python -m local.simulators --state DIR``: the simulated Dataverse and Marketo tenants as their own process.

The tenants come from ``DIR/simulators.json`` (``persistence.py`` says what it holds). A directory without one is
provisioned first by running ``python -m local.tenants --provision DIR`` -- the admin's step, a separate process:
it builds the tenants exactly as ``make run`` does, from the configured mapping, and this package imports nothing
of the product. They are served on loopback (fixed ports by default, so a restart keeps the URLs the product
stored) and saved back a moment after every change and on SIGTERM / Ctrl-C; a restart with the same ``DIR``
picks up where they left off, with the same credentials (``--ephemeral``: never saved back, for a benchmark's
millions of records seeded through ``/_simulator/seed``).

The plug-in steps and the Marketo webhook post to ``--product-url``. When the product is down a post fails as it
does with the real services (Dataverse retries a 502/503/504 once and a refused connection not at all; Marketo
never retries) and the product's catch-up timers pick the change up when it is back. The settings the product
needs go to stdout and to ``DIR/settings.json``; ``python -m local --sims DIR`` reads that file. ``make sims``
runs this with ``--state .sims``.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

import httpx

from local.loopback import Handler, LoopbackServer
from local.simulators.marketo.simulator import MarketoSimulator
from local.simulators.persistence import Snapshots, build, load, write_json
from local.simulators.stopping import wait_for_stop

SETTINGS_FILE = "settings.json"
IMPORT_CHUNK = 500  # bulk import rows worked at a time, between API calls
_READS = {"GET", "HEAD"}


def _watched(handler: Handler, snapshots: Snapshots) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        try:
            return handler(request)
        finally:
            if request.method not in _READS:
                snapshots.touch()

    return handle


class _FireAndForget:
    """Marketo's webhook calls: no retry, the answer ignored (the lead-changes feed is the reliable path)."""

    def __init__(self) -> None:
        self._client = httpx.Client(timeout=30.0)

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        with suppress(httpx.TransportError):
            self._client.post(url, headers=dict(headers), content=body)


def _import_worker(marketo: MarketoSimulator, stop: threading.Event) -> None:
    """Bulk imports worked in the background, a chunk of rows at a time: API calls get in between chunks."""
    while not stop.is_set():
        done = marketo.work_imports(IMPORT_CHUNK)
        stop.wait(0.002 if done else 0.1)


def _provision(directory: Path, product_url: str) -> None:
    command = [sys.executable, "-m", "local.tenants", "--provision", str(directory), "--product-url", product_url]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - our own module, this interpreter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.simulators", description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, type=Path, help="directory for the tenants' state and settings")
    parser.add_argument("--dataverse-port", type=int, default=7072, help="Dataverse simulator port (default 7072)")
    parser.add_argument("--marketo-port", type=int, default=7073, help="Marketo simulator port (default 7073)")
    parser.add_argument(
        "--product-url",
        default="http://127.0.0.1:7071",
        help="where the webhooks go: the product's local host (default http://127.0.0.1:7071)",
    )
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help="never save the tenants back to DIR (a benchmark's millions of seeded records): they end with the process",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    directory: Path = args.state
    saved = load(directory)
    restored = saved is not None
    if saved is None:
        _provision(directory, args.product_url)
        saved = load(directory)
        assert saved is not None
    dataverse_sim, marketo_sim = build(saved, args.product_url, _FireAndForget())
    marketo_sim.imports.background = True
    importing = threading.Event()
    worker = threading.Thread(target=_import_worker, args=(marketo_sim, importing), name="imports", daemon=True)
    worker.start()
    extra = {"secrets": saved["secrets"], "settings": saved["settings"]}
    snapshots = None if args.ephemeral else Snapshots(directory, dataverse_sim, marketo_sim, extra)
    dataverse_handler: Handler = dataverse_sim if snapshots is None else _watched(dataverse_sim, snapshots)
    marketo_handler: Handler = marketo_sim if snapshots is None else _watched(marketo_sim, snapshots)
    dataverse = LoopbackServer(dataverse_handler, port=args.dataverse_port).start()
    marketo = LoopbackServer(marketo_handler, port=args.marketo_port).start()
    if snapshots is not None:
        snapshots.save()
        snapshots.start()
    product = args.product_url.rstrip("/")
    settings = {
        "DATAVERSE_URL": dataverse.url,
        "MARKETO_BASE_URL": marketo.url,
        "MARKETO_IDENTITY_URL": f"{marketo.url}/identity",
        **saved["settings"],
        "PRODUCT_URL": product,
        "DATAVERSE_WEBHOOK_URL": f"{product}/api/dataverse/webhook",
        "MARKETO_WEBHOOK_URL": f"{product}/api/marketo/webhook",
    }
    write_json(directory / SETTINGS_FILE, settings)
    print(banner(settings, directory, restored=restored), flush=True)
    try:
        wait_for_stop()
    finally:
        stopping = threading.Thread(target=marketo.stop)  # each stop waits out its poll: both at once
        stopping.start()
        dataverse.stop()
        stopping.join()
        importing.set()
        worker.join()
        if snapshots is not None:
            snapshots.stop()


def banner(settings: Mapping[str, str], directory: Path, *, restored: bool) -> str:
    dv, mk = settings["DATAVERSE_URL"], settings["MARKETO_BASE_URL"]
    lines = [
        "",
        f"Simulated tenants running ({'restored from' if restored else 'new, saved in'} {directory}).",
        f"  Dataverse sim  {dv}/api/data/v9.2/  control: {dv}/_simulator",
        f"  Marketo sim    {mk}/rest/v1/  control: {mk}/_simulator",
        f"  webhooks to    {settings['PRODUCT_URL']}",
        f"  settings       {directory / SETTINGS_FILE}  (run the product with: python -m local --sims {directory})",
        "",
        *(f"export {name}={value}" for name, value in settings.items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
