"""Checking every declared resource against the type data the Bicep compiler itself uses (Azure/bicep-types-az).

With no Bicep CLI here, nothing else would notice a misspelt property, a read-only property set, or a value outside
an allowed set before the first ``azd up``. This walks each resource's body as :mod:`tests.infra.bicep` parses it
and reports what the compiler would, at a path a reader can find in the template.

Values are checked where they can be known statically: literals; variables (followed); both branches of a
conditional; a parameter's declared type, ``@allowed`` values, bounds and literal default (the default not inside a
conditional branch, whose condition may exclude exactly the default), and what main.bicep passes for a module's
parameter. Anything else (function calls, references, operators) is accepted as whatever type it needs; a string
interpolation is accepted as any string.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra import bicep
from tests.infra.bicep import Json

# Where the type files are found, after BICEP_TYPES_DIR: a copy vendored beside this module, the shared reference.
TYPES_DIRS = (
    Path(__file__).with_name("bicep-types"),
    Path(__file__).resolve().parents[3] / "shared" / "reference" / "bicep-types",
)
REQUIRED, READ_ONLY, WRITE_ONLY = 1, 2, 4  # property flags (8, deploy-time constant, is not checked)
SCOPES = {"tenant": 1, "managementGroup": 2, "subscription": 4, "resourceGroup": 8, "extension": 16}
_KINDS = {"StringType": "string", "StringLiteralType": "string", "IntegerType": "int", "BooleanType": "bool"}
_KINDS |= {"ObjectType": "object", "DiscriminatedObjectType": "object", "ArrayType": "array"}
_PARAMETER_KINDS = frozenset({"string", "int", "bool", "object", "array"})
# pycep's name of a parameter's bound -> the same bound in the type data (and in Bicep), and its side (-1: lower).
_BOUNDS = {"min_value": ("minValue", -1), "max_value": ("maxValue", 1)}
_BOUNDS |= {"min_length": ("minLength", -1), "max_length": ("maxLength", 1)}
_INTERPOLATION = re.compile(r"(?<!\\)\$\{[^}]*\}")
_DOTTED = re.compile(r"(?<![\w.)\]'])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_TYPE_FILE = re.compile(r"^(?P<provider>[^_]+)_(?P<namespace>[^_]+)_(?P<version>.+)\.json$")
_UNKNOWN: Json = {"function": {"type": "unknown"}}  # stands in for a value only known at deployment

TypeEntry = dict[str, Any]
Issue = tuple[str, str]  # (property path, message)


@dataclass(frozen=True)
class Problem:
    """One finding, worded so that a failing test's output alone says where and what."""

    symbol: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.symbol}: {self.path}: {self.message}"


@dataclass(frozen=True)
class TypeFile:
    name: str
    entries: list[TypeEntry]

    def deref(self, ref: Mapping[str, str]) -> TypeEntry:
        """A ref inside a bicep-types-az types.json is always ``#/<index>`` into the same file."""
        return self.entries[int(ref["$ref"].rsplit("/", 1)[1])]


