"""A Marketo Engage simulator served as an ``httpx`` handler, in-process or over loopback."""

from __future__ import annotations

from local.simulators.marketo.limits import LimitConfig
from local.simulators.marketo.simulator import MarketoSimulator
from local.simulators.marketo.webhook import WebhookConfig

__all__ = ["LimitConfig", "MarketoSimulator", "WebhookConfig"]
