"""Credentials in URLs never reach a log line.

httpx logs every request at INFO as ``HTTP Request: GET https://host/path?query "HTTP/1.1 200 OK"``. Marketo
documents its identity call as a GET with ``client_secret`` in the query string and accepts ``access_token`` there
too; an escape hatch of the product's Marketo client uses the GET form. This filter rewrites the value of every
credential-bearing query parameter to ``***`` in the records of the loggers it is attached to, whatever the
caller logged, so turning on INFO logging never writes a secret.
"""

from __future__ import annotations

import logging
import re

CREDENTIAL_PARAMETERS = ("client_secret", "access_token", "code", "refresh_token", "client_assertion", "sig")
_IN_QUERY = re.compile(r"([?&](?:" + "|".join(CREDENTIAL_PARAMETERS) + r")=)[^&\s\"'#]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``...?client_id=a&client_secret=s3cret`` -> ``...?client_id=a&client_secret=***``."""
    return _IN_QUERY.sub(r"\1***", text)


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


REDACT = RedactCredentials()


def guard(*logger_names: str) -> None:
    """Attach the filter (once) to the loggers that write request URLs."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if REDACT not in logger.filters:
            logger.addFilter(REDACT)