@dataclass(frozen=True)
class TypeIndex:
    files: dict[str, TypeFile]
    resources: dict[str, tuple[TypeFile, TypeEntry]]  # 'microsoft.web/sites@2024-04-01' -> its ResourceType

    def lookup(self, resource_type: str, api_version: str) -> tuple[TypeFile, TypeEntry] | str:
        """The ResourceType entry (types are case-insensitive), or a message naming the file to ask for."""
        found = self.resources.get(f"{resource_type}@{api_version}".lower())
        if found is not None:
            return found
        namespace = resource_type.split("/", 1)[0].lower()
        providers = {m["provider"] for f in self.files if (m := _TYPE_FILE.match(f)) and m["namespace"] == namespace}
        provider = min(providers) if providers else namespace.removeprefix("microsoft.")
        wanted = f"{provider}_{namespace}_{api_version}.json"
        if wanted in self.files:
            known = [key.split("@")[0] for key in self.resources if key.endswith(f"@{api_version}".lower())]
            close = difflib.get_close_matches(resource_type.lower(), known, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            return f"{resource_type}@{api_version} is not a resource type in {wanted}{hint}"
        source = f"Azure/bicep-types-az generated/{provider}/{namespace}/{api_version}/types.json"
        return f"no type data for {resource_type}@{api_version}: ask for {wanted} ({source})"


@cache
def load_index(root: Path | None = None) -> TypeIndex:
    """All type files, indexed by resource type; read once per process (about 1 MB of JSON)."""
    found = next((folder for folder in TYPES_DIRS if folder.is_dir()), TYPES_DIRS[-1])
    root = root or Path(os.environ.get("BICEP_TYPES_DIR") or found)
    paths = sorted(root.glob("*.json"))
    assert paths, f"no Bicep type files in {root} (set BICEP_TYPES_DIR to the folder holding them)"
    files = {path.name: TypeFile(path.name, json.loads(path.read_text(encoding="utf-8"))) for path in paths}
    entries = [(types, entry) for types in files.values() for entry in types.entries]
    resources = {entry["name"].lower(): (types, entry) for types, entry in entries if entry["$type"] == "ResourceType"}
    return TypeIndex(files, resources)


def display_symbol(symbol: str) -> str:
    """pycep names a nested resource ``parent__child``; Bicep writes it ``parent::child``."""
    return symbol.replace("__", "::")


def check_resource(resource: bicep.Resource, index: TypeIndex | None = None) -> list[Problem]:
    """Everything the type data proves wrong about one declared resource, and about its file's reads of it."""
    found = (index or load_index()).lookup(resource.type, resource.api_version)
    symbol = display_symbol(resource.symbol)
    if isinstance(found, str):
        return [Problem(symbol, "type", found)]
    types, resource_type = found
    checker = _Checker(_context(resource.file), types)
    issues = [*checker.declaration(resource, resource_type), *checker.reads(resource.symbol, resource_type)]
    return [Problem(symbol, path, message) for path, message in issues]


def check_template(path: Path, index: TypeIndex | None = None) -> list[Problem]:
    return [problem for resource in bicep.resources(path) for problem in check_resource(resource, index)]


@dataclass(frozen=True)
class _Context:
    """What a bare string can name in one file: pycep returns identifiers and string literals alike as ``str``."""

    file: Path
    tree: Json
    parameters: Mapping[str, Json]
    variables: Mapping[str, Json]
    resources: Mapping[str, bicep.Resource]
    modules: Mapping[str, Json]
    locals: frozenset[str]  # loop and lambda variables
    target_scope: str


@cache
def _context(file: Path) -> _Context:
    tree = bicep.parse(file)
    locals_ = {
        name
        for node in bicep.walk(tree)
        if isinstance(node, dict) and isinstance(node.get("detail"), dict)
        for key, name in node["detail"].items()
        if isinstance(name, str) and (key in {"item_name", "index_name"} or key.startswith("var_"))
    }
    return _Context(
        file=file,
        tree=tree,
        parameters=tree.get("parameters") or {},
        variables=tree.get("variables") or {},
        resources={resource.symbol: resource for resource in bicep.resources(file)},
        modules=tree.get("modules") or {},
        locals=frozenset(locals_),
        target_scope=((tree.get("globals") or {}).get("scope") or {}).get("value") or "resourceGroup",
    )


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m[1], m[1]), text)


def _key(raw: str) -> str:
    """pycep keeps the quotes of a quoted object key (``'azd-service-name'``)."""
    return _unescape(raw[1:-1]) if len(raw) >= 2 and raw[0] == raw[-1] == "'" else raw


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Json) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "an array" if isinstance(value, list) else "an object" if isinstance(value, dict) else repr(value)


def _accessor(node: Json, kind: str = "property_accessor") -> Mapping[str, Json] | None:
    found = node.get("operator") if isinstance(node, dict) and len(node) == 1 else None
    return found["operands"] if isinstance(found, dict) and found.get("type") == kind else None


