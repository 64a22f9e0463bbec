"""Thin triggers: parse the input, call ``shared`` with the ports it uses, render the value or map the error
(``functions.http``). One blueprint per trigger family."""

from __future__ import annotations

import azure.functions as func

from functions import (
    admin,
    console,
    deadletters,
    entities,
    errors,
    fields,
    flowsteps,
    health,
    jobs,
    records,
    sync,
    timers,
    verify,
    webhooks,
)

BLUEPRINTS: tuple[func.Blueprint, ...] = (
    health.bp,
    webhooks.bp,
    sync.bp,
    timers.bp,
    admin.bp,
    errors.bp,
    deadletters.bp,
    fields.bp,
    entities.bp,
    jobs.bp,
    console.bp,
    records.bp,
    flowsteps.bp,
    verify.bp,
)
