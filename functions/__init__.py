"""Thin triggers: parse the input, call ``shared``, map errors to responses. One blueprint per trigger family."""

from __future__ import annotations

import azure.functions as func

from functions import admin, fields, health, sync, timers, webhooks

BLUEPRINTS: tuple[func.Blueprint, ...] = (health.bp, webhooks.bp, sync.bp, timers.bp, admin.bp, fields.bp)
