"""Azure Functions entry point (Python v2 model): create the app and register the blueprints, nothing else."""

from __future__ import annotations

import azure.functions as func

from functions import BLUEPRINTS

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