class _Checker:
    def __init__(self, context: _Context, types: TypeFile) -> None:
        self.ctx = context
        self.types = types

    # --- what a value is ------------------------------------------------------------------------------------------
    def classify(self, value: Json) -> tuple[str, Json]:
        if isinstance(value, str):
            if value in self.ctx.parameters:
                return "parameter", value
            if value in self.ctx.variables:
                return "variable", value
            if value in self.ctx.resources or value in self.ctx.modules or value in self.ctx.locals:
                return "expression", value
            return ("interpolation", value) if _INTERPOLATION.search(value) else ("literal", _unescape(value))
        if isinstance(value, dict) and "loop_type" in value and "config" in value:
            return "loop", value["config"]
        if isinstance(value, dict) and len(value) == 1 and ("operator" in value or "function" in value):
            operands = (value.get("operator") or {}).get("operands") or {}
            if _accessor(value, "minus") is not None and isinstance(operands.get("integer_value"), int):
                return "literal", -operands["integer_value"]
            if _accessor(value, "conditional") is not None:
                return "conditional", (operands["true_value"], operands["false_value"])
            return "expression", value
        return "literal", value

    def known_string(self, value: Json, depth: int = 0) -> str | None:
        """A string the value is certain to be (a literal, or a variable holding one)."""
        kind, inner = self.classify(value)
        if kind == "variable" and depth < 20:
            return self.known_string(self.ctx.variables[inner]["value"], depth + 1)
        return inner if kind == "literal" and isinstance(inner, str) else None

    # --- the type data ----------------------------------------------------------------------------------------------
    def merged(self, t: TypeEntry, variants: list[Mapping[str, str]]) -> dict[str, Any]:
        """A discriminated type's base properties with those of the given variants."""
        parts = [t["baseProperties"], *(self.types.deref(e)["properties"] for e in variants)]
        return {key: value for part in parts for key, value in part.items()}

    def alternatives(self, t: TypeEntry) -> list[TypeEntry]:
        return [self.types.deref(e) for e in t["elements"]] if t["$type"] == "UnionType" else [t]

    def kinds(self, t: TypeEntry) -> set[str]:
        return {_KINDS.get(e["$type"], "any") for e in self.alternatives(t)}

    def describe(self, t: TypeEntry) -> str:
        kind = t["$type"]
        if kind == "StringLiteralType":
            return repr(t["value"])
        if kind == "UnionType":
            elements = self.alternatives(t)
            known = ", ".join(dict.fromkeys(self.describe(e) for e in elements if e["$type"] != "StringType"))
            if any(e["$type"] == "StringType" and len(e) == 1 for e in elements):
                return f"any string (known values: {known})"  # an extensible enum: Bicep accepts any string
            return f"one of {known}"
        if kind in {"ObjectType", "DiscriminatedObjectType"}:
            return f"an object ({t.get('name', '?')})"
        words = {"StringType": "a string", "IntegerType": "an int", "BooleanType": "a bool", "ArrayType": "an array"}
        limits = [f"{key[:3]} {t[key]}" for key in ("minLength", "minValue", "maxLength", "maxValue") if key in t]
        limits += [f"matching {t['pattern']}"] if "pattern" in t else []
        text = words.get(kind, "any value")
        return f"{text} ({', '.join(limits)})" if limits else text

    # --- values against types -------------------------------------------------------------------------------------
    def check(self, value: Json, t: TypeEntry, path: str, guarded: bool = False, note: str = "") -> list[Issue]:
        """``guarded``: inside a conditional branch, where a parameter's default may be the excluded value."""
        if t["$type"] == "AnyType" or value is None:
            return []
        kind, inner = self.classify(value)
        if kind == "parameter":
            return self.parameter(inner, t, path, guarded)
        if kind == "variable":
            return self.check(self.ctx.variables[inner]["value"], t, path, guarded, f" (variable {inner})")
        if kind == "conditional":
            return [issue for branch in inner for issue in self.check(branch, t, path, True, note)]
        if kind == "interpolation":
            return self.assignable(t, "string", path, f"a string interpolation{note}")
        if kind == "loop":
            arrays = [e for e in self.alternatives(t) if e["$type"] == "ArrayType"]
            if not arrays:
                return self.assignable(t, "array", path, "a for-expression")
            return self.check(inner, self.types.deref(arrays[0]["itemType"]), f"{path}[*]", guarded, note)
        return [] if kind == "expression" else self.literal(inner, t, path, guarded, note)

    def assignable(self, t: TypeEntry, kind: str, path: str, what: str) -> list[Issue]:
        kinds = self.kinds(t)
        return [] if "any" in kinds or kind in kinds else [(path, f"expected {self.describe(t)}, got {what} ({kind})")]

    def literal(self, value: Json, t: TypeEntry, path: str, guarded: bool, note: str) -> list[Issue]:
        kind = t["$type"]
        if kind == "UnionType":
            attempts = [self.literal(value, e, path, guarded, note) for e in self.alternatives(t)]
            if any(not attempt for attempt in attempts):
                return []
            if not (isinstance(value, str) and self.kinds(t) == {"string"}):
                return min(attempts, key=len)
        if kind == "ArrayType" and isinstance(value, list):
            item = self.types.deref(t["itemType"])
            return [i for n, v in enumerate(value) for i in self.check(v, item, f"{path}[{n}]", guarded, note)]
        if kind == "DiscriminatedObjectType" and isinstance(value, dict):
            return self.discriminated(value, t, path, guarded)
        if kind == "ObjectType" and isinstance(value, dict):
            return self.object(value, t, t["properties"], path, guarded)
        if kind == "StringLiteralType":
            ok = value == t["value"]
        elif kind == "StringType":
            ok = isinstance(value, str) and _within(len(value), t, "Length") and _matches(t.get("pattern"), value)
        elif kind == "IntegerType":
            ok = isinstance(value, int) and not isinstance(value, bool) and _within(value, t, "Value")
        else:
            ok = kind == "AnyType" or (kind == "BooleanType" and isinstance(value, bool))
        if ok:
            return []
        literals = [e["value"] for e in self.alternatives(t) if e["$type"] == "StringLiteralType"]
        return [(path, f"expected {self.describe(t)}, got {_show(value)}{note}{_case_hint(value, literals)}")]

    def object(self, value: Json, t: TypeEntry, properties: Mapping[str, Any], path: str, guarded: bool) -> list[Issue]:
        additional, name = t.get("additionalProperties"), t.get("name", "this object")
        issues: list[Issue] = []
        for raw, item in value.items():
            key = _key(raw)
            here, computed = _join(path, key), bool(_INTERPOLATION.search(key))
            declared = None if computed else properties.get(key)
            if declared is None and additional is not None:
                issues += self.check(item, self.types.deref(additional), here, guarded)
            elif declared is None and not computed:  # a computed key with no additionalProperties: not checked
                issues.append((here, _unknown_property(key, properties, name)))
            elif declared is not None and declared["flags"] & READ_ONLY:
                issues.append((here, f"is read-only in {name}: Azure sets it, a template cannot"))
            elif declared is not None:
                issues += self.check(item, self.types.deref(declared["type"]), here, guarded)
        given = {_key(raw) for raw in value}
        for key, declared in properties.items():
            if declared["flags"] & REQUIRED and not declared["flags"] & READ_ONLY and key not in given:
                wanted = self.describe(self.types.deref(declared["type"]))
                issues.append((_join(path, key), f"is required by {name} but not set (expected {wanted})"))
        return issues

    def discriminated(self, value: Json, t: TypeEntry, path: str, guarded: bool) -> list[Issue]:
        """The discriminator's literal value picks the variant; an unknown value passes if any variant fits."""
        field, elements = t["discriminator"], t["elements"]
        given = {_key(raw): item for raw, item in value.items()}
        chosen = self.known_string(given[field]) if field in given else None

        def attempt(ref: Mapping[str, str]) -> list[Issue]:
            return self.object(value, self.types.deref(ref), self.merged(t, [ref]), path, guarded)

        if chosen is None:
            attempts = [attempt(ref) for ref in elements.values()]
            return [] if any(not a for a in attempts) else min(attempts, key=len)
        if chosen not in elements:
            expected, hint = ", ".join(map(repr, elements)), _case_hint(chosen, list(elements))
            return [(_join(path, field), f"expected one of {expected} ({t['name']}), got {chosen!r}{hint}")]
        return attempt(elements[chosen])

    def parameter(self, name: str, t: TypeEntry, path: str, guarded: bool) -> list[Issue]:
        declaration = self.ctx.parameters[name]
        if declaration.get("type") not in _PARAMETER_KINDS:
            return []  # a user-defined type: not followed
        issues = self.assignable(t, declaration["type"], path, f"parameter {name}")
        if issues:
            return issues
        decorators = {d["type"]: d.get("argument") for d in declaration.get("decorators") or []}
        allowed, default = decorators.get("allowed"), declaration.get("default")
        if isinstance(allowed, list):
            for option in allowed:
                value = _unescape(option) if isinstance(option, str) else option
                issues += self.literal(value, t, path, guarded, f" (allowed by parameter {name})")
        elif default is not None and not guarded:
            issues += self.check(default, t, path, True, f" (default of parameter {name})")
        for bound in self.alternatives(t):
            for decorator, (limit, side) in _BOUNDS.items():
                given = decorators.get(decorator)
                if limit in bound and isinstance(given, int) and (given - bound[limit]) * side > 0:
                    issues.append((path, f"parameter {name} has @{limit}({given}), expected {self.describe(bound)}"))
        return issues + self.passed_by_main(name, t, path, guarded)

    def passed_by_main(self, name: str, t: TypeEntry, path: str, guarded: bool) -> list[Issue]:
        """A module's parameter also takes whatever main.bicep passes for it: checked in main.bicep's terms."""
        if self.ctx.file.resolve() == bicep.MAIN.resolve():
            return []
        try:
            _, passed = bicep.module_call(self.ctx.file)
        except AssertionError:
            return []  # not a module of main.bicep (a template a test wrote)
        if name not in passed:
            return []
        main = _Checker(_context(bicep.MAIN), self.types)
        found = main.check(passed[name], t, path, guarded)
        return [(where, f"{message} [passed for parameter {name} by main.bicep]") for where, message in found]

    # --- the declaration --------------------------------------------------------------------------------------------
    def declaration(self, resource: bicep.Resource, resource_type: TypeEntry) -> list[Issue]:
        body = dict(resource.body)
        nested = "depends_on" in body and "__" in resource.symbol  # how pycep marks a flattened nested resource
        parent = resource.symbol.rsplit("__", 1)[0] if nested else body.pop("parent", None)
        scope = body.pop("scope", None)
        body.pop("dependsOn", None)
        body.pop("depends_on", None)
        issues = self.parent(parent, resource) if parent is not None and not nested else []
        issues += self.name_shape(body.get("name"), parent is not None, resource.type)
        issues += self.scope(scope, parent, resource, resource_type)
        if resource.existing:
            extra = [(key, "an existing resource takes only name, parent and scope") for key in body if key != "name"]
            return issues + extra
        kind, name = self.classify(body.get("name"))
        if parent is None and kind in {"literal", "interpolation"} and "/" in _INTERPOLATION.sub("", str(name)):
            last = str(name).rsplit("/", 1)[1]  # 'parent/child': only the child's segment picks a name-keyed variant
            body["name"] = _UNKNOWN if _INTERPOLATION.search(last) else last
        return issues + self.check(body, self.types.deref(resource_type["body"]), "")

    def parent(self, parent: Json, resource: bicep.Resource) -> list[Issue]:
        if not isinstance(parent, str) or parent not in self.ctx.resources:
            return [("parent", f"must be a resource declared in this file, got {_show(parent)}")]
        parent_type, wanted = self.ctx.resources[parent].type, resource.type.rsplit("/", 1)[0]
        if parent_type.lower() != wanted.lower():
            return [("parent", f"{parent} is a {parent_type}, but a {resource.type} needs a parent of type {wanted}")]
        return []

    def name_shape(self, name: Json, has_parent: bool, resource_type: str) -> list[Issue]:
        """A child's name is its own segment under a parent, else 'parent/child' with one segment per level."""
        kind, text = self.classify(name)
        if kind not in {"literal", "interpolation"} or not isinstance(text, str):
            return []
        segments, expected = _INTERPOLATION.sub("x", text).count("/") + 1, 1 if has_parent else resource_type.count("/")
        if segments == expected:
            return []
        shape = "the child's own segment, without '/'" if has_parent else f"{expected} '/'-separated segments"
        return [("name", f"a {resource_type}{'' if has_parent else ' without parent'} needs {shape}; got {text!r}")]

    def scope(self, scope: Json, parent: Json, resource: bicep.Resource, resource_type: TypeEntry) -> list[Issue]:
        """Bicep deploys a resource at the file's targetScope, or, for an extension resource only, onto another."""
        if scope is not None:
            on_resource = isinstance(scope, str) and scope in self.ctx.resources and not resource.existing
            if on_resource and not resource_type["writableScopes"] & SCOPES["extension"]:
                return [("scope", f"only an extension resource takes a resource as scope; {resource.type} is not one")]
            return []
        if parent in self.ctx.resources and "scope" in self.ctx.resources[parent].body:
            return []  # deployed wherever its parent is: not followed
        scopes = resource_type["readableScopes" if resource.existing else "writableScopes"]
        if SCOPES.get(self.ctx.target_scope, 0) & scopes:
            return []
        allowed = [name for name, bit in SCOPES.items() if bit & scopes] or "none"
        verb = "read (existing)" if resource.existing else "deployed"
        return [("type", f"cannot be {verb} at targetScope {self.ctx.target_scope!r}; the type allows {allowed}")]

    # --- reads ------------------------------------------------------------------------------------------------------
    def reads(self, symbol: str, resource_type: TypeEntry) -> list[Issue]:
        """Every ``symbol.a.b`` in the file must name readable properties of the resource type."""
        issues: list[Issue] = []
        for chain in _chains(self.ctx.tree):
            t = self.types.deref(resource_type["body"])
            for depth, segment in enumerate(chain[1:] if chain[0] == symbol else [], start=2):
                if t["$type"] == "DiscriminatedObjectType":  # any variant's properties
                    t = {**t, "$type": "ObjectType", "properties": self.merged(t, list(t["elements"].values()))}
                declared = t["properties"].get(segment) if t["$type"] == "ObjectType" else None
                if declared is None and t["$type"] == "ObjectType" and t.get("additionalProperties") is None:
                    message = _unknown_property(segment, t["properties"], t.get("name", "?"), reading=True)
                    issues.append((".".join(chain[:depth]), message))
                elif declared is not None and declared["flags"] & WRITE_ONLY:
                    issues.append((".".join(chain[:depth]), f"is write-only in {t['name']}: it cannot be read back"))
                elif declared is not None:
                    t = self.types.deref(declared["type"])
                    continue
                break  # reported, or into an array, a union, a map or any: not followed
        return issues


