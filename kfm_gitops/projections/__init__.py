"""Projections: database tables rebuilt from the PROCESSED artifacts of the version each alias publishes, safe to
rebuild again and again (runbook step 7).

    reindex(config, slugs, target)             rebuild (every published dataset when ``slugs`` is empty)
    projection_state(config, slug, target)     (the version it was built from, its digest) or None
    recorded(config, slug, target)             everything the target records of a projection, or None
    recompute(config, slug, target)            the digest of the table as it is now, or None

A target is a URL: None or a path (or ``duckdb://PATH``) for an embedded DuckDB file, by default
``.kfm/projections.duckdb``; ``postgresql://USER:PASSWORD@HOST:PORT/DB[?schema=NAME]`` for PostgreSQL with PostGIS.
Relative paths are below the repository root. What is built is always what ``published/<slug>`` shows, read from the
version's evidence commit, never the working tree; every artifact is verified against its digest first. Each
projection records the version and alias commit it was built from and a content digest computed in the database
(row count and the sum of 64-bit row hashes: independent of row order, and duplicate rows do not cancel out). It
detects divergence; the artifacts' sha256 remain the identity. A rebuild is built aside and swapped in in one
transaction: one that fails or is killed leaves the previous projection in place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kfm_gitops import _git
from kfm_gitops.config import Config
from kfm_gitops.errors import KfmError, UsageError
from kfm_gitops.projections._model import MAX_NAME, META_TABLE, NEXT_SUFFIX, ProjectionError, Recorded, Source, Target
from kfm_gitops.store import Store

__all__ = ["DEFAULT_TARGET", "ProjectionError", "Recorded", "Reindexed", "Target", "parse_target",
           "projection_state", "published_slugs", "recompute", "recorded", "reindex", "reindex_one"]

DEFAULT_TARGET = ".kfm/projections.duckdb"
_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TARGET_HINT = "a DuckDB file (a path, or duckdb://PATH) or postgresql://USER:PASSWORD@HOST:PORT/DB[?schema=NAME]"


class _Backend(Protocol):
    def build(self, target: Target, source: Source, files: list[Path], geometry: str) -> tuple[str, int]: ...
    def recorded(self, target: Target, slug: str) -> Recorded | None: ...
    def recompute(self, target: Target, slug: str) -> str | None: ...


def _backend(target: Target) -> _Backend:
    from kfm_gitops.projections import _duckdb, _postgis

    backends: dict[str, _Backend] = {"duckdb": _duckdb, "postgis": _postgis}
    return backends[target.kind]


def parse_target(config: Config, url: str | None) -> Target:
    """The target a URL names (None: the default DuckDB file)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    text = url or DEFAULT_TARGET
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in reversed(query) if k == "schema"), "public")
        if not _SCHEMA_RE.fullmatch(schema):
            raise UsageError(f"--target: schema {schema!r} is not a plain SQL name", hint="letters, digits and _")
        conninfo = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        return Target("postgis", urlunsplit(parts._replace(netloc=netloc)), conninfo=conninfo, schema=schema)
    if scheme not in ("", "duckdb"):
        raise UsageError(f"--target {text}: not a kind of target kfm knows", hint=TARGET_HINT)
    path = Path(text.split("://", 1)[1] if scheme else text)
    path = path if path.is_absolute() else config.root / path
    try:
        shown = path.relative_to(config.root).as_posix()
    except ValueError:
        shown = str(path)
    return Target("duckdb", shown, path=path)


@dataclass(frozen=True, slots=True)
class Reindexed:
    """What a reindex did for one dataset: ``rebuilt`` False when asked only for moved aliases and the
    projection was built at the alias's commit already; ``previous`` the version it was built from before."""

    slug: str
    version_id: str
    digest: str
    rows: int
    target: str
    previous: str
    rebuilt: bool


def _repo(config: Config) -> _git.Repository:
    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository", hint="run `kfm init` there first")
    return repo


def _checked(slug: str, target: Target) -> None:
    from kfm_gitops.identity import check_slug

    check_slug(slug)
    if slug == META_TABLE or slug.endswith(NEXT_SUFFIX):
        raise ProjectionError(f"a dataset named {slug} cannot have a projection: the name is the projections' own "
                              f"({META_TABLE}, or a table built aside: *{NEXT_SUFFIX})")
    if target.kind == "postgis" and len(slug.encode()) > MAX_NAME:
        raise ProjectionError(f"{slug} is longer than the {MAX_NAME} characters a PostgreSQL projection's table "
                              "name can have here")


def reindex_one(config: Config, slug: str, target: Target, store: Store, *, moved: bool = False) -> Reindexed:
    """Rebuild one dataset's projection from what its alias publishes (with ``moved``: only when the alias moved
    since the projection was built, or there is none)."""
    from kfm_gitops.projections._source import artifact_files, geometry_column, published_source

    _checked(slug, target)
    source = published_source(config, _repo(config), slug)
    backend = _backend(target)
    before = backend.recorded(target, slug)
    previous = before.version_id if before else ""
    if moved and before is not None and (before.alias_commit, before.version_id) == (source.alias_commit,
                                                                                     source.version_id):
        return Reindexed(slug, before.version_id, before.digest, before.rows, target.shown, previous, False)
    with artifact_files(store, source) as files:
        digest, rows = backend.build(target, source, files, geometry_column(files[0]))
    return Reindexed(slug, source.version_id, digest, rows, target.shown, previous, True)


def published_slugs(config: Config) -> list[str]:
    """The datasets whose alias publishes a version."""
    from kfm_gitops.projections import _source

    return _source.published_slugs(config, _repo(config))


def reindex(config: Config, slugs: Sequence[str] = (), target: str | None = None, *, store: Store | None = None,
            moved: bool = False) -> list[Reindexed]:
    """Rebuild the projections of ``slugs`` (every published dataset when empty) into ``target`` (a URL; None for
    the default DuckDB file), from the store (default: the repository's). What ``kfm promote --reindex`` and the
    reconcile workflow (``kfm reindex --moved``) call."""
    from kfm_gitops.config import store_url

    where = parse_target(config, target)
    objects = store or Store(store_url(config))
    names = list(slugs) or published_slugs(config)
    return [reindex_one(config, slug, where, objects, moved=moved) for slug in names]


def recorded(config: Config, slug: str, target: str | None = None) -> Recorded | None:
    """What the target records of ``slug``'s projection (None when it holds none)."""
    where = parse_target(config, target)
    _checked(slug, where)
    return _backend(where).recorded(where, slug)


def projection_state(config: Config, slug: str, target: str | None = None) -> tuple[str, str] | None:
    """(the version ``slug``'s projection was built from, its recorded digest), or None when there is none: a
    projection lags its alias when that version is not the one the alias publishes."""
    found = recorded(config, slug, target)
    return (found.version_id, found.digest) if found else None


def recompute(config: Config, slug: str, target: str | None = None) -> str | None:
    """The digest of ``slug``'s projection computed from the table as it is now (None when there is none): it
    differs from the recorded one when the table was changed since it was built."""
    where = parse_target(config, target)
    _checked(slug, where)
    return _backend(where).recompute(where, slug)
