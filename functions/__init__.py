"""Thin triggers: parse the input, call ``shared`` with the ports it uses, render the value or map the error
(``functions.http``). One blueprint per trigger family."""

from __future__ import annotations

import azure.functions as func

from functions import admin, deadletters, fields, health, sync, timers, webhooks

BLUEPRINTS: tuple[func.Blueprint, ...] = (
    health.bp,
    webhooks.bp,
    sync.bp,
    timers.bp,
    admin.bp,
    deadletters.bp,
    fields.bp,
)
