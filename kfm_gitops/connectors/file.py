"""The ``file`` connector: upstream payloads in a folder, chosen by a glob template filled from the chunk window.

    connector:
      type: file
      params:
        root: upstream/ks_storm_reports        # below the repository root, or an absolute folder
        pattern: "{year}-{month}/*.csv"        # glob below root; placeholders as in connectors.expand
        max_bytes: 1073741824                  # optional cap per file
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from kfm_gitops._fs import leaves_folder
from kfm_gitops.connectors import (
    HTML_TYPES,
    Context,
    FetchedObject,
    FetchResult,
    TemplateError,
    Window,
    expand,
    looks_like_html,
    media_type_of,
)
from kfm_gitops.findings import Finding, Location
from kfm_gitops.store import StoreError


def _bad_relative(text: str) -> bool:
    return leaves_folder(text, absolute_ok=False)


def glob_matches(name: str, pattern: str) -> bool:
    """Whether ``Path.glob(pattern)`` below a folder finds the file ``name`` (a relative POSIX path): segment by
    segment, ``**`` for any number of folders (and at the end, folders only), case-sensitive."""
    from fnmatch import fnmatchcase

    def match(parts: list[str], pats: list[str]) -> bool:
        if not pats:
            return not parts
        if pats[0] == "**":
            return any(match(parts[i:], pats[1:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatchcase(parts[0], pats[0]) and match(parts[1:], pats[1:])

    pats = [p for p in pattern.split("/") if p not in ("", ".")]
    if pats and pats[-1] == "**":  # a pattern ending in ** finds folders only
        return False
    return match(list(PurePosixPath(name).parts), pats)


class FileConnector:
    name = "file"

    def selects(self, params: Mapping[str, Any], window: Window, name: str) -> bool:
        """Whether the chunk of ``window`` reads the object ``name`` (what ``fetch`` would match, without looking)."""
        pattern = params.get("pattern")
        return isinstance(pattern, str) and any(glob_matches(name, g) for g in expand(pattern, window))

    def fetch(self, params: Mapping[str, Any], window: Window, ctx: Context) -> FetchResult:
        result = FetchResult()
        loc = Location(ctx.where) if ctx.where else None
        root_text, pattern = params.get("root"), params.get("pattern")
        if not isinstance(root_text, str) or not isinstance(pattern, str) or not root_text or not pattern:
            result.findings.append(Finding("CONNECTOR_PARAMS", "the file connector needs params root and pattern",
                                           loc, hint='e.g. root: upstream/x, pattern: "{year}-{month}/*.csv"'))
            return result
        unknown = sorted(set(params) - {"root", "pattern", "terms", "max_bytes"})
        if unknown:
            result.findings.append(Finding("CONNECTOR_PARAMS", f"unknown file connector params: {', '.join(unknown)}",
                                           loc, hint="the file connector takes root, pattern, terms and max_bytes"))
            return result
        cap = params.get("max_bytes", ctx.max_bytes)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
            result.findings.append(Finding("CONNECTOR_PARAMS", f"max_bytes {cap!r} is not a positive integer", loc))
            return result
        max_bytes = cap
        if not Path(root_text).is_absolute() and _bad_relative(root_text):
            result.findings.append(Finding("SOURCE_OUTSIDE", f"root {root_text!r} leaves the repository", loc,
                                           hint="name a folder below the repository root, or an absolute one"))
            return result
        root = Path(root_text) if Path(root_text).is_absolute() else ctx.root / root_text
        in_repo = not Path(root_text).is_absolute()
        try:
            real_root = root.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            result.findings.append(Finding("SOURCE_MISSING", f"the upstream folder {root_text} does not exist", loc))
            return result
        if in_repo and not real_root.is_relative_to(ctx.root.resolve()):
            result.findings.append(Finding("SOURCE_OUTSIDE", f"root {root_text!r} resolves outside the repository",
                                           loc))
            return result
        matches: dict[str, Path] = {}
        try:
            globs = expand(pattern, window)
        except TemplateError as exc:
            result.findings.append(Finding("CONNECTOR_PARAMS", str(exc), loc))
            return result
        for glob in globs:
            if _bad_relative(glob):
                result.findings.append(Finding("SOURCE_OUTSIDE", f"pattern {glob!r} leaves the upstream folder", loc,
                                               hint="patterns are relative to root and may not use '..'"))
                return result
            for path in sorted(root.glob(glob)):
                name = path.relative_to(root).as_posix()
                matches.setdefault(name, path)
        for name, path in sorted(matches.items()):
            finding = self._check(name, path, real_root, max_bytes, loc)
            if finding is not None:
                if finding.code != "SOURCE_NOT_A_FILE":
                    result.findings.append(finding)
                continue
            try:
                stored = ctx.store.put_file(path, max_bytes=max_bytes)
            except StoreError as exc:
                result.findings.append(Finding(exc.code, f"{name}: {exc.message}", loc, hint=exc.hint))
                continue
            except OSError as exc:
                result.findings.append(Finding("SOURCE_UNREADABLE", f"{name}: {exc.strerror or exc}", loc))
                continue
            if stored.size == 0:
                result.findings.append(Finding("SOURCE_EMPTY", f"{name} is empty", loc,
                                               hint="an empty upstream file is a delivery error; remove or replace it"))
                continue
            uri = (f"{root_text.rstrip('/')}/{name}" if in_repo else path.as_uri())
            result.objects.append(FetchedObject(name, uri, stored.digest, stored.size, media_type_of(name)))
        return result

    @staticmethod
    def _check(name: str, path: Path, real_root: Path, max_bytes: int, loc: Location | None) -> Finding | None:
        if ".." in PurePosixPath(name).parts:
            return Finding("SOURCE_OUTSIDE", f"{name!r} names a path outside the upstream folder", loc)
        try:
            real = path.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            return Finding("SOURCE_MISSING", f"{name} is a dangling link", loc)
        if not real.is_relative_to(real_root):
            return Finding("SOURCE_OUTSIDE", f"{name} links outside the upstream folder (to {real})", loc,
                           hint="copy the file into the upstream folder instead of linking it")
        st = os.stat(real)
        if not stat.S_ISREG(st.st_mode):
            return Finding("SOURCE_NOT_A_FILE", f"{name} is not a regular file", loc)
        if st.st_size > max_bytes:
            return Finding("FILE_TOO_LARGE", f"{name} is {st.st_size} bytes, over the {max_bytes}-byte cap", loc,
                           hint="raise params.max_bytes in pipeline.yaml if this size is expected")
        if media_type_of(name) not in HTML_TYPES:
            with open(real, "rb") as fh:
                head = fh.read(512)
            if looks_like_html(head):
                return Finding("UPSTREAM_ERROR_PAGE", f"{name} is an HTML page, not {media_type_of(name)} data", loc,
                               hint="the upstream delivered an error or login page in its place; fetch it again")
        return None
