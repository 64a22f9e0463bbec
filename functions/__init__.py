"""Thin triggers: parse the input, call ``shared``, map errors to responses. One blueprint per trigger family."""

from __future__ import annotations

import azure.functions as func

from functions import health

BLUEPRINTS: tuple[func.Blueprint, ...] = (health.bp,)
