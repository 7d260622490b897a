"""Arrow record batches as PostgreSQL binary COPY data, built by vectorised pyarrow and numpy kernels: no Python
code runs per row.

A binary COPY stream is a header, then per row a 16-bit field count and per field a 32-bit length (-1 for NULL)
followed by that many bytes, all big-endian, then a -1 trailer. Fixed-width fields next to each other are laid out
as one byte matrix (NULLs masked out of it); each variable-width field is a binary array of its own; one
``binary_join_element_wise`` joins the pieces row by row, and the joined array's value buffer is the batch's COPY
data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kfm_gitops.projections._model import ProjectionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
PG_EPOCH_SECONDS = 946_684_800  # 2000-01-01T00:00:00Z, PostgreSQL's epoch for timestamps
PG_EPOCH_DAYS = 10_957
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


class UnsupportedType(ProjectionError):
    """An Arrow type with no PostgreSQL column type here."""

    code = "PROJECTION_COLUMN_TYPE"


@dataclass(frozen=True, slots=True)
class PgColumn:
    """A column of the COPY: its name, its PostgreSQL type, and how its values are written (``kind``: the numpy
    big-endian dtype of a fixed-width value, or "var" for bytes as they are)."""

    name: str
    sql_type: str
    kind: str


def pg_column(name: str, arrow_type: pa.DataType, geometry: bool = False) -> PgColumn:
    """The PostgreSQL column for an Arrow field; WKB ``geometry`` becomes a PostGIS geometry in OGC:CRS84 (SRID
    4326: PostGIS keeps longitude first), which PostGIS takes from WKB as it is."""
    import pyarrow as pa

    t = arrow_type
    if geometry and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        return PgColumn(name, "geometry(Geometry, 4326)", "var")
    simple = [(pa.types.is_string, "text", "var"), (pa.types.is_large_string, "text", "var"),
              (pa.types.is_binary, "bytea", "var"), (pa.types.is_large_binary, "bytea", "var"),
              (pa.types.is_boolean, "boolean", ">u1"), (pa.types.is_int8, "smallint", ">i2"),
              (pa.types.is_int16, "smallint", ">i2"), (pa.types.is_uint8, "smallint", ">i2"),
              (pa.types.is_int32, "integer", ">i4"), (pa.types.is_uint16, "integer", ">i4"),
              (pa.types.is_int64, "bigint", ">i8"), (pa.types.is_uint32, "bigint", ">i8"),
              (pa.types.is_float32, "real", ">f4"), (pa.types.is_float64, "double precision", ">f8"),
              (pa.types.is_date32, "date", ">i4")]
    for test, sql, kind in simple:
        if test(t):
            return PgColumn(name, sql, kind)
    if pa.types.is_timestamp(t):
        return PgColumn(name, "timestamptz" if t.tz else "timestamp", ">i8")
    raise UnsupportedType(f"column {name!r} is {t}, which has no PostgreSQL type here",
                          hint="the dataset contract's column types (string, int32, int64, float32, float64, bool, "
                          "date, timestamp) all have one")


def _values(col: pa.Array, kind: str) -> npt.NDArray[np.generic]:
    """A fixed-width column's values as PostgreSQL writes them (NULLs as zeros: they are masked out later)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    out: npt.NDArray[np.generic]
    if pa.types.is_timestamp(t):
        raw = pc.fill_null(col.cast(pa.int64()), 0).to_numpy()
        per = _PER_SECOND[t.unit]
        # PostgreSQL keeps microseconds: nanoseconds are floored.
        micros = raw // (per // 1_000_000) if per >= 1_000_000 else raw * (1_000_000 // per)
        out = micros - PG_EPOCH_SECONDS * 1_000_000
    elif pa.types.is_date32(t):
        out = pc.fill_null(col.cast(pa.int32()), 0).to_numpy() - PG_EPOCH_DAYS
    elif pa.types.is_boolean(t):
        out = pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(np.uint8)
    else:
        out = pc.fill_null(col, 0).to_numpy()
    return out


@dataclass(slots=True)
class _Run:
    """Fixed-width pieces of consecutive fields, not yet laid out: byte matrices (n x width) and which rows each
    piece is written for (None: every row)."""

    pieces: list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_] | None]]

    def add(self, matrix: npt.NDArray[np.uint8], valid: npt.NDArray[np.bool_] | None = None) -> None:
        self.pieces.append((matrix, valid))

    def flush(self, n: int) -> pa.Array | None:
        """The pieces as one binary array (one value per row), or None when there are none."""
        import numpy as np
        import pyarrow as pa

        if not self.pieces:
            return None
        matrix = np.concatenate([m for m, _ in self.pieces], axis=1)
        self.pieces, pieces = [], self.pieces
        if all(v is None for _, v in pieces):
            width = matrix.shape[1]
            offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
            data = matrix.tobytes()
        else:
            mask = np.concatenate([np.ones(m.shape, bool) if v is None else np.repeat(v[:, None], m.shape[1], 1)
                                   for m, v in pieces], axis=1)
            data = matrix[mask].tobytes()
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(mask.sum(axis=1), out=offsets[1:])
        return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _big_endian(values: npt.NDArray[np.generic], dtype: str) -> npt.NDArray[np.uint8]:
    import numpy as np

    out: npt.NDArray[np.uint8] = np.ascontiguousarray(values.astype(dtype)).view(np.uint8)
    return out.reshape(len(values), -1)


def encode(batch: pa.RecordBatch, columns: list[PgColumn]) -> memoryview:
    """One record batch as binary COPY rows (no header, no trailer); ``columns`` says how each column is written."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    run = _Run([])
    run.add(_big_endian(np.full(n, len(columns)), ">i2"))
    joined: list[pa.Array] = []
    for col, spec in zip(batch.columns, columns, strict=True):
        valid = col.is_valid().to_numpy(zero_copy_only=False) if col.null_count else None
        if spec.kind == "var":
            value = col.cast(pa.large_binary())
            lengths = pc.fill_null(pc.binary_length(value), -1).to_numpy()
            run.add(_big_endian(lengths, ">i4"))
            joined += [a for a in (run.flush(n), value) if a is not None]
            continue
        width = np.dtype(spec.kind).itemsize
        run.add(_big_endian(np.full(n, width) if valid is None else np.where(valid, width, -1), ">i4"))
        run.add(_big_endian(_values(col, spec.kind), spec.kind), valid)
    tail = run.flush(n)
    if tail is not None:
        joined.append(tail)
    rows = joined[0] if len(joined) == 1 else pc.binary_join_element_wise(
        *joined, pa.scalar(b"", pa.large_binary()), null_handling="replace", null_replacement=b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)
    return memoryview(rows.buffers()[2])[int(offsets[rows.offset]):int(offsets[rows.offset + n])]
