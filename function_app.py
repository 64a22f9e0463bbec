"""Azure Functions entry point (Python v2 model): turn telemetry on (once), create the app and register the
blueprints, nothing else."""

from __future__ import annotations

import azure.functions as func

from functions import BLUEPRINTS
from shared import telemetry
from shared.settings import Settings

telemetry.configure(Settings())  # Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