def _chains(tree: Json) -> Iterator[list[str]]:
    """Each outermost ``a.b.c`` chain in ``tree``, up to its first part that is not a plain name (``b[0]``, ``f()``)."""
    nodes = [node for node in bicep.walk(tree) if _accessor(node) is not None]
    inner = {id((_accessor(node) or {})["operand_2"]) for node in nodes}
    for node in nodes:
        chain: list[str] = []
        rest = node
        while (operands := _accessor(rest)) is not None and isinstance(operands["operand_1"], str):
            chain.append(operands["operand_1"])
            rest = operands["operand_2"]
        chain += [rest] if isinstance(rest, str) else []
        if id(node) not in inner and len(chain) > 1:
            yield chain
    for text in (node for node in bicep.walk(tree) if isinstance(node, str)):  # pycep leaves ${...} unparsed
        yield from (dotted.split(".") for part in _INTERPOLATION.findall(text) for dotted in _DOTTED.findall(part))


def _within(value: int, t: TypeEntry, suffix: str) -> bool:
    return bool(t.get(f"min{suffix}", value) <= value <= t.get(f"max{suffix}", value))


def _matches(pattern: str | None, value: str) -> bool:
    try:
        return pattern is None or re.search(pattern, value) is not None
    except re.error:
        return True  # a .NET-only construct: not checked


def _case_hint(value: Json, options: list[str]) -> str:
    same = [o for o in options if isinstance(value, str) and o.lower() == value.lower() and o != value]
    return f" (values are case-sensitive: did you mean {same[0]!r}?)" if same else ""


def _unknown_property(key: str, properties: Mapping[str, Any], type_name: str, reading: bool = False) -> str:
    same = [k for k in properties if k.lower() == key.lower()]
    if same:
        return f"is not a property of {type_name}: names are case-sensitive, did you mean {same[0]!r}?"
    candidates = [k for k, p in properties.items() if reading or not p["flags"] & READ_ONLY]
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(map(repr, close))}?" if close else f"expected one of {sorted(candidates)}"
    return f"is not a property of {type_name}; {hint}"
