"""A PostgreSQL target with PostGIS: one table per dataset in the URL's schema (``?schema=``, default public), the
geometry as ``geometry(Geometry, 4326)`` with a GiST index, the bbox covering column flattened into ``bbox_xmin``,
``bbox_ymin``, ``bbox_xmax`` and ``bbox_ymax`` (``xmin`` and ``xmax`` are system column names in PostgreSQL).

Rows go in by binary COPY (psycopg 3), encoded from the artifacts' record batches without Python per row. The
whole rebuild is one transaction: the table is built aside (``<slug>__next``), indexed, digested, then swapped in
with its record in ``kfm_projections``; a failed or killed build is rolled back by the server and the previous
projection stays. Rebuilds of one schema take turns (a transaction-scoped advisory lock). A database without PostGIS
where it cannot be created is refused: a projection is never built without its spatial index.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import pyarrow as pa

    from kfm_gitops.projections._pgcopy import PgColumn

EXTENSION = "postgis"
LABEL = "postgres-hash_record_extended"
LOCK_SPACE = 0x6B666D  # "kfm": the advisory lock key space of projection rebuilds
BATCH_ROWS = 65_536
META_COLUMNS = ("slug", "table_name", "dataset_version_id", "evidence_commit", "alias_commit", "digest", "rows",
                "engine", "built_at")
META_DDL = (f"CREATE TABLE IF NOT EXISTS {META_TABLE} (slug text PRIMARY KEY, table_name text NOT NULL, "
            "dataset_version_id text NOT NULL, evidence_commit text NOT NULL, alias_commit text NOT NULL, "
            "digest text NOT NULL, rows bigint NOT NULL, engine text NOT NULL, built_at text NOT NULL)")


@contextmanager
def _connect(target: Target) -> Iterator[Any]:
    """A connection whose one transaction commits when the block ends and rolls back when it raises."""
    try:
        import psycopg
    except ImportError as exc:
        raise ProjectionError(f"the target {target.shown} needs psycopg, which is not installed",
                              hint="pip install 'kfm-gitops[postgis]'") from exc
    try:
        con = psycopg.connect(target.conninfo, application_name="kfm", connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ProjectionError(f"cannot connect to {target.shown}: {reason}",
                              hint="check the URL, that the server runs, and that the role may log in") from exc
    try:
        with con:
            yield con
    except psycopg.Error as exc:
        raise ProjectionError(f"{target.shown}: {str(exc).strip().splitlines()[0]}; nothing was changed") from exc


_POSTGIS = ("SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = %s")


def _find_postgis(cur: Any) -> tuple[str, str] | None:
    """The schema PostGIS lives in and its version, or None when the database does not have it."""
    found = cur.execute(_POSTGIS, [EXTENSION]).fetchone()
    return (str(found[0]), str(found[1])) if found else None


def _require_postgis(cur: Any, target: Target) -> tuple[str, str]:
    """PostGIS's schema and version; created when absent if the role may, else refused."""
    import psycopg

    found = _find_postgis(cur)
    if found is None:
        try:
            with cur.connection.transaction():
                cur.execute(f"CREATE EXTENSION {quote(EXTENSION)}")
        except psycopg.Error as exc:
            raise ProjectionError(
                f"{target.shown} has no PostGIS (extension {EXTENSION!r}) and it cannot be created here: "
                f"{str(exc).strip().splitlines()[0]}", code="POSTGIS_MISSING",
                hint="install PostGIS on the server (Debian: postgresql-15-postgis-3) and run `CREATE EXTENSION "
                "postgis` in the database; kfm never builds a PostGIS projection without its spatial index") from exc
        found = _find_postgis(cur)
        assert found is not None
    return found


def projection_schema(files: list[Path], geometry: str) -> tuple[pa.Schema, list[PgColumn]]:
    """The columns of a projection: the artifacts' fields (unified by name; a type that differs between
    partitions is refused) without the covering struct, then its four bbox columns; and how each is written."""
    import pyarrow as pa

    from kfm_gitops.projections._pgcopy import pg_column
    from kfm_gitops.projections._source import artifact_schema

    unified = artifact_schema(files)
    fields = [f for f in unified if f.name != COVERING] + [pa.field(c, pa.float64()) for c in BBOX_COLUMNS]
    clash = sorted({f.name for f in fields if [g.name for g in fields].count(f.name) > 1})
    if clash:
        raise ProjectionError(f"the artifacts have columns named {', '.join(clash)}, which the projection uses for "
                              "the bbox")
    return pa.schema(fields), [pg_column(f.name, f.type, f.name == geometry) for f in fields]


