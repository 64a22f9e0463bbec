"""What the HTTP fuzz tests send, and what they check of every answer (``tests/functions/test_fuzz_*.py``).

Requests start from real payload shapes (the recorded fixtures, the simulator's Marketo webhook body, the field-add
request) and are mutated field by field: a key dropped, a value replaced by a wrong type, null, a huge or a
5,000-digit number, 10,000 levels of nesting, a lone surrogate, a NUL, a very long string, raw text that is not
JSON. Every mutated text carries :data:`MARKER`, so an answer that repeats what was sent is caught.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from shared.queueing import OutgoingMessage
from shared.store.base import StateStore

MARKER = "<fz@mk7q>"  # lower case and ASCII, so it survives lower() and JSON escaping; no name or id allows '<'
HOST = "http://localhost:7071"

_scale = os.environ.get("FUZZ_EXAMPLES")


def fuzz_settings(examples: int) -> settings:
    """``examples`` per endpoint in CI, derandomized (a failure is the same on every run); ``FUZZ_EXAMPLES=n``
    runs n per endpoint from a fresh random seed (Hypothesis prints how to reproduce what it finds)."""
    return settings(
        max_examples=int(_scale) if _scale else examples,
        derandomize=not _scale,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# --- mutating JSON documents ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put in place of a value as is: what ``json.dumps`` cannot or will not write."""

    text: str
    kind: str  # "number", "deep", "surrogate", "text"


DIGITS = "9" * 5000
RAW_VALUES = (
    Raw(DIGITS, "number"),
    Raw("-" + DIGITS, "number"),
    Raw("1" + "0" * 4400 + ".5", "text"),  # a float: read (as Decimal or inf), no limit applies
    Raw("1e999999", "text"),
    Raw("NaN", "text"),
    Raw("-Infinity", "text"),
    Raw("[" * 10_000 + "]" * 10_000, "deep"),
    Raw('{"a":' * 10_000 + "1" + "}" * 10_000, "deep"),
    Raw("[" * 100 + json.dumps(MARKER) + "]" * 100, "deep"),
    Raw(f'"\\ud800{MARKER}"', "surrogate"),
    Raw(f'"{MARKER}\\udfff"', "surrogate"),
    Raw(f'{{"\\udc00{MARKER}": 1}}', "surrogate"),
    Raw(f'"\\u0000{MARKER}\\u0000"', "text"),
    Raw(f'"\\u00e9\\u202e{MARKER}\\u2603"', "text"),
    Raw(f'"{MARKER * 30_000}"', "text"),
    Raw(f'["{MARKER}"]', "text"),
    Raw(f'{{"{MARKER}": "{MARKER}"}}', "text"),
)
PLAIN_VALUES: tuple[Any, ...] = (None, True, False, 0, -1, 2**63, 2**31, 1.5, "", " ", [], {}, MARKER, f" {MARKER} ")
DROP = object()

replacement: st.SearchStrategy[Any] = st.one_of(
    st.just(DROP),
    st.sampled_from(PLAIN_VALUES),
    st.sampled_from(RAW_VALUES),
    st.builds(lambda n: MARKER + "x" * n, st.integers(0, 70_000)),
)


def paths(doc: Any, prefix: tuple[Any, ...] = (), depth: int = 6) -> Iterator[tuple[Any, ...]]:
    """Every place a value sits in ``doc`` (dict keys and list indexes), down to ``depth`` levels."""
    if depth == 0:
        return
    items: Sequence[tuple[Any, Any]] = (
        list(doc.items()) if isinstance(doc, dict) else list(enumerate(doc)) if isinstance(doc, list) else []
    )
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key), depth - 1)


