"""Parse Python source for the tests that read the code itself, proof against a CPython 3.11 race.

CPython before 3.12 keeps the AST constructor's recursion depth in interpreter-wide state: when another thread
builds an AST at the same moment (3.11's ``traceback`` parses source lines to place its carets, so any thread
logging an exception does), ``ast.parse`` may fail with ``SystemError: AST constructor recursion depth mismatch``
although the source is fine (python/cpython#106905). The session's loopback servers log from their own threads,
so the tests parse through :func:`parse`, which tries again on that one error and on nothing else.
"""

from __future__ import annotations

import ast

_RACE = "AST constructor recursion depth mismatch"
_ATTEMPTS = 5


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    for attempt in range(_ATTEMPTS):
        try:
            return ast.parse(source, filename)
        except SystemError as error:
            if _RACE not in str(error) or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
