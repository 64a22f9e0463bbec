"""The JSON object an admin endpoint's body must be: read once here, refused with a 400 naming the body."""

from __future__ import annotations

from typing import Any

from shared.core.json_text import JsonTextError, load_json
from shared.errors import InvalidRequest


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``): :class:`InvalidRequest` (``bad-request``, field
    ``body``) for text that is not JSON, or JSON that is not an object."""
    try:
        data = load_json(body or b"{}")
    except JsonTextError as exc:
        raise InvalidRequest(str(exc), code="bad-request", field="body") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", code="bad-request", field="body")
    return data
