"""What the projection targets share: the target a URL names, what a projection is built from, and what a target
records of each projection it holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kfm_gitops.errors import KfmError

META_TABLE = "kfm_projections"
BBOX_COLUMNS = ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax")
COVERING = "bbox"  # the GeoParquet covering column of PROCESSED artifacts (a struct of xmin, ymin, xmax, ymax)
NEXT_SUFFIX = "__next"  # where a projection is built aside before it is swapped in
MAX_NAME = 63 - len(NEXT_SUFFIX) - len("_gist")  # PostgreSQL cuts identifiers at 63 bytes


class ProjectionError(KfmError):
    """A projection could not be built or read; the previous one, if any, is left as it was."""

    code = "PROJECTION_FAILED"


@dataclass(frozen=True, slots=True)
class Target:
    """Where projections go: an embedded DuckDB file (``path``) or a PostgreSQL database with PostGIS
    (``conninfo`` and ``schema``). ``shown`` is the URL without its password, for messages."""

    kind: Literal["duckdb", "postgis"]
    shown: str
    path: Path | None = None
    conninfo: str = ""
    schema: str = "public"


@dataclass(frozen=True, slots=True)
class Source:
    """The published version of one dataset, as its alias shows it: what a projection is built from."""

    slug: str
    version_id: str
    evidence_commit: str
    alias_commit: str
    partitions: tuple[tuple[str, str], ...]  # (partition key, PROCESSED digest), in key order


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a target records of a projection it holds: the version it was built from, the alias commit that
    published it, the content digest computed in the database when it was built, and its row count."""

    slug: str
    version_id: str
    evidence_commit: str
    alias_commit: str
    digest: str
    rows: int
    engine: str
    built_at: str


def quote(name: str) -> str:
    """An SQL identifier, quoted (DuckDB and PostgreSQL quote the same way)."""
    return '"' + name.replace('"', '""') + '"'


def digest_text(label: str, rows: int, total: object) -> str:
    """A projection's content digest: the engine's 64-bit row hash, the row count and the sum of the row hashes
    (order does not matter, and duplicate rows add up instead of cancelling out)."""
    return f"{label}:{rows}:{total if total is not None else 0}"