@dataclass
class Mutated:
    doc: Any
    raws: dict[str, Raw] = field(default_factory=dict)
    touched: list[tuple[tuple[Any, ...], Any]] = field(default_factory=list)  # (path, replacement)

    def body(self) -> bytes:
        text = json.dumps(self.doc, ensure_ascii=False)
        for placeholder, raw in self.raws.items():
            text = text.replace(json.dumps(placeholder), raw.text)
        return text.encode("utf-8", "surrogatepass")

    def raw_kinds(self) -> set[str]:
        """The kinds of raw text still in the document (a later change may have removed one)."""
        text = json.dumps(self.doc)
        return {raw.kind for placeholder, raw in self.raws.items() if json.dumps(placeholder) in text}


def apply(base: Any, changes: Sequence[tuple[tuple[Any, ...], Any]]) -> Mutated:
    out = Mutated(copy.deepcopy(base))
    for path, value in changes:
        parent = out.doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if not isinstance(parent, dict | list) or (isinstance(parent, list) and path[-1] >= len(parent)):
                continue
            if isinstance(parent, dict) and path[-1] not in parent and value is DROP:
                continue
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced this place
        if value is DROP:
            del parent[path[-1]]
        elif isinstance(value, Raw):
            placeholder = f"@@raw{len(out.raws)}@@"
            out.raws[placeholder] = value
            parent[path[-1]] = placeholder
        else:
            parent[path[-1]] = copy.deepcopy(value)
        out.touched.append((path, value))
    return out


def mutations(base: Any, *, at_most: int = 3) -> st.SearchStrategy[Mutated]:
    places = list(paths(base))
    change = st.tuples(st.sampled_from(places), replacement)
    return st.lists(change, min_size=1, max_size=at_most).map(lambda changes: apply(base, changes))


BROKEN_BODIES: tuple[bytes, ...] = (
    b"",
    b"null",
    b"[]",
    b"0",
    MARKER.encode(),
    json.dumps(MARKER).encode(),
    b"\xff\xfe" + MARKER.encode(),
    MARKER.encode() + b"\xc3\x28",
    b"[" * 10_000,
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    DIGITS.encode(),
    b'"\\ud800"',
    b"{" + MARKER.encode() + b"}",
    b"\x00" * 64 + MARKER.encode(),
)


def bodies(base: Any) -> st.SearchStrategy[tuple[bytes, Mutated | None]]:
    """Mostly the base mutated (with the mutation, for the test's oracle); sometimes a body that is no JSON at all,
    or the base cut short."""
    whole = json.dumps(base).encode()
    broken: st.SearchStrategy[bytes] = st.one_of(
        st.sampled_from(BROKEN_BODIES),
        st.integers(1, len(whole) - 1).map(lambda n: whole[:n]),
        st.binary(max_size=64).map(lambda b: b + MARKER.encode()),
    )
    return st.one_of(
        mutations(base).map(lambda m: (m.body(), m)),
        mutations(base).map(lambda m: (m.body(), m)),
        broken.map(lambda b: (b, None)),
    )


# --- headers, query strings, route parameters --------------------------------------------------------------

odd_text = st.sampled_from(
    [MARKER, MARKER * 5000, f"\u00e9\u202e{MARKER}\u2603", f"{MARKER}\x00", f" {MARKER} ", "", "9" * 5000]
)
CONTENT_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded", MARKER, None)


def headers(base: Mapping[str, str]) -> st.SearchStrategy[dict[str, str]]:
    """``base`` with a header dropped or changed now and then, a content type, and one unknown header."""
    names = sorted(base)

    def build(drop: str | None, odd: tuple[str, str] | None, ctype: str | None, extra: str | None) -> dict[str, str]:
        out = {k: v for k, v in base.items() if k != drop}
        if odd is not None:
            out[odd[0]] = odd[1]
        if ctype is not None:
            out["content-type"] = ctype
        if extra is not None:
            out["x-fuzz-" + str(len(extra) % 97)] = extra
        return out

    rarely = [False] * 4 + [True]  # most requests keep the base headers, so the body is what gets tested
    return st.builds(
        build,
        st.sampled_from(rarely).flatmap(lambda on: st.sampled_from(names) if on and names else st.none()),
        st.sampled_from(rarely).flatmap(
            lambda on: st.tuples(st.sampled_from(names or ["x-any"]), odd_text) if on else st.none()
        ),
        st.sampled_from(CONTENT_TYPES),
        st.none() | odd_text,
    )


