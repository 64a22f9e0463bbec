"""A Marketo Engage simulator served as an ``httpx`` handler, in-process or over loopback."""

from __future__ import annotations

from shared.simulators.marketo.limits import LimitConfig
from shared.simulators.marketo.simulator import MarketoSimulator
from shared.simulators.marketo.webhook import WebhookConfig, httpx_sender

__all__ = ["LimitConfig", "MarketoSimulator", "WebhookConfig", "httpx_sender"]
