"""The local host: runs the FunctionApp's own registered functions on this machine (HTTP, queues, timers),
against the built-in simulators by default. Nothing in ``functions/`` or ``shared/core`` knows it exists."""
