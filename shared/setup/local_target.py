"""``validate --local``: the setup CLI pointed at the tenants ``make run`` (or ``make sims``) is running.

Both write the app settings that reach their simulated tenants to a JSON file (``.local/run/settings.json`` by
``make run``, ``.sims/settings.json`` by ``make sims``): the URLs, the made-up credentials and the local host's
webhook URL. The simulated Entra ID answers under the Dataverse simulator's address, while the settings keep
Entra's real name (MSAL accepts only an https authority), so the CLI's HTTP client sends Entra's calls there, as
the local host does.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import httpx

from shared.settings import Settings

CANDIDATES = (Path(".local") / "run" / "settings.json", Path(".sims") / "settings.json")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class NoLocalSettings(ValueError):
    """No settings file of a running local setup was found."""


def settings_file(given: str | None) -> Path:
    """``given``, or the first of :data:`CANDIDATES` that exists (the one ``make run`` writes first)."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise NoLocalSettings(f"{path} not found: pass the settings.json that make run or make sims wrote")
        return path
    for path in CANDIDATES:
        if path.is_file():
            return path
    listed = " or ".join(str(p) for p in CANDIDATES)
    raise NoLocalSettings(f"no {listed}: start `make run` (or `make sims`) first, from the repository's root")


def read_values(path: Path) -> dict[str, str]:
    """A flat ``{"NAME": "value"}`` file (what the local runs write), or a ``local.settings.json`` (its Values)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object of settings")
    nested = data.get("Values")
    values: dict[str, object] = nested if isinstance(nested, dict) else data
    return {str(k): v for k, v in values.items() if isinstance(v, str)}


def is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOOPBACK


class _EntraAtSimulator(httpx.BaseTransport):
    """Real HTTP; requests to the Entra authority's name go to the Dataverse simulator instead."""

    def __init__(self, authority_host: str, simulator: str) -> None:
        self._authority = authority_host.lower()
        self._target = httpx.URL(simulator)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self._authority:
            target = self._target
            request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def http_client(settings: Settings) -> httpx.Client:
    """The CLI's client for simulated tenants on this machine (Entra's calls answered by the Dataverse simulator);
    a plain client when Dataverse is not on loopback."""
    timeout = httpx.Timeout(30.0, connect=10.0)
    authority = urlparse(settings.dataverse_authority_host).hostname
    if not authority or not is_loopback(settings.dataverse_url):
        return httpx.Client(timeout=timeout)
    return httpx.Client(transport=_EntraAtSimulator(authority, settings.dataverse_url), timeout=timeout)


def local_setup(given: str | None) -> tuple[Settings, httpx.Client, str | None, Path]:
    """Settings, HTTP client and the expected Dataverse webhook URL of the running local setup, and its file."""
    path = settings_file(given)
    values = read_values(path)
    settings = Settings.model_validate(values)
    return settings, http_client(settings), values.get("DATAVERSE_WEBHOOK_URL"), path