QUERY_KEYS = ("status", "limit", "entity", "q", "format", "code", MARKER)
query_values = st.one_of(
    odd_text,
    st.sampled_from(["open", "retrying", "resolved", "html", "500", "0", "-1", "1e3", "²", "٣", "lead", "contact"]),
    st.text(max_size=20),
)
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), query_values, max_size=3)
route_values = st.one_of(odd_text, st.sampled_from(["lead", "contact", "42", "²", "0", "-1", "nosuch"]))


def request(
    method: str, route: str, *, body: bytes = b"", head: Mapping[str, str] | None = None, **kw: Any
) -> func.HttpRequest:
    return func.HttpRequest(method, f"{HOST}/api/{route}", body=body, headers=dict(head or {}), **kw)


# --- what every answer must be -----------------------------------------------------------------------------


class RecordingSender:
    """The queue, as a seam: what the function sent, kept here and not delivered (the stack stays quiet)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, OutgoingMessage]] = []

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend((queue, m) for m in messages)


class CountingRows:
    """The state store's rows with every write counted: pending marks, jobs, the mapping document, links."""

    WRITES = frozenset({"insert", "replace", "upsert", "delete"})

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.writes = 0
        self.last: tuple[str, str, str] | None = None  # (method, table, thread) of the latest write

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in self.WRITES and callable(attr):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.writes += 1
                self.last = (name, str(args[0]) if args else "", threading.current_thread().name)
                return attr(*args, **kwargs)

            return counted
        return attr


@dataclass
class Watch:
    sender: RecordingSender
    rows: CountingRows
    secrets: tuple[str, ...]

    def start(self) -> tuple[int, int]:
        return len(self.sender.sent), self.rows.writes


def watch(services: Any, secrets: Sequence[str]) -> Watch:
    """Install the seams; the mapping document is seeded first (a first use writes it, whatever the answer)."""
    services.mapping  # noqa: B018 - read for its side effect
    sender, rows = RecordingSender(), CountingRows(services.store.rows)
    services.queue = sender
    store: StateStore = services.store
    store.rows = rows
    return Watch(sender, rows, tuple(s for s in secrets if s))


def check_answer(response: func.HttpResponse, w: Watch, before: tuple[int, int]) -> None:
    """The properties of every answer, whatever was sent."""
    status, body = response.status_code, response.get_body()
    text = body.decode("utf-8", "replace").lower()
    assert status < 500, f"answered {status}: {text[:300]}"
    if 400 <= status < 500:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
        assert error["code"]
        assert error["message"]
    assert MARKER not in text, f"the answer repeats what was sent: {text[:300]}"
    for name, value in response.headers.items():
        assert MARKER not in f"{name}: {value}".lower()
    for secret in w.secrets:
        assert secret.lower() not in text, "the answer shows a secret"
    sent, writes = len(w.sender.sent) - before[0], w.rows.writes - before[1]
    if status != 202:
        assert sent == 0, f"answered {status} but enqueued {sent} message(s)"
    if not 200 <= status < 300:
        assert writes == 0, f"answered {status} but wrote {writes} row(s): {w.rows.last}"


def answered(call: Callable[[func.HttpRequest], func.HttpResponse], req: func.HttpRequest, w: Watch) -> int:
    before = w.start()
    response = call(req)  # an exception escaping here fails the example
    event(f"{req.method} {req.url.removeprefix(HOST)[:40]} -> {response.status_code}")
    check_answer(response, w, before)
    status: int = response.status_code
    return status
