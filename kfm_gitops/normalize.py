"""WORK, step one: upstream payloads (CSV, GeoJSON, newline-delimited GeoJSON, Parquet) become Arrow record batches
with the contract's types, a WKB geometry and a bbox, and a reason code for every row that cannot be published.

Everything is vectorised (pyarrow.compute, numpy, shapely 2) and works batch by batch, so memory stays bounded
whatever the input size. A row is never dropped silently: it is either converted or carries a reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Reason codes in the order they are assigned: a row gets the first that applies.
# Geometry type names by shapely's type ids.
GEOMETRY_TYPES = ("Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
                  "GeometryCollection")
REASONS = ("SCHEMA_INVALID", "GEOMETRY_INVALID", "GEOMETRY_OVERPRECISE", "OUT_OF_WINDOW", "OUT_OF_EXTENT",
           "DUPLICATE_ID")
OK = 0  # reason code 0: the row is fine; 1..n index REASONS (1-based)
CSV_BLOCK = 8 * 1024 * 1024  # fixed, so that batching never depends on the machine
BATCH_ROWS = 65_536  # rows per batch for formats read in Python

_PATTERNS = {
    "int32": r"^[+-]?[0-9]+$",
    "int64": r"^[+-]?[0-9]+$",
    "float32": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$",
    "float64": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$",
    "bool": r"^(true|false|True|False|TRUE|FALSE|1|0)$",
    "date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    # An explicit offset is required: a naive timestamp is SCHEMA_INVALID.
    "timestamp": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})$",
}


def arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
        "float64": pa.float64(), "bool": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"),
    }[name]


def bbox_type() -> pa.DataType:
    import pyarrow as pa

    return pa.struct([("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64())])


@dataclass(frozen=True, slots=True)
class Normalized:
    """One batch after normalisation: the typed table (contract columns, geometry, bbox), a reason per row, and the
    raw strings (for quarantine records)."""

    table: pa.Table
    reasons: np.ndarray  # int8 per row
    raw: pa.Table
    source: str
    first_row: int  # row number of the batch's first row within its source object (1-based, after the header)


def convert(column: pa.Array, type_name: str) -> tuple[pa.Array, np.ndarray]:
    """A string column to ``type_name``; returns the typed column (null where it failed) and a bool mask of
    failures (a value that is present but cannot be converted)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    target = arrow_type(type_name)
    if type_name == "string":
        return column, np.zeros(len(column), dtype=bool)
    present = pc.is_valid(column)
    # The pattern decides what is valid, row by row, whatever else is in the batch; Arrow's parser only converts.
    matches = pc.match_substring_regex(column, _PATTERNS[type_name])
    if type_name != "bool" and pc.all(pc.or_kleene(matches, pc.invert(present))).as_py() is not False:
        try:
            typed = pc.cast(column, target)  # every present value matches: one cast, no cleaning
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            if type_name.startswith("float"):  # 1e400 matches the pattern and overflows to infinity
                bad = pc.fill_null(pc.invert(pc.is_finite(typed)), False)
                failed_fast = np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool)
                if failed_fast.any():
                    typed = pc.if_else(bad, pa.scalar(None, target), typed)
                return typed, failed_fast
            return typed, np.zeros(len(column), dtype=bool)
    good = pc.and_(present, matches)
    clean = pc.if_else(good, column, pa.scalar(None, pa.string()))
    if type_name == "bool":
        typed = pc.is_in(pc.utf8_lower(clean), value_set=pa.array(["true", "1"]))
        typed = pc.if_else(good, typed, pa.scalar(None, pa.bool_()))
    else:
        try:
            typed = pc.cast(clean, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # A value that looks right but is not (2023-02-30, an int out of range): find it one by one.
            values, ok = [], []
            for v in clean.to_pylist():
                try:
                    values.append(pc.cast(pa.array([v], pa.string()), target)[0].as_py() if v is not None else None)
                    ok.append(True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    values.append(None)
                    ok.append(False)
            typed = pa.array(values, target)
            good = pc.and_(good, pa.array(ok))
        if type_name.startswith("float"):  # 1e400 matches the pattern and overflows to infinity
            finite = pc.fill_null(pc.is_finite(typed), True)
            good = pc.and_(good, finite)
            typed = pc.if_else(finite, typed, pa.scalar(None, target))
    failed = pc.and_(present, pc.invert(good)).to_numpy(zero_copy_only=False)
    return typed, np.asarray(failed, dtype=bool)


def decimals_over(values: np.ndarray, limit: int) -> np.ndarray:
    """Coordinates that need more than ``limit`` decimals (|v| <= 180, so float64 is exact far below 1e-6 here)."""
    import numpy as np

    scaled = values * 10.0 ** limit
    with np.errstate(invalid="ignore"):
        over: np.ndarray = (np.abs(scaled - np.round(scaled)) > 1e-6) & np.isfinite(values)
    return over


def point_wkb(x: np.ndarray, y: np.ndarray) -> pa.Array:
    """Little-endian ISO WKB points, built directly: 1 byte order, uint32 type 1, two doubles."""
    import numpy as np
    import pyarrow as pa

    n = len(x)
    buf = np.empty((n, 21), dtype=np.uint8)
    buf[:, 0] = 1
    buf[:, 1:5] = np.frombuffer(np.uint32(1).tobytes(), dtype=np.uint8)
    buf[:, 5:13] = x.astype("<f8").view(np.uint8).reshape(n, 8)
    buf[:, 13:21] = y.astype("<f8").view(np.uint8).reshape(n, 8)
    offsets = np.arange(0, 21 * (n + 1), 21, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes())])


