"""YAML 1.2 (core schema) loading with positions, for every file a person writes (plans, contracts, kfm.yaml).

Loading is strict: one document, a mapping at the top, no duplicate keys, an alias/expansion budget (so a
"billion laughs" file is refused by counting, not by a timeout), timestamps kept as the strings written, and every
error located at file:line:col. ``edit`` changes a file in round trip, so comments and layout survive.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfm_gitops._fs import atomic_write, display_path, read_text
from kfm_gitops.errors import KfmError
from kfm_gitops.findings import Finding, Location

# A plan or contract has tens to hundreds of nodes. Anything that expands past this is refused.
MAX_EXPANDED_NODES = 50_000
MAX_ALIASES = 200
MAX_DEPTH = 64

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """A loaded YAML document as plain data, with the 1-based position of every key and value."""

    path: str
    data: dict[str, Any]
    key_positions: dict[JsonPath, tuple[int, int]]
    value_positions: dict[JsonPath, tuple[int, int]]

    def locate(self, path: JsonPath, *, key: bool = False) -> Location:
        """The position of ``path``; of its nearest existing ancestor when it does not exist."""
        table = self.key_positions if key else self.value_positions
        p = tuple(path)
        while p:
            if p in table:
                line, col = table[p]
                return Location(self.path, line, col)
            if p in self.value_positions:
                line, col = self.value_positions[p]
                return Location(self.path, line, col)
            p = p[:-1]
        line, col = self.value_positions.get((), (1, 1))
        return Location(self.path, line, col)


# YAML 1.2 core schema: the only implicit types. Everything else plain is a string (timestamps included).
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_CORE = "tag:yaml.org,2002:"


# An explicit core tag accepts a plain value that resolves to its type.
_EXPLICIT: dict[str, Any] = {
    _CORE + "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    _CORE + "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    _CORE + "bool": lambda v: isinstance(v, bool),
    _CORE + "null": lambda v: v is None,
}


class _Refused(KfmError):
    """A file the loader refuses; ``loads`` turns it into a finding at ``mark``."""

    code = "YAML_SYNTAX"

    def __init__(self, code: str, message: str, mark: Any, hint: str | None = None) -> None:
        super().__init__(message, code=code, hint=hint)
        self.mark = mark


def _resolve_plain(value: str) -> Any:
    if _NULL.fullmatch(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT10.fullmatch(value):
        return int(value, 10)
    if _INT8.fullmatch(value):
        return int(value[2:], 8)
    if _INT16.fullmatch(value):
        return int(value[2:], 16)
    if _FLOAT.fullmatch(value):
        return float(value)
    if _INF.fullmatch(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.fullmatch(value):
        return float("nan")
    return value


def _scalar(event: Any) -> Any:
    tag, value = event.tag, event.value
    plain = event.implicit[0] and not event.style
    if tag in (None, "!"):
        return _resolve_plain(value) if plain else value
    if tag == _CORE + "str":
        return value
    if tag in _EXPLICIT:
        resolved = _resolve_plain(value)
        name = tag[len(_CORE):]
        if _EXPLICIT[tag](resolved):
            return float(resolved) if name == "float" else resolved
        raise _Refused("YAML_TAG", f"{value!r} is not a valid {tag[len(_CORE):]}", event.start_mark)
    raise _Refused("YAML_TAG", f"the tag {tag} is not allowed here", event.start_mark,
                   "plain YAML only: strings, numbers, booleans, null, lists and mappings")


class _Frame:
    __slots__ = ("anchor", "explicit", "key", "key_mark", "mark", "merges", "path", "size", "value")

    def __init__(self, value: Any, path: JsonPath, mark: Any, anchor: str | None) -> None:
        self.value = value
        self.path = path
        self.mark = mark
        self.anchor = anchor
        self.size = 1
        self.key: Any = _NO_KEY
        self.key_mark: Any = None
        self.explicit: set[str] = set()
        self.merges: list[Any] = []


_NO_KEY = object()


def _pos(mark: Any) -> tuple[int, int]:
    return int(mark.line) + 1, int(mark.column) + 1


class _Composer:
    """Builds one document from parser events: nodes attached to their parents as they come, every position
    recorded, every limit (depth, expanded nodes, aliases, documents) checked before anything is expanded."""

    def __init__(self) -> None:
        self.keys: dict[JsonPath, tuple[int, int]] = {}
        self.values: dict[JsonPath, tuple[int, int]] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.root: Any = _NO_KEY
        self.documents = 0
        self.expanded = 0
        self.aliases = 0

    def child_path(self) -> JsonPath:
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        return (*top.path, top.key)

    def attach(self, value: Any, mark: Any, size: int, is_scalar_key_candidate: bool) -> None:
        self.expanded += size
        if self.expanded > MAX_EXPANDED_NODES:
            raise _Refused("YAML_ALIAS_BUDGET", f"the document expands to more than {MAX_EXPANDED_NODES} nodes",
                           mark, "write the values out instead of nesting anchors and aliases")
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            path = (*top.path, len(top.value))
            self.keys[path] = self.values[path] = _pos(mark)
            top.value.append(value)
        elif top.key is _NO_KEY:
            self._key(top, value, mark, is_scalar_key_candidate)
        else:
            self._value(top, value, mark)

    def _key(self, top: _Frame, value: Any, mark: Any, is_scalar_key_candidate: bool) -> None:
        if not is_scalar_key_candidate or not isinstance(value, str):
            raise _Refused("YAML_KEY_NOT_STRING", f"key {value!r} is not a string; quote it", mark)
        if value in top.explicit:
            raise _Refused("YAML_DUPLICATE_KEY", f"duplicate key {value!r}", mark,
                           "each key may appear once in a mapping")
        top.key, top.key_mark = value, mark

    def _value(self, top: _Frame, value: Any, mark: Any) -> None:
        key = top.key
        top.key = _NO_KEY
        if key == "<<" and (isinstance(value, dict) or (
                isinstance(value, list) and all(isinstance(v, dict) for v in value))):
            top.merges.extend(value if isinstance(value, list) else [value])
            return
        path = (*top.path, key)
        self.keys[path] = _pos(top.key_mark)
        self.values[path] = _pos(mark)
        top.explicit.add(key)
        top.value[key] = value

    def scalar(self, event: Any) -> None:
        value = _scalar(event)
        if event.anchor:
            self.anchors[event.anchor] = (value, 1)
        self.attach(value, event.start_mark, 1, True)

    def start(self, event: Any, mapping: bool) -> None:
        if event.tag not in (None, "!", _CORE + "map", _CORE + "seq"):
            raise _Refused("YAML_TAG", f"the tag {event.tag} is not allowed here", event.start_mark,
                           "plain YAML only: strings, numbers, booleans, null, lists and mappings")
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused("YAML_TOO_DEEP", f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        path = self.child_path() if self.stack else ()
        if not self.stack:
            self.values[()] = _pos(event.start_mark)
        elif self.stack[-1].key is _NO_KEY and isinstance(self.stack[-1].value, dict):
            raise _Refused("YAML_KEY_NOT_STRING", "a key must be a string, not a list or mapping", event.start_mark)
        self.stack.append(_Frame({} if mapping else [], path, event.start_mark, event.anchor))

    def end(self) -> None:
        frame = self.stack.pop()
        for merged in frame.merges:
            for k, v in merged.items():
                frame.value.setdefault(k, v)
        if frame.anchor:
            self.anchors[frame.anchor] = (frame.value, frame.size)
        # The frame's children were counted as they came: the budget takes only the frame itself, its parent's size
        # (for the anchors that may name it) takes the whole subtree.
        if self.stack:
            self.stack[-1].size += frame.size - 1
        self.attach(frame.value, frame.mark, 1, False)

    def alias(self, event: Any) -> None:
        if event.anchor not in self.anchors:
            raise _Refused("YAML_SYNTAX", f"alias *{event.anchor} names no anchor", event.start_mark)
        value, size = self.anchors[event.anchor]
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise _Refused("YAML_ALIAS_BUDGET", f"more than {MAX_ALIASES} aliases", event.start_mark,
                           "write the values out instead of nesting anchors and aliases")
        self.attach(value, event.start_mark, size, True)

    def document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise _Refused("YAML_MULTIPLE_DOCUMENTS", "several YAML documents in one file; exactly one is expected",
                           event.start_mark, "remove the '---' separators and split the file")

    def feed(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "ScalarEvent":
            self.scalar(event)
        elif kind in ("MappingStartEvent", "SequenceStartEvent"):
            self.start(event, kind == "MappingStartEvent")
        elif kind in ("MappingEndEvent", "SequenceEndEvent"):
            self.end()
        elif kind == "AliasEvent":
            self.alias(event)
        elif kind == "DocumentStartEvent":
            self.document(event)


def _build(text: str, shown: str) -> Document:
    """Compose one document from the parser's events, with every position and every limit checked as it goes.

    Events come from libyaml when PyYAML has it (fast) or from PyYAML's pure parser; neither recurses, so a deep
    or huge file cannot overflow a stack, and nothing is expanded before it is counted.
    """
    import yaml

    loader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
    composer = _Composer()
    try:
        events: Iterator[Any] = yaml.parse(text, Loader=loader)
        for event in events:
            composer.feed(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "nesting depth" in problem:  # libyaml's own limit, far above ours
            raise _Refused("YAML_TOO_DEEP", f"nesting deeper than {MAX_DEPTH} levels", mark) from exc
        raise _Refused("YAML_SYNTAX", f"invalid YAML: {problem}", mark, _syntax_hint(text, mark)) from exc
    except yaml.YAMLError as exc:
        raise _Refused("YAML_SYNTAX", f"invalid YAML: {exc}", None) from exc
    if composer.root is _NO_KEY:
        raise _Refused("FILE_EMPTY", "the file holds no YAML document", None)
    if not isinstance(composer.root, dict):
        raise _Refused("YAML_NOT_MAPPING", "the top level must be a mapping of keys to values", None)
    return Document(shown, composer.root, composer.keys, composer.values)


def _syntax_hint(text: str, mark: Any) -> str:
    """What to do about a syntax error, from the text around it."""
    lines = text.splitlines()
    line = int(mark.line) if mark is not None else 0
    around = lines[max(0, line - 1): line + 1]
    if any("\t" in row[: len(row) - len(row.lstrip())] for row in around):
        return "indent with spaces: YAML does not allow tabs for indentation"
    if mark is not None and 0 < line < len(lines) + 1:
        return f"check the indentation and the quoting on line {line} and line {line + 1}"
    return "fix the YAML syntax at this position"


def loads(text: str, shown: str) -> Document | list[Finding]:
    """Parse one YAML 1.2 document whose top level must be a mapping."""
    try:
        doc = _build(text, shown)
    except _Refused as exc:
        where = _mark_location(shown, exc.mark) if exc.mark is not None else Location(shown, 1, 1)
        return [Finding(exc.code, exc.message, where, hint=exc.hint)]
    bad = next(_non_finite(doc.data, ()), None)
    if bad is not None:
        return [Finding("YAML_NOT_FINITE", "NaN and infinite numbers are not allowed", doc.locate(bad))]
    return doc


def _mark_location(shown: str, mark: Any) -> Location:
    if mark is None:
        return Location(shown)
    return Location(shown, int(mark.line) + 1, int(mark.column) + 1)


def _non_finite(obj: Any, path: JsonPath) -> Iterator[JsonPath]:
    if isinstance(obj, float) and not math.isfinite(obj):
        yield path
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _non_finite(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _non_finite(v, (*path, i))


def load(path: Path, *, shown: str | None = None) -> Document | list[Finding]:
    where = shown if shown is not None else display_path(path)
    text = read_text(path, shown=where)
    if isinstance(text, Finding):
        return [text]
    return loads(text, where)


def edit(path: Path, mutate: Callable[[Any], None]) -> None:
    """Change a YAML file in round trip: comments, order and layout of untouched parts survive."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    text = path.read_text(encoding="utf-8")
    doc = yaml.load(text)
    mutate(doc)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    atomic_write(path, buf.getvalue().encode("utf-8"))


def replace_scalar(path: Path, keys: tuple[str, ...], value: str) -> None:
    """Set the scalar at ``keys`` (a path of mapping keys) to ``value``, changing those characters and nothing else:
    comments, layout, quoting elsewhere, line endings and a byte order mark survive byte for byte."""
    import json

    import yaml

    raw = path.read_bytes()
    bom = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
    text = raw[len(bom):].decode("utf-8")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            raise ValueError(f"{'.'.join(keys)}: {key!r} is not below a mapping")
        node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
        if node is None:
            raise ValueError(f"{'.'.join(keys)}: no key {key!r}")
    if not isinstance(node, yaml.ScalarNode):
        raise ValueError(f"{'.'.join(keys)} is not a scalar")
    start, end = node.start_mark.index, node.end_mark.index
    new = text[:start] + json.dumps(value) + text[end:]  # a JSON string is a double-quoted YAML scalar
    atomic_write(path, bom + new.encode("utf-8"))


__all__ = ["Document", "JsonPath", "display_path", "edit", "load", "loads", "replace_scalar"]
