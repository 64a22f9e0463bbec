"""What a function's bindings demand of the Function App's settings, as a list of unmet demands.

A binding names settings two ways: ``%NAME%`` inside a value (``queueName="%SYNC_CHANGES_QUEUE%"``,
``schedule="%QUICK_SYNC_SCHEDULE%"``) and ``connection="NAME"``. With identity-based connections, a connection
``X`` is not a setting itself but a prefix: ``X__fullyQualifiedNamespace`` for Service Bus, ``X__accountName`` or
``X__serviceUri``-style settings for storage. A queue a Service Bus binding reads or writes must exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

SETTING_REFERENCE = re.compile(r"%([^%]+)%")
SERVICE_BUS_TYPES = {"servicebustrigger", "servicebus"}


def unmet(
    function_name: str,
    bindings: Iterable[Mapping[str, Any]],
    settings: Mapping[str, Any],
    resolve_setting: Callable[[str], Any],
    queues: set[str],
) -> list[str]:
    problems: list[str] = []
    for binding in bindings:
        where = f"{function_name}.{binding.get('name')} ({binding.get('type')})"
        for key, value in binding.items():
            if not isinstance(value, str):
                continue
            for name in SETTING_REFERENCE.findall(value):
                if name not in settings:
                    problems.append(f"{where}: {key} references %{name}%, which no app setting defines")
        connection = binding.get("connection")
        binding_type = str(binding.get("type", "")).lower()
        if isinstance(connection, str) and connection:
            if binding_type in SERVICE_BUS_TYPES:
                if f"{connection}__fullyQualifiedNamespace" not in settings:
                    problems.append(f"{where}: connection {connection} needs {connection}__fullyQualifiedNamespace")
            elif not any(s.startswith(f"{connection}__") for s in settings):
                problems.append(f"{where}: connection {connection} has no identity-based {connection}__* settings")
            if connection in settings:
                problems.append(f"{where}: {connection} is set directly, i.e. as a connection string")
        if binding_type in SERVICE_BUS_TYPES:
            queue = binding.get("queueName")
            if isinstance(queue, str):
                queue_setting = SETTING_REFERENCE.fullmatch(queue)
                if queue_setting and queue_setting.group(1) not in settings:
                    continue  # reported above as a missing setting
                name = resolve_setting(queue_setting.group(1)) if queue_setting else queue
                if name not in queues:
                    problems.append(f"{where}: queue {name!r} is not declared in the Bicep (have {sorted(queues)})")
            elif binding.get("topicName") is not None:
                problems.append(f"{where}: topics are not provisioned by the Bicep")
    return problems