class Normalizer:
    """Turns batches of strings into typed, checked batches for one dataset contract and pipeline."""

    def __init__(self, dataset: dict[str, Any], pipeline: dict[str, Any]) -> None:
        self.columns: list[dict[str, Any]] = list(dataset["schema"]["columns"])
        self.id_column: str = dataset["schema"]["id_column"]
        self.geometry: dict[str, Any] = dict(dataset["schema"]["geometry"])
        self.extent: list[float] = list(dataset["extent"]["bbox"])
        self.source: dict[str, Any] = dict(pipeline["source"])
        self.transforms: list[dict[str, Any]] = list(pipeline.get("transforms", []))
        self.geo_from: dict[str, Any] = dict(self.source.get("geometry") or {"from": "geojson"})
        self.missing_columns: dict[str, set[str]] = {}  # source object -> contract columns it lacks
        # A row without the time that places it in a partition cannot be published anywhere.
        part_axis = dataset["partitioning"]["axis"]
        spec = dataset["time_axes"].get(part_axis, {})
        self.partition_columns: set[str] = {v for v in spec.values() if isinstance(v, str)}

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        fields = [pa.field(c["name"], arrow_type(c["type"]), nullable=not c.get("required", False))
                  for c in self.columns]
        fields.append(pa.field(self.geometry["column"], pa.binary(), nullable=False))
        fields.append(pa.field("bbox", bbox_type(), nullable=False))
        return pa.schema(fields)

    def _transform(self, raw: pa.Table) -> pa.Table:
        for t in self.transforms:
            if t["op"] == "rename":
                mapping = t.get("columns", {})
                raw = raw.rename_columns([mapping.get(n, n) for n in raw.column_names])
            elif t["op"] == "drop":
                raw = raw.drop_columns([n for n in t.get("names", []) if n in raw.column_names])
        return raw

    def normalize(self, raw: pa.Table, source: str, first_row: int) -> Normalized:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        raw = self._transform(raw)
        n = raw.num_rows
        reasons = np.zeros(n, dtype=np.int8)

        def mark(mask: np.ndarray, code: str) -> None:
            reasons[(reasons == OK) & mask] = REASONS.index(code) + 1

        arrays: list[pa.Array] = []
        schema_bad = np.zeros(n, dtype=bool)
        for col in self.columns:
            name = col["name"]
            if name in raw.column_names:
                values = raw.column(name).combine_chunks()
                if values.type != pa.string():
                    values = pc.cast(values, pa.string())
            else:
                self.missing_columns.setdefault(source, set()).add(name)
                values = pa.nulls(n, pa.string())
            typed, failed = convert(values, col["type"])
            schema_bad |= failed
            if col.get("required", False) or name == self.id_column or name in self.partition_columns:
                schema_bad |= np.asarray(pc.is_null(typed).to_numpy(zero_copy_only=False), dtype=bool)
            arrays.append(typed)
        mark(schema_bad, "SCHEMA_INVALID")
        wkb, bbox, geom_bad, overprecise = self._geometry(raw, n)
        mark(geom_bad, "GEOMETRY_INVALID")
        mark(overprecise, "GEOMETRY_OVERPRECISE")
        xmin = np.asarray(pc.struct_field(bbox, "xmin").to_numpy(zero_copy_only=False), dtype=float)
        ymin = np.asarray(pc.struct_field(bbox, "ymin").to_numpy(zero_copy_only=False), dtype=float)
        xmax = np.asarray(pc.struct_field(bbox, "xmax").to_numpy(zero_copy_only=False), dtype=float)
        ymax = np.asarray(pc.struct_field(bbox, "ymax").to_numpy(zero_copy_only=False), dtype=float)
        e = self.extent
        with np.errstate(invalid="ignore"):
            outside = (xmin < e[0]) | (ymin < e[1]) | (xmax > e[2]) | (ymax > e[3])
        mark(outside & ~geom_bad, "OUT_OF_EXTENT")
        table = pa.Table.from_arrays([*arrays, wkb, bbox], schema=self._loose_schema())
        return Normalized(table, reasons, raw, source, first_row)

    def _loose_schema(self) -> pa.Schema:
        """The output schema with every field nullable: rows with reasons still hold nulls until they are removed."""
        import pyarrow as pa

        return pa.schema([f.with_nullable(True) for f in self.schema()])

    def _geometry(self, raw: pa.Table, n: int) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
        import numpy as np
        import pyarrow as pa

        how = self.geo_from["from"]
        max_dec = self.geometry.get("max_decimals")
        if how == "xy":
            xs, ys = self.geo_from["x"], self.geo_from["y"]
            xcol = raw.column(xs).combine_chunks() if xs in raw.column_names else pa.nulls(n, pa.string())
            ycol = raw.column(ys).combine_chunks() if ys in raw.column_names else pa.nulls(n, pa.string())
            if xcol.type != pa.string():
                import pyarrow.compute as pc

                xcol, ycol = pc.cast(xcol, pa.string()), pc.cast(ycol, pa.string())
            xt, xbad = convert(xcol, "float64")
            yt, ybad = convert(ycol, "float64")
            x = np.asarray(xt.to_numpy(zero_copy_only=False), dtype=float)
            y = np.asarray(yt.to_numpy(zero_copy_only=False), dtype=float)
            with np.errstate(invalid="ignore"):
                bad = xbad | ybad | ~np.isfinite(x) | ~np.isfinite(y) | (np.abs(x) > 180) | (np.abs(y) > 90)
            x0, y0 = np.where(bad, 0.0, x), np.where(bad, 0.0, y)
            wkb = point_wkb(x0, y0)
            bbox = pa.StructArray.from_arrays([pa.array(x0), pa.array(y0), pa.array(x0), pa.array(y0)],
                                              fields=list(bbox_type()))
            over = np.zeros(n, dtype=bool)
            if max_dec is not None:
                over = decimals_over(x0, int(max_dec)) | decimals_over(y0, int(max_dec))
            if "Point" not in self.geometry["types"]:
                bad = bad | True
            return wkb, bbox, bad, over & ~bad
        return self._shapely_geometry(raw, n, how, max_dec)

    def _shapely_geometry(self, raw: pa.Table, n: int, how: str, max_dec: int | None
                          ) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
        import numpy as np
        import pyarrow as pa
        import shapely

        col_name = self.geo_from.get("column", "geometry")
        values = raw.column(col_name).to_pylist() if col_name in raw.column_names else [None] * n
        if how == "wkt":
            geoms = shapely.from_wkt(np.array(values, dtype=object), on_invalid="ignore")
        elif how == "wkb":
            geoms = shapely.from_wkb(np.array(values, dtype=object), on_invalid="ignore")
        else:  # geojson: the geometry member as JSON text
            geoms = shapely.from_geojson(np.array([v if v else None for v in values], dtype=object),
                                         on_invalid="ignore")
        missing = shapely.is_missing(geoms)
        allowed = set(self.geometry["types"])
        kinds = shapely.get_type_id(geoms)
        type_ok = np.isin(kinds, [i for i, name in enumerate(GEOMETRY_TYPES) if name in allowed])
        valid = ~missing & type_ok
        valid[valid] = shapely.is_valid(geoms[valid]) & ~shapely.is_empty(geoms[valid])
        bounds = shapely.bounds(geoms)
        with np.errstate(invalid="ignore"):
            valid &= np.isfinite(bounds).all(axis=1) & (np.abs(bounds[:, [0, 2]]) <= 180).all(axis=1) & \
                (np.abs(bounds[:, [1, 3]]) <= 90).all(axis=1)
        bad = ~valid
        bounds = np.where(bad[:, None], 0.0, bounds)
        point = shapely.points(0.0, 0.0)
        geoms = np.where(bad, point, geoms)
        wkb = pa.array(shapely.to_wkb(geoms, output_dimension=2, byte_order=1, flavor="iso"), pa.binary())
        bbox = pa.StructArray.from_arrays([pa.array(bounds[:, i]) for i in range(4)], fields=list(bbox_type()))
        over = np.zeros(n, dtype=bool)
        if max_dec is not None:  # every coordinate of every valid geometry at once, mapped back to its row
            rows = np.nonzero(valid)[0]
            coords, index = shapely.get_coordinates(geoms[rows], return_index=True)
            off = decimals_over(coords[:, 0], int(max_dec)) | decimals_over(coords[:, 1], int(max_dec))
            over[rows[np.unique(index[off])]] = True
        return wkb, bbox, bad, over


