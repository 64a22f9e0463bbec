"""Azure Functions entry point (Python v2 model): fix the malloc mmap threshold and turn telemetry on (once),
create the app and register the blueprints, nothing else."""

from __future__ import annotations

import azure.functions as func

from functions import BLUEPRINTS
from shared import memory, telemetry
from shared.settings import Settings

settings = Settings()
memory.fix_mmap_threshold(settings.malloc_mmap_threshold)  # also where the process started without the setting
telemetry.configure(settings)  # Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
