"""The correlation id of what is running now, on every log record; and the JSON-lines format.

A trigger (a webhook, the queue trigger, a timer) binds the correlation id of the work it starts
(:func:`bound`); :func:`install` makes every log record carry it as the ``correlation_id`` attribute (``None``
when nothing is bound), whoever logs it: the product, httpx, the Azure SDK. A log call cannot pass its own as
``extra`` (the attribute exists already): bind it instead. The Azure Monitor log exporter sends a record's extra
attributes as custom dimensions, so the id is searchable in Application Insights; the text format shows it in
brackets, and :class:`JsonFormatter` writes one JSON object a line (``LOG_FORMAT=json``).

Standard library only, so every layer may read the id (``shared.pipeline`` stamps it on the notifications it
queues). What a log record holds is the product's responsibility: ids, names and counts, never a field value or
a secret (``tests/log_guard.py`` checks every record the tests write).
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
_TRIGGER: contextvars.ContextVar[str | None] = contextvars.ContextVar("trigger", default=None)
MAX_ID = 128  # a Service Bus correlation id's limit; longer text is not an id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s]: %(message)s"


def correlation_id() -> str | None:
    """The correlation id bound in this context (thread, task), or None."""
    return _CORRELATION.get()


def trigger() -> str | None:
    """The trigger the running work came in by (``dataverse_webhook``, ``reconcile``, ``marketo_feed``)."""
    return _TRIGGER.get()


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def usable_id(value: object) -> str | None:
    """A correlation id as a caller sent it, if it is one: short printable text without spaces."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not 0 < len(text) <= MAX_ID or not text.isprintable() or " " in text:
        return None
    return text


@contextmanager
def bound(correlation: str | None, *, trigger_name: str | None = None) -> Iterator[str | None]:
    """Bind ``correlation`` (and the trigger's name) for the work inside; the previous ones come back after."""
    token = _CORRELATION.set(correlation)
    trigger_token = _TRIGGER.set(trigger_name) if trigger_name is not None else None
    try:
        yield correlation
    finally:
        _CORRELATION.reset(token)
        if trigger_token is not None:
            _TRIGGER.reset(trigger_token)


# --- Every record carries the id ------------------------------------------------------------------------------

_INSTALLED = threading.Lock()
_state: dict[str, Any] = {"factory": None}


def install() -> None:
    """Wrap the log record factory (once per process): every record gets ``correlation_id`` and ``trigger_name``."""
    with _INSTALLED:
        if _state["factory"] is not None:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if not hasattr(record, "correlation_id"):
                record.correlation_id = _CORRELATION.get()
            if not hasattr(record, "trigger_name"):
                record.trigger_name = _TRIGGER.get()
            return record

        _state["factory"] = previous
        logging.setLogRecordFactory(factory)


# --- Formats ----------------------------------------------------------------------------------------------------

# What every LogRecord has: anything else on a record was passed as ``extra`` (or set by install) and is written.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    """For people: time, level, logger, ``[correlation id]`` (``-`` when there is none), message."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = "-"
            try:
                return super().format(record)
            finally:
                record.correlation_id = None
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC), ``level``, ``logger``, ``message``, ``correlation_id`` and every
    extra attribute the record was given (a decision's dimensions), then ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()


def log_to_console(kind: str, level: int = logging.INFO) -> None:
    """What ``python -m local`` logs to: the console, in ``kind`` (``text`` for people, ``json`` lines)."""
    install()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(kind))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
