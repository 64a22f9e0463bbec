"""Thin triggers: parse the input, call ``shared`` with the ports it uses, render the value or map the error
(``functions.http``). One blueprint per trigger family."""

from __future__ import annotations

import azure.functions as func

from functions import admin, console, deadletters, errors, fields, health, jobs, records, sync, timers, webhooks

BLUEPRINTS: tuple[func.Blueprint, ...] = (
    health.bp,
    webhooks.bp,
    sync.bp,
    timers.bp,
    admin.bp,
    errors.bp,
    deadletters.bp,
    fields.bp,
    jobs.bp,
    console.bp,
    records.bp,
)
