"""YAML 1.2 loading with positions, for every file a person writes (plans, contracts, kfm.yaml).

Loading is strict: one document, a mapping at the top, no duplicate keys, an alias/expansion budget (so a
"billion laughs" file is refused by counting, not by a timeout), timestamps kept as the strings written, and every
error located at file:line:col. ``edit`` changes a file in round trip, so comments and layout survive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfm_gitops._fs import atomic_write, display_path, read_text
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


def _yaml_factory() -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import RoundTripConstructor

    class _Constructor(RoundTripConstructor):
        pass

    # Timestamps stay the strings that were written: schema types stay honest, and a naive timestamp is seen.
    _Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    return yaml


def _mark_location(shown: str, mark: Any) -> Location:
    if mark is None:
        return Location(shown)
    return Location(shown, int(mark.line) + 1, int(mark.column) + 1)


def _expanded_size(root: Any) -> tuple[int, int]:
    """(number of nodes once every alias is expanded, number of alias references), without expanding."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    memo: dict[int, int] = {}
    seen_count: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _TooDeep()
        nid = id(node)
        seen_count[nid] = seen_count.get(nid, 0) + 1
        if nid in memo:
            return memo[nid]
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
        memo[nid] = total
        return total

    n = size(root, 0)
    aliases = sum(c - 1 for c in seen_count.values())
    return n, aliases


class _TooDeep(Exception):
    pass


def _plain(obj: Any, path: JsonPath, keys: dict[JsonPath, tuple[int, int]],
           values: dict[JsonPath, tuple[int, int]], depth: int) -> Any:
    """Convert ruamel's round-trip objects to plain JSON-like data, recording positions."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if depth > MAX_DEPTH:
        raise _TooDeep()
    if isinstance(obj, CommentedMap):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = k if isinstance(k, str) else _nonstring_key(k)
            child = (*path, key)
            try:
                kl, kc = obj.lc.key(k)
                keys[child] = (kl + 1, kc + 1)
                vl, vc = obj.lc.value(k)
                values[child] = (vl + 1, vc + 1)
            except (KeyError, TypeError):  # merged keys carry no position of their own
                pass
            out[str(key)] = _plain(v, child, keys, values, depth + 1)
        return out
    if isinstance(obj, CommentedSeq):
        items: list[Any] = []
        for i, v in enumerate(obj):
            child = (*path, i)
            try:
                il, ic = obj.lc.item(i)
                values[child] = (il + 1, ic + 1)
                keys[child] = (il + 1, ic + 1)
            except (KeyError, TypeError):
                pass
            items.append(_plain(v, child, keys, values, depth + 1))
        return items
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    return str(obj)  # dates and other scalars: as written


class _NonStringKey(Exception):
    def __init__(self, key: object) -> None:
        self.key = key


def _nonstring_key(k: object) -> str:
    raise _NonStringKey(k)


def loads(text: str, shown: str) -> Document | list[Finding]:
    """Parse one YAML document whose top level must be a mapping."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = _yaml_factory()
    top = Location(shown, 1, 1)
    try:
        nodes = list(yaml.compose_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        return [Finding("YAML_SYNTAX", f"invalid YAML: {problem}", _mark_location(shown, mark),
                        hint="fix the YAML syntax at this position")]
    except RecursionError:
        return [Finding("YAML_TOO_DEEP", f"nesting deeper than {MAX_DEPTH} levels", top)]
    except YAMLError as exc:
        return [Finding("YAML_SYNTAX", f"invalid YAML: {exc}", top)]
    docs = [n for n in nodes if n is not None]
    if not docs:
        return [Finding("FILE_EMPTY", "the file holds no YAML document", top)]
    if len(docs) > 1:
        second = docs[1]
        return [Finding("YAML_MULTIPLE_DOCUMENTS",
                        f"{len(docs)} YAML documents in one file; exactly one is expected",
                        _mark_location(shown, second.start_mark),
                        hint="remove the '---' separators and split the file")]
    root = docs[0]
    try:
        expanded, aliases = _expanded_size(root)
    except (_TooDeep, RecursionError):
        return [Finding("YAML_TOO_DEEP", f"nesting deeper than {MAX_DEPTH} levels", top)]
    if aliases > MAX_ALIASES or expanded > MAX_EXPANDED_NODES:
        return [Finding("YAML_ALIAS_BUDGET",
                        f"aliases expand to {expanded} nodes ({aliases} alias references); the budget is "
                        f"{MAX_EXPANDED_NODES} nodes and {MAX_ALIASES} aliases",
                        top, hint="write the values out instead of nesting anchors and aliases")]
    from ruamel.yaml.nodes import MappingNode

    if not isinstance(root, MappingNode):
        return [Finding("YAML_NOT_MAPPING", "the top level must be a mapping of keys to values",
                        _mark_location(shown, root.start_mark))]
    try:
        obj = yaml.constructor.construct_document(root)
    except MarkedYAMLError as exc:
        code = "YAML_DUPLICATE_KEY" if type(exc).__name__ == "DuplicateKeyError" else "YAML_SYNTAX"
        problem = (exc.problem or "invalid YAML").split("\n")[0]
        return [Finding(code, problem, _mark_location(shown, exc.problem_mark or exc.context_mark),
                        hint="each key may appear once in a mapping" if code == "YAML_DUPLICATE_KEY" else None)]
    except (YAMLError, ValueError, TypeError) as exc:
        return [Finding("YAML_SYNTAX", f"invalid YAML: {exc}", top)]
    keys: dict[JsonPath, tuple[int, int]] = {}
    values: dict[JsonPath, tuple[int, int]] = {(): (root.start_mark.line + 1, root.start_mark.column + 1)}
    try:
        data = _plain(obj, (), keys, values, 0)
    except _TooDeep:
        return [Finding("YAML_TOO_DEEP", f"nesting deeper than {MAX_DEPTH} levels", top)]
    except _NonStringKey as exc:
        return [Finding("YAML_KEY_NOT_STRING", f"key {exc.key!r} is not a string; quote it", top)]
    bad = next(_non_finite(data, ()), None)
    if bad is not None:
        return [Finding("YAML_NOT_FINITE", "NaN and infinite numbers are not allowed",
                        Document(shown, data, keys, values).locate(bad))]
    return Document(shown, data, keys, values)


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


__all__ = ["Document", "JsonPath", "display_path", "edit", "load", "loads"]
