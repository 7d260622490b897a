"""The embedded default target: a DuckDB file with one table per dataset.

Each table holds the artifacts' columns as they are (the geometry as WKB: DuckDB 1.5 and later type it
GEOMETRY('OGC:CRS84') by itself), with the GeoParquet bbox covering column flattened into ``bbox_xmin``,
``bbox_ymin``, ``bbox_xmax`` and ``bbox_ymax`` for spatial filtering: no extension is needed, so none can be missing.
A projection is built aside (``<slug>__next``) and swapped in, with its record in ``kfm_projections``, in one
transaction: a build that fails or is killed leaves the previous projection as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kfm_gitops.errors import ConflictError
from kfm_gitops.projections._model import (
    BBOX_COLUMNS,
    COVERING,
    META_TABLE,
    NEXT_SUFFIX,
    ProjectionError,
    Recorded,
    Source,
    Target,
    digest_text,
    quote,
)

LABEL = "duckdb-hash64"
META_COLUMNS = ("slug", "table_name", "dataset_version_id", "evidence_commit", "alias_commit", "digest", "rows",
                "engine", "built_at")
META_DDL = (f"CREATE TABLE IF NOT EXISTS {META_TABLE} (slug VARCHAR PRIMARY KEY, table_name VARCHAR NOT NULL, "
            "dataset_version_id VARCHAR NOT NULL, evidence_commit VARCHAR NOT NULL, alias_commit VARCHAR NOT NULL, "
            "digest VARCHAR NOT NULL, rows BIGINT NOT NULL, engine VARCHAR NOT NULL, built_at VARCHAR NOT NULL)")


@contextmanager
def _connect(target: Target, *, read_only: bool) -> Iterator[Any]:
    import duckdb

    assert target.path is not None
    try:
        con = duckdb.connect(str(target.path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise ConflictError(f"the projection database {target.shown} is in use by another process",
                                hint="wait for the other kfm reindex (or reader) to finish, then run this again"
                                ) from exc
        raise ProjectionError(f"cannot open the projection database {target.shown}: {exc}") from exc
    try:
        # No progress bar: DuckDB would draw it on stdout, into a report a machine may be reading.
        con.execute("SET enable_progress_bar = false")
        yield con
    finally:
        con.close()


def _digest(con: Any, table: str) -> tuple[str, int]:
    """The content digest of a table, computed by DuckDB: its row count and the sum, as HUGEINT, of each row's
    64-bit hash over every column."""
    columns = [row[0] for row in con.execute(f"DESCRIBE {quote(table)}").fetchall()]
    rows, total = con.execute(f"SELECT count(*), sum(hash({', '.join(quote(c) for c in columns)})::HUGEINT) "
                              f"FROM {quote(table)}").fetchone()
    return digest_text(LABEL, int(rows), total), int(rows)


def engine() -> str:
    import duckdb

    return f"duckdb {duckdb.__version__}"


def build(target: Target, source: Source, files: list[Path], geometry: str) -> tuple[str, int]:
    """Build the projection of ``source`` from its artifact ``files`` aside, digest it, and swap it in with its
    record, all in one transaction; its digest and row count. (DuckDB reads the ``geometry`` column as the
    artifacts' GeoParquet metadata declares it.)"""
    import duckdb

    from kfm_gitops.projections._source import artifact_schema

    assert target.path is not None
    artifact_schema(files)  # the artifacts agree on their columns' types: union_by_name never widens one
    target.path.parent.mkdir(parents=True, exist_ok=True)
    table, aside = source.slug, source.slug + NEXT_SUFFIX
    flat = ", ".join(f"{quote(COVERING)}.{c.removeprefix('bbox_')} AS {quote(c)}" for c in BBOX_COLUMNS)
    with _connect(target, read_only=False) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(META_DDL)
            con.execute(f"DROP TABLE IF EXISTS {quote(aside)}")
            con.execute(f"CREATE TABLE {quote(aside)} AS SELECT * EXCLUDE ({quote(COVERING)}), {flat} "
                        "FROM read_parquet($files, union_by_name = true)", {"files": [str(f) for f in files]})
            digest, rows = _digest(con, aside)
            con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            con.execute(f"ALTER TABLE {quote(aside)} RENAME TO {quote(table)}")
            values = (source.slug, table, source.version_id, source.evidence_commit, source.alias_commit, digest,
                      rows, engine(), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            con.execute(f"INSERT OR REPLACE INTO {META_TABLE} ({', '.join(META_COLUMNS)}) VALUES "
                        f"({', '.join('?' for _ in values)})", list(values))
            con.execute("COMMIT")
        except BaseException as exc:
            with suppress(duckdb.Error):  # a failed COMMIT has ended the transaction already
                con.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error):
                raise ProjectionError(f"building the projection of {source.slug} {source.version_id} in "
                                      f"{target.shown} failed: {exc}; the previous projection is unchanged") from exc
            raise
    return digest, rows


def recorded(target: Target, slug: str) -> Recorded | None:
    """The record of ``slug``'s projection, or None when the target holds none (or does not exist yet)."""
    assert target.path is not None
    if not target.path.is_file():
        return None
    with _connect(target, read_only=True) as con:
        if not _has_table(con, META_TABLE):
            return None
        row = con.execute(f"SELECT {', '.join(META_COLUMNS)} FROM {META_TABLE} WHERE slug = ?", [slug]).fetchone()
        if row is None or not _has_table(con, str(row[1])):
            return None
    return Recorded(str(row[0]), str(row[2]), str(row[3]), str(row[4]), str(row[5]), int(row[6]), str(row[7]),
                    str(row[8]))


def recompute(target: Target, slug: str) -> str | None:
    """The digest of ``slug``'s projection as the table holds it now (None when there is no such table)."""
    assert target.path is not None
    if not target.path.is_file():
        return None
    with _connect(target, read_only=True) as con:
        if not _has_table(con, slug):
            return None
        return _digest(con, slug)[0]


def _has_table(con: Any, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
                        [name]).fetchone()
    return bool(found and found[0])
