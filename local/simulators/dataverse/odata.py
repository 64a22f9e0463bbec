"""OData ``$filter`` and ``$orderby`` as clients send them to Dataverse.

``$filter``: comparisons (eq ne gt ge lt le), and/or/not, parentheses, ``contains``/``startswith``/``endswith``
and ``Microsoft.Dynamics.CRM.In(PropertyName=...,PropertyValues=[...])``. Rows are Web API shaped dicts; a
comparison on a date column compares instants, strings and GUIDs compare without regard to case (Dataverse's
collation). ``$orderby``: one or more ``property [asc|desc]``; nulls sort first ascending, as SQL Server does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]


class FilterError(ValueError):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),\[\]=])"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?)"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][\w.]*))"
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"Syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _literal(kind: str, raw: str) -> Any:
    if kind == "string":
        return raw[1:-1].replace("''", "'")
    if kind == "number":
        return float(raw) if "." in raw else int(raw)
    if kind in {"guid", "datetime"}:
        return raw
    if raw == "null":
        return None
    if raw in {"true", "false"}:
        return raw == "true"
    raise FilterError(f"unexpected literal {raw!r}")


def _as_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _compare(op: str, left: Any, right: Any) -> bool:
    left_time, right_time = _as_instant(left), _as_instant(right)
    if left_time is not None and right_time is not None:
        if (left_time.tzinfo is None) != (right_time.tzinfo is None):
            left_time, right_time = left_time.replace(tzinfo=None), right_time.replace(tzinfo=None)
        left, right = left_time, right_time
    elif isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()  # Dataverse string and GUID comparisons are case-insensitive
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool({"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op])
    except TypeError:
        return False


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda row: a(row) or b(row)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda row: a(row) and b(row)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.properties: set[str] = set()

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (expected is not None and token[1] != expected):
            raise FilterError(f"expected {expected or 'a token'} at token {self.pos}")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return predicate

    def or_expr(self) -> Predicate:
        left = self.and_expr()
        while self.peek() == ("word", "or"):
            self.take()
            right = self.and_expr()
            left = _either(left, right)
        return left

    def and_expr(self) -> Predicate:
        left = self.unary()
        while self.peek() == ("word", "and"):
            self.take()
            right = self.unary()
            left = _both(left, right)
        return left

    def unary(self) -> Predicate:
        token = self.peek()
        if token == ("word", "not"):
            self.take()
            inner = self.unary()
            return lambda row: not inner(row)
        if token == ("punct", "("):
            self.take()
            inner = self.or_expr()
            self.take(")")
            return inner
        if token is not None and token[1] == "Microsoft.Dynamics.CRM.In":
            return self.in_call()
        if token is not None and token[1] in _STRING_FUNCTIONS and self._next_is("("):
            return self.string_call()
        return self.comparison()

    def _next_is(self, punct: str) -> bool:
        return self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1] == ("punct", punct)

    def string_call(self) -> Predicate:
        name = self.take()[1]
        self.take("(")
        kind, prop = self.take()
        if kind != "word":
            raise FilterError(f"{name}() needs a property name first")
        self.properties.add(prop)
        self.take(",")
        lit_kind, raw = self.take()
        needle = _literal(lit_kind, raw)
        self.take(")")
        if not isinstance(needle, str):
            raise FilterError(f"{name}() needs a string")
        test = _STRING_FUNCTIONS[name]
        return lambda row: isinstance(row.get(prop), str) and test(str(row.get(prop)).lower(), needle.lower())

    def in_call(self) -> Predicate:
        self.take()
        self.take("(")
        args: dict[str, Any] = {}
        while True:
            name = self.take()[1]
            self.take("=")
            if self.peek() == ("punct", "["):
                self.take()
                values = []
                while self.peek() != ("punct", "]"):
                    kind, raw = self.take()
                    values.append(_literal(kind, raw))
                    if self.peek() == ("punct", ","):
                        self.take()
                self.take("]")
                args[name] = values
            else:
                kind, raw = self.take()
                args[name] = _literal(kind, raw)
            if self.peek() == ("punct", ","):
                self.take()
                continue
            self.take(")")
            break
        prop = args.get("PropertyName")
        wanted = {str(v).lower() for v in args.get("PropertyValues", [])}
        if not isinstance(prop, str):
            raise FilterError("In() needs PropertyName")
        self.properties.add(prop)
        return lambda row: str(row.get(prop, "")).lower() in wanted

    def comparison(self) -> Predicate:
        kind, prop = self.take()
        if kind != "word":
            raise FilterError(f"expected a property name, got {prop!r}")
        self.properties.add(prop)
        _, op = self.take()
        if op not in _COMPARE:
            raise FilterError(f"unknown operator {op!r}")
        lit_kind, raw = self.take()
        value = _literal(lit_kind, raw)
        return lambda row: _compare(op, row.get(prop), value)


_STRING_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda value, needle: needle in value,
    "startswith": lambda value, needle: value.startswith(needle),
    "endswith": lambda value, needle: value.endswith(needle),
}


def compile_filter(text: str | None) -> Predicate:
    return parse_filter(text)[0]


def parse_filter(text: str | None) -> tuple[Predicate, set[str]]:
    """The predicate and the property names it reads (the caller checks they exist)."""
    if not text:
        return (lambda row: True), set()
    parser = _Parser(text)
    return parser.parse(), parser.properties


def parse_orderby(text: str | None) -> list[tuple[str, bool]]:
    """``name desc, other`` -> [(name, descending), ...]."""
    order: list[tuple[str, bool]] = []
    for part in (text or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in {"asc", "desc"}):
            raise FilterError(f"invalid $orderby item {part.strip()!r}")
        order.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return order


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    instant = _as_instant(value)
    if instant is not None:
        return (1, (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).timestamp())
    if isinstance(value, str):
        return (1, value.lower())
    return (1, value)


def sort_rows(rows: list[Mapping[str, Any]], order: list[tuple[str, bool]]) -> list[Mapping[str, Any]]:
    """Stable multi-key sort: the last key first, so earlier keys win."""
    result = list(rows)
    for prop, descending in reversed(order):
        result.sort(key=lambda row: _sort_key(row.get(prop)), reverse=descending)
    return result
