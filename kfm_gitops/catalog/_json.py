"""The catalogs' one JSON form (sorted keys, two-space indent, a final newline), JSON pointers, and problems found
at a pointer, turned into findings at the file, line and column where the pointer lands."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kfm_gitops.findings import Finding, Location


def dumps(doc: Any) -> bytes:
    """The catalogs' serialisation: the same document gives the same bytes everywhere (no NaN, no infinity)."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer to ``parts``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def parts_of(ptr: str) -> tuple[str | int, ...]:
    """The steps of a JSON pointer; a step of digits is an array index."""
    if not ptr:
        return ()
    steps = [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]]
    return tuple(int(s) if s.isdigit() else s for s in steps)


def _at(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def dict_at(obj: Any, *keys: str) -> dict[str, Any]:
    """``obj[k1][k2]...`` when that is an object, else {}: checks read hand-edited files without tripping."""
    found = _at(obj, keys)
    return found if isinstance(found, dict) else {}


def list_at(obj: Any, *keys: str) -> list[Any]:
    """``obj[k1][k2]...`` when that is an array, else []."""
    found = _at(obj, keys)
    return found if isinstance(found, list) else []


def dicts(items: Iterable[Any]) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong at a JSON pointer of one catalog file (``file`` is relative to the version folder)."""

    file: str
    pointer: str
    code: str
    message: str
    hint: str | None = None


class Locator:
    """Finds the line and column of JSON pointers in the files of one version folder, parsing each file (with
    positions) only when a problem in it needs locating."""

    def __init__(self, folder: str, texts: Mapping[str, str]) -> None:
        self.folder = folder
        self.texts = texts
        self._docs: dict[str, Any] = {}

    def shown(self, file: str) -> str:
        return f"{self.folder}/{file}" if self.folder else file

    def locate(self, file: str, ptr: str) -> Location:
        from kfm_gitops import _yaml

        shown = self.shown(file)
        if file not in self._docs:
            text = self.texts.get(file)
            # JSON is YAML 1.2: the YAML reader gives every value's position.
            self._docs[file] = _yaml.loads(text, shown) if text is not None else None
        doc = self._docs[file]
        if doc is None or isinstance(doc, list):
            return Location(shown)
        return doc.locate(parts_of(ptr))  # type: ignore[no-any-return]

    def finding(self, p: Problem) -> Finding:
        """The problem as a finding: the pointer opens the message (``#`` alone is the whole document)."""
        return Finding(p.code, f"#{p.pointer}: {p.message}", self.locate(p.file, p.pointer), hint=p.hint)

    def findings(self, problems: Iterable[Problem]) -> list[Finding]:
        return [self.finding(p) for p in problems]
