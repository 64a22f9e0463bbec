"""JSON text from outside (webhook bodies, admin requests), decoded once with the limits every caller needs.

``json.loads`` accepts what no caller can use: lone surrogates (``"\\ud800"``), which cannot be encoded again and
fail later wherever the value is written; nesting deep enough to raise ``RecursionError`` in the parser or in the
code that walks the value afterwards; numbers over Python's 4,300-digit limit, which raise a plain ``ValueError``.
:func:`load_json` turns all of these into one :class:`JsonTextError`, whose message names the problem and never
repeats the text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 64  # the deepest real payload (a Dataverse context with images) nests about 8 levels


class JsonTextError(ValueError):
    """The text is not JSON this product accepts; the message says why, without quoting it."""


def load_json(data: bytes | str, *, parse_float: Callable[[str], Any] | None = None, bom: bool = False) -> Any:
    """Strict UTF-8 (``bom``: a leading byte-order mark is dropped), then JSON, then the depth and string checks."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8-sig" if bom else "utf-8")
        except UnicodeDecodeError:
            raise JsonTextError("the body is not UTF-8 text") from None
    elif bom:
        data = data.removeprefix("\ufeff")
    try:
        value = json.loads(data, parse_float=parse_float)
    except RecursionError:
        raise JsonTextError(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JsonTextError(f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError:  # a number over the interpreter's digit limit
        raise JsonTextError("the JSON holds a number too long to read") from None
    _check(value)
    return value


def _check(root: Any) -> None:
    """Walks without recursion, so a value just under the parser's limit cannot overflow the stack here."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise JsonTextError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, dict):
                for key in value:
                    _text(key)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


def _text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonTextError("the JSON holds a string that is not valid Unicode (a lone surrogate)") from None