def _batches(files: list[Path], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The artifacts' rows, batch by batch, shaped like ``schema`` (a column a partition lacks is NULL there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in files:
        with pq.ParquetFile(path) as reader:
            for batch in reader.iter_batches(batch_size=BATCH_ROWS):
                if batch.num_rows == 0:
                    continue
                box = batch.column(COVERING)
                present = {name: batch.column(name) for name in batch.schema.names if name != COVERING}
                present.update({c: box.field(c.removeprefix("bbox_")) for c in BBOX_COLUMNS})
                yield pa.RecordBatch.from_arrays(
                    [present.get(f.name, pa.nulls(batch.num_rows, f.type)) for f in schema], schema=schema)


def _copy(cur: Any, table: str, schema: pa.Schema, columns: list[PgColumn], files: list[Path]) -> None:
    from psycopg.copy import QueuedLibpqWriter

    from kfm_gitops.projections._pgcopy import HEADER, TRAILER, encode

    names = ", ".join(quote(c.name) for c in columns)
    # The queued writer sends from a thread of its own while the next batch is encoded.
    with cur.copy(f"COPY {quote(table)} ({names}) FROM STDIN (FORMAT BINARY)",
                  writer=QueuedLibpqWriter(cur)) as copy:
        copy.write(HEADER)
        for batch in _batches(files, schema):
            copy.write(encode(batch, columns))
        copy.write(TRAILER)


def _digest(cur: Any, table: str, columns: list[PgColumn]) -> tuple[str, int]:
    """The content digest of a table, computed by PostgreSQL: its row count and the sum, as numeric, of each
    row's 64-bit ``hash_record_extended`` over every column (the geometry as its EWKB bytes)."""
    values = ", ".join(quote(c.name) + ("::bytea" if c.sql_type.startswith("geometry") else "") for c in columns)
    rows, total = cur.execute(f"SELECT count(*), sum(hash_record_extended(ROW({values}), 0)::numeric) "
                              f"FROM {quote(table)}").fetchone()
    return digest_text(LABEL, int(rows), total), int(rows)


def build(target: Target, source: Source, files: list[Path], geometry: str) -> tuple[str, int]:
    """Build the projection of ``source`` aside, index it, digest it and swap it in with its record: one
    transaction. Its digest and row count."""
    schema, columns = projection_schema(files, geometry)
    table, aside = source.slug, source.slug + NEXT_SUFFIX
    with _connect(target) as con:
        cur = con.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_SPACE, _signed(zlib.crc32(target.schema.encode()))])
        postgis, version = _require_postgis(cur, target)
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(target.schema)}")
        cur.execute(f"SET LOCAL search_path TO {quote(target.schema)}, {quote(postgis)}")
        cur.execute(META_DDL)
        cur.execute(f"DROP TABLE IF EXISTS {quote(aside)}")
        cur.execute(f"CREATE TABLE {quote(aside)} ({', '.join(f'{quote(c.name)} {c.sql_type}' for c in columns)})")
        _copy(cur, aside, schema, columns, files)
        cur.execute(f"CREATE INDEX {quote(aside + '_gist')} ON {quote(aside)} USING GIST ({quote(geometry)})")
        digest, rows = _digest(cur, aside, columns)
        cur.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        cur.execute(f"ALTER TABLE {quote(aside)} RENAME TO {quote(table)}")
        cur.execute(f"ALTER INDEX {quote(aside + '_gist')} RENAME TO {quote(table + '_gist')}")
        cur.execute(f"ANALYZE {quote(table)}")
        server = cur.execute("SHOW server_version").fetchone()[0]
        values = [source.slug, table, source.version_id, source.evidence_commit, source.alias_commit, digest, rows,
                  f"postgresql {server}, postgis {version}", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
        cur.execute(f"INSERT INTO {META_TABLE} ({', '.join(META_COLUMNS)}) VALUES "
                    f"({', '.join('%s' for _ in values)}) ON CONFLICT (slug) DO UPDATE SET "
                    + ", ".join(f"{c} = EXCLUDED.{c}" for c in META_COLUMNS[1:]), values)
    return digest, rows


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def _table_exists(cur: Any, schema: str, name: str) -> bool:
    return bool(cur.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{quote(schema)}.{quote(name)}"]).fetchone()[0])


def recorded(target: Target, slug: str) -> Recorded | None:
    """The record of ``slug``'s projection, or None when the target holds none."""
    with _connect(target) as con:
        cur = con.cursor()
        if not _table_exists(cur, target.schema, META_TABLE):
            return None
        row = cur.execute(f"SELECT {', '.join(META_COLUMNS)} FROM {quote(target.schema)}.{META_TABLE} "
                          "WHERE slug = %s", [slug]).fetchone()
        if row is None or not _table_exists(cur, target.schema, str(row[1])):
            return None
    return Recorded(str(row[0]), str(row[2]), str(row[3]), str(row[4]), str(row[5]), int(row[6]), str(row[7]),
                    str(row[8]))


def recompute(target: Target, slug: str) -> str | None:
    """The digest of ``slug``'s projection as the table holds it now (None when there is no such table)."""
    with _connect(target) as con:
        cur = con.cursor()
        if not _table_exists(cur, target.schema, slug):
            return None
        postgis = _find_postgis(cur)
        path = quote(target.schema) + (f", {quote(postgis[0])}" if postgis else "")
        cur.execute(f"SET LOCAL search_path TO {path}")
        kinds = cur.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                            [quote(slug)]).fetchall()
        from kfm_gitops.projections._pgcopy import PgColumn

        return _digest(cur, slug, [PgColumn(str(n), str(t), "") for n, t in kinds])[0]
