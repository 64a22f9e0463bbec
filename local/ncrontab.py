"""NCRONTAB schedules: the parser lives in :mod:`shared.core.ncrontab` (the status view reckons the timers' next
runs with it in Azure too); the local host imports it from here as before."""

from __future__ import annotations

from shared.core.ncrontab import Schedule, ScheduleError

__all__ = ["Schedule", "ScheduleError"]