def read_batches(path: Path, fmt: str, options: dict[str, Any]) -> Iterator[pa.Table]:
    """An upstream object as tables of strings (CSV) or native values (Parquet), batch by batch."""
    import pyarrow as pa

    if fmt == "csv":
        import csv as pycsv

        import pyarrow.csv as pacsv

        delimiter = options.get("delimiter", ",")
        with open(path, encoding="utf-8-sig", newline="") as fh:  # Arrow strips a BOM from the first name too
            header = next(pycsv.reader(fh, delimiter=delimiter), [])
        if not header:
            return
        convert_options = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=True,
            null_values=list(options.get("null_values", [""])), quoted_strings_can_be_null=False)
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delimiter), convert_options=convert_options)
        for batch in reader:
            yield pa.Table.from_batches([batch])
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield pa.Table.from_batches([batch])
    elif fmt in ("geojson", "ndjson"):
        yield from _geojson_batches(path, fmt)
    else:
        raise ValueError(f"unknown source format {fmt!r}")


def _geojson_batches(path: Path, fmt: str) -> Iterator[pa.Table]:
    import pyarrow as pa

    def features() -> Iterator[Any]:
        if fmt == "geojson":  # streamed feature by feature: memory stays bounded whatever the file's size
            import ijson

            with open(path, "rb") as fh:
                try:
                    yield from ijson.items(fh, "features.item", use_float=True)
                except ijson.JSONError as exc:
                    raise ValueError("not valid JSON") from exc
        else:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except ValueError:
                            yield None

    rows: list[dict[str, Any]] = []
    for feature in features():
        props = feature.get("properties") if isinstance(feature, dict) else None
        row = {k: (None if v is None else v if isinstance(v, str) else json.dumps(v))
               for k, v in (props or {}).items()}
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        row["geometry"] = json.dumps(geometry) if geometry is not None else None
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            yield pa.Table.from_pylist(rows, schema=_string_schema(rows))
            rows = []
    if rows:
        yield pa.Table.from_pylist(rows, schema=_string_schema(rows))


def _string_schema(rows: list[dict[str, Any]]) -> pa.Schema:
    import pyarrow as pa

    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    return pa.schema([(n, pa.string()) for n in names])
