"""WORK, step one: upstream batches (read by ``sources``) become Arrow record batches with the contract's types, a
WKB geometry and a bbox, and a cause for every row that cannot be published: its reason code, the column, and what
was wrong (expected and found types), never the value itself.

Everything is vectorised (pyarrow.compute, numpy, shapely 2) and works batch by batch, so memory stays bounded
whatever the input size. A row is never dropped silently: it is either converted or carries a cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kfm_gitops.encodings import DEFAULT_ENCODING, Converted, from_epoch_numbers
from kfm_gitops.geometry import GEOMETRY_TYPES as GEOMETRY_TYPES
from kfm_gitops.geometry import Geometries
from kfm_gitops.geometry import bbox_type as bbox_type

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Reason codes in the order they are assigned: a row gets the first that applies.
REASONS = ("SCHEMA_INVALID", "GEOMETRY_INVALID", "GEOMETRY_OVERPRECISE", "OUT_OF_WINDOW", "OUT_OF_EXTENT",
           "DUPLICATE_ID")
TRANSFORM_OPS = ("rename", "drop", "force_2d")  # every transform the pipeline schema accepts, each applied here
OK = 0  # cause 0: the row is fine; 1..n index a chunk's Causes (1-based)

_INT = r"^[+-]?[0-9]+$"
_FLOAT = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_BOOL = r"^(true|false|True|False|TRUE|FALSE|1|0)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_CLOCK = r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
_PATTERNS = {
    "int32": _INT, "int64": _INT, "float32": _FLOAT, "float64": _FLOAT, "bool": _BOOL, "date": _DATE,
    # An explicit offset is required: a naive timestamp is SCHEMA_INVALID.
    "timestamp": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + _CLOCK + r"(Z|[+-][0-9]{2}:?[0-9]{2})$",
}
# What a value that failed looks like, in type names, tried in this order (the value itself is never reported).
_KINDS = (("int64", _INT), ("float64", _FLOAT), ("bool", r"^(true|false|True|False|TRUE|FALSE)$"),
          ("timestamp", _PATTERNS["timestamp"]), ("timestamp without offset", r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + _CLOCK
                                                  + "$"),
          ("date", _DATE), ("object", r"^\s*\{"), ("array", r"^\s*\["))
_ARROW_NAMES = {"double": "float64", "float": "float32", "large_string": "string", "halffloat": "float16"}
# Control characters refused in text: C0 but tab, line feed and carriage return; DEL; C1.
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x{9f}]"


def arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
        "float64": pa.float64(), "bool": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"),
    }[name]


@dataclass(frozen=True, slots=True)
class Cause:
    """Why rows were refused: the reason code, the column, and what was wrong (no value from the row)."""

    reason: str
    column: str
    detail: str

    def text(self) -> str:
        return f"{self.column}: {self.detail}" if self.column else self.detail


@dataclass(slots=True)
class Causes:
    """Every cause of one chunk, numbered from 1, so that a batch carries one integer per row."""

    items: list[Cause] = field(default_factory=list)
    _index: dict[Cause, int] = field(default_factory=dict)

    def code(self, reason: str, column: str, detail: str) -> int:
        cause = Cause(reason, column, detail)
        if cause not in self._index:
            self.items.append(cause)
            self._index[cause] = len(self.items)
        return self._index[cause]

    def __getitem__(self, code: int) -> Cause:
        return self.items[code - 1]


def mark(codes: np.ndarray, mask: np.ndarray, code: int) -> None:
    """Give rows in ``mask`` that have no cause yet this one (the first cause found is the one kept)."""
    codes[(codes == OK) & mask] = code


@dataclass(frozen=True, slots=True)
class Normalized:
    """One batch after normalisation: the typed table (contract columns, geometry, bbox), a cause per row (0: none),
    the raw values (for quarantine), and for each contract column the rows where the source had no value."""

    table: pa.Table
    causes: np.ndarray  # int32 per row
    raw: pa.Table
    source: str
    first_row: int  # row number of the batch's first row within its source object (1-based, after the header)
    absent: dict[str, np.ndarray]
    rows: np.ndarray | None = None  # each row's number, once some rows were taken out of the batch

    def row_number(self, i: int) -> int:
        return self.first_row + i if self.rows is None else int(self.rows[i])


def convert(column: pa.Array, type_name: str) -> tuple[pa.Array, np.ndarray]:
    """A string column to ``type_name``; returns the typed column (null where it failed) and a bool mask of
    failures (a value that is present but cannot be converted)."""
    done = convert_values(column, type_name)
    return done.typed, done.failed


def convert_values(column: pa.Array, type_name: str, encoding: str | None = None, zone: str = "UTC") -> Converted:
    """``convert``, with the failures that had the right shape but an impossible value told apart; a time column
    as its ``encoding`` says (local times in ``zone``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from kfm_gitops import encodings

    target = arrow_type(type_name)
    if type_name == "string":
        none = np.zeros(len(column), dtype=bool)
        return Converted(column, none, none)
    if type_name == "timestamp" and encoding in ("epoch_s", "epoch_ms", "epoch_us"):
        return encodings.from_epoch(column, encoding)
    if type_name == "timestamp" and encoding in ("iso8601_local", "date"):
        offset = convert_values(column, type_name) if encoding == "iso8601_local" else None
        return encodings.from_local(column, encoding, zone, offset)
    present = pc.is_valid(column)
    # The pattern decides what is valid, row by row, whatever else is in the batch; Arrow's parser only converts.
    matches = pc.match_substring_regex(column, _PATTERNS[type_name])
    if type_name != "bool" and pc.all(pc.or_kleene(matches, pc.invert(present))).as_py() is not False:
        try:
            typed = pc.cast(column, target)  # every present value matches: one cast, no cleaning
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            return _finite(typed, type_name, np.zeros(len(column), dtype=bool))
    good = pc.and_(present, matches)
    clean = pc.if_else(good, column, pa.scalar(None, pa.string()))
    impossible = np.zeros(len(column), dtype=bool)
    if type_name == "bool":
        typed = pc.is_in(pc.utf8_lower(clean), value_set=pa.array(["true", "1"]))
        typed = pc.if_else(good, typed, pa.scalar(None, pa.bool_()))
    else:
        try:
            typed = pc.cast(clean, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed, impossible = encodings.cast_each(clean, target)
            good = pc.and_(good, pa.array(~impossible))
    done = _finite(typed, type_name, impossible)
    failed = np.asarray(pc.and_(present, pc.invert(good)).to_numpy(zero_copy_only=False), dtype=bool)
    return Converted(done.typed, failed | done.failed, done.impossible)


def _finite(typed: pa.Array, type_name: str, impossible: np.ndarray) -> Converted:
    """1e400 matches the float pattern and overflows to infinity: out of range, not infinity."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not type_name.startswith("float"):
        return Converted(typed, impossible, impossible)
    over = np.asarray(pc.fill_null(pc.invert(pc.is_finite(typed)), False).to_numpy(zero_copy_only=False), dtype=bool)
    if over.any():
        typed = pc.if_else(pa.array(over), pa.scalar(None, typed.type), typed)
    return Converted(typed, impossible | over, impossible | over)


def found_kinds(values: pa.Array) -> list[str]:
    """For each (string) value, the type it looks like: ``int64``, ``timestamp without offset``, ``string``..."""
    import numpy as np
    import pyarrow.compute as pc

    kinds = np.full(len(values), "string", dtype=object)
    left = np.ones(len(values), dtype=bool)
    for kind, pattern in _KINDS:
        hit = np.asarray(pc.fill_null(pc.match_substring_regex(values, pattern), False)
                         .to_numpy(zero_copy_only=False), dtype=bool) & left
        kinds[hit] = kind
        left &= ~hit
    return [str(k) for k in kinds]


def arrow_name(t: pa.DataType) -> str:
    return _ARROW_NAMES.get(str(t), str(t))


def control_rows(values: pa.Array) -> np.ndarray | None:
    """Rows of a string column holding a control character, or None when there are none (the common case, seen
    from the data buffer alone)."""
    import numpy as np
    import pyarrow.compute as pc

    if values.null_count == len(values) or len(values) == 0:
        return None
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    if len(data) == 0 or not _suspicious(data):
        return None
    hit = pc.fill_null(pc.match_substring_regex(values, CONTROL), False)
    rows = np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
    return rows if rows.any() else None


def _suspicious(data: np.ndarray) -> bool:
    """Whether text bytes may hold a control character: two vectorised reductions decide for ASCII text; a C1
    character starts with the byte 0xC2."""
    lo, hi = int(data.min()), int(data.max())
    if lo < 0x20:
        low = data[data < 0x20]
        if ((low != 9) & (low != 10) & (low != 13)).any():
            return True
    return hi >= 0x7F and bool((data == 0x7F).any() or (data == 0xC2).any())


def column_values(raw: pa.Table, name: str, native: pa.Array | None = None) -> tuple[pa.Array | None, str]:
    """A source column as strings, and its type's name (None when the source has no such column). A column that
    Arrow cannot write as text (a struct, a list) comes back as nulls, its type named."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in raw.column_names:
        return None, ""
    values = native if native is not None else raw.column(name).combine_chunks()
    kind = arrow_name(values.type)
    if values.type != pa.string():
        try:
            values = pc.cast(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None, kind
    return values, kind


class Normalizer:
    """Turns batches of strings into typed, checked batches for one dataset contract and pipeline."""

    def __init__(self, dataset: dict[str, Any], pipeline: dict[str, Any], causes: Causes | None = None) -> None:
        self.columns: list[dict[str, Any]] = list(dataset["schema"]["columns"])
        self.id_column: str = dataset["schema"]["id_column"]
        self.geometry: dict[str, Any] = dict(dataset["schema"]["geometry"])
        self.extent: list[float] = list(dataset["extent"]["bbox"])
        self.source: dict[str, Any] = dict(pipeline["source"])
        self.transforms: list[dict[str, Any]] = list(pipeline.get("transforms", []))
        self.force_2d = any(t["op"] == "force_2d" for t in self.transforms)
        self.flattened = 0  # rows whose Z force_2d dropped
        self.geo_from: dict[str, Any] = dict(self.source.get("geometry") or {"from": "geojson"})
        self.source_columns: dict[str, dict[str, None]] = {}  # source object -> its column names, in every batch
        self.collisions: dict[str, list[str]] = {}  # source object -> renames onto a name it has already
        self.json_rows = self.source["format"] in ("geojson", "ndjson")  # a row may lack a key its neighbours have
        self.causes = causes if causes is not None else Causes()
        self.zone: str = dataset["partitioning"].get("timezone", "UTC")
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

    def evidence(self) -> list[dict[str, Any]]:
        """The transforms that change data beyond names, with what they did (for the receipt)."""
        if not self.force_2d:
            return []
        return [{"op": "force_2d", "evidence": {"rows_flattened": self.flattened}}]

    def _transform(self, raw: pa.Table, source: str) -> pa.Table:
        """Renames and drops, in order (``source_problems`` says which cannot apply to a source)."""
        for t in self.transforms:
            names = raw.column_names
            if t["op"] == "rename":
                mapping = t.get("columns", {})
                for old, new in mapping.items():
                    problem = f"rename: {source} has a column {new!r} already"
                    if old in names and new in names and new not in mapping and problem not in \
                            self.collisions.setdefault(source, []):
                        self.collisions[source].append(problem)
                raw = raw.rename_columns([mapping.get(n, n) for n in names])
            elif t["op"] == "drop":
                raw = raw.drop_columns([n for n in t.get("names", []) if n in names])
        return raw

    def source_problems(self) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
        """Per source object, over every batch read: the transforms that cannot apply to it (a column it lacks, a
        rename onto a name it has), and the columns the contract and source.geometry need that it lacks (a GeoJSON
        property missing from some features is not missing from the source)."""
        problems: dict[str, list[str]] = {}
        missing: dict[str, set[str]] = {}
        for source, seen in self.source_columns.items():
            names = set(seen)
            found = list(self.collisions.get(source, []))
            for t in self.transforms:
                if t["op"] == "rename":
                    mapping = t.get("columns", {})
                    found += [f"rename: {source} has no column {old!r}" for old in mapping if old not in names]
                    names = {mapping.get(n, n) for n in names}
                elif t["op"] == "drop":
                    found += [f"drop: {source} has no column {n!r}" for n in t.get("names", []) if n not in names]
                    names -= set(t.get("names", []))
            if found:
                problems[source] = found
            lacking = {name for name in self.needed_names() if name not in names}
            if lacking:
                missing[source] = lacking
        return problems, missing

    def needed_names(self) -> list[str]:
        """The columns a source must have (after transforms): the contract's, and where the geometry comes from."""
        how = self.geo_from["from"]
        geometry = [self.geo_from[k] for k in ("x", "y", "z") if k in self.geo_from] if how == "xy" else \
            [self.geo_from.get("column", "geometry")]
        return [c["name"] for c in self.columns] + geometry

    def normalize(self, raw: pa.Table, source: str, first_row: int) -> Normalized:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        self.source_columns.setdefault(source, {}).update(dict.fromkeys(raw.column_names))
        raw = self._transform(raw, source)
        n = raw.num_rows
        codes = np.zeros(n, dtype=np.int32)
        arrays: list[pa.Array] = []
        absent: dict[str, np.ndarray] = {}
        for col in self.columns:
            typed, absent[col["name"]] = self._column(raw, col, codes)
            arrays.append(typed)
        geoms = self._geometry(raw, n, codes)
        for p in geoms.problems:
            mark(codes, p.mask, self.causes.code(p.reason, p.column, p.detail))
        self.flattened += geoms.flattened
        bbox = geoms.bbox
        xmin, ymin, xmax, ymax = (np.asarray(pc.struct_field(bbox, k).to_numpy(zero_copy_only=False), dtype=float)
                                  for k in ("xmin", "ymin", "xmax", "ymax"))
        e = self.extent
        with np.errstate(invalid="ignore"):
            outside = (xmin < e[0]) | (ymin < e[1]) | (xmax > e[2]) | (ymax > e[3])
        mark(codes, outside & ~geoms.bad, self.causes.code("OUT_OF_EXTENT", self.geometry["column"],
                                                          f"outside the extent {e}"))
        table = pa.Table.from_arrays([*arrays, geoms.wkb, bbox], schema=self._loose_schema())
        return Normalized(table, codes, raw, source, first_row, absent)

    def _column(self, raw: pa.Table, col: dict[str, Any], codes: np.ndarray
                ) -> tuple[pa.Array, np.ndarray]:
        """One contract column, typed; its failures marked with their cause. Returns the typed values and the rows
        where the source had no value."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        name, type_name, n = col["name"], col["type"], raw.num_rows
        encoding = col.get("encoding")
        label = type_name if encoding in (None, DEFAULT_ENCODING.get(type_name)) else f"{type_name} ({encoding})"
        native = raw.column(name).combine_chunks() if name in raw.column_names else None
        if native is not None and encoding in ("epoch_s", "epoch_ms", "epoch_us") and (
                pa.types.is_integer(native.type) or pa.types.is_floating(native.type)):
            done = from_epoch_numbers(native, encoding)
            self._failures(native, done, name, label, arrow_name(native.type), codes)
            absent = np.asarray(pc.is_null(native).to_numpy(zero_copy_only=False), dtype=bool)
            if self._needed(col):
                mark(codes, absent, self.causes.code("SCHEMA_INVALID", name, "required, found null"))
            return done.typed, absent
        values, found = column_values(raw, name, native)
        if values is None:
            detail = f"expected {label}, found {found}" if found else \
                "required, found null" if self.json_rows else "missing from the source"
            reason_rows = np.ones(n, dtype=bool)
            if found or self._needed(col):
                mark(codes, reason_rows, self.causes.code("SCHEMA_INVALID", name, detail))
            return pa.nulls(n, arrow_type(type_name)), reason_rows
        done = convert_values(values, type_name, encoding, self.zone)
        if done.failed.any():
            self._failures(values, done, name, label, found, codes)
        absent = np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)
        if self._needed(col):
            mark(codes, absent, self.causes.code("SCHEMA_INVALID", name, "required, found null"))
        if type_name == "string":
            control = control_rows(values)
            if control is not None:
                mark(codes, control, self.causes.code("SCHEMA_INVALID", name, "holds a control character"))
        return done.typed, absent

    def _needed(self, col: dict[str, Any]) -> bool:
        name = col["name"]
        return bool(col.get("required", False)) or name == self.id_column or name in self.partition_columns

    def _failures(self, values: pa.Array, done: Converted, name: str, type_name: str, found: str,
                  codes: np.ndarray, reason: str = "SCHEMA_INVALID") -> None:
        """Mark failed conversions with what was expected and what was found: the source's own type for typed
        sources (Parquet), else what the text looks like."""
        import numpy as np
        import pyarrow as pa

        rows = np.nonzero(done.failed & ~done.impossible)[0]
        if len(rows):
            kinds = np.array([found] * len(rows), dtype=object) if found != "string" else \
                np.array(found_kinds(values.take(pa.array(rows))), dtype=object)
            for kind in sorted(set(kinds.tolist())):
                mask = np.zeros(len(values), dtype=bool)
                mask[rows[kinds == kind]] = True
                mark(codes, mask, self.causes.code(reason, name, f"expected {type_name}, found {kind}"))
        for mask, why in done.why or ((done.impossible, "out of range"),):
            if mask.any():
                mark(codes, mask, self.causes.code(reason, name, f"{type_name} {why}"))

    def _loose_schema(self) -> pa.Schema:
        """The output schema with every field nullable: rows with causes still hold nulls until they are removed."""
        import pyarrow as pa

        return pa.schema([f.with_nullable(True) for f in self.schema()])

    def _geometry(self, raw: pa.Table, n: int, codes: np.ndarray) -> Geometries:
        from kfm_gitops import geometry

        how = self.geo_from["from"]
        max_dec = self.geometry.get("max_decimals")
        allowed = list(self.geometry["types"])
        if how == "xy":
            xyz = [self._coordinate(raw, self.geo_from[k], codes) if k in self.geo_from else None
                   for k in ("x", "y", "z")]
            x, y = xyz[0], xyz[1]
            assert x is not None and y is not None
            return geometry.points(x, y, xyz[2], allowed, None if max_dec is None else int(max_dec),
                                   self.force_2d, self.geometry["column"])
        col_name = self.geo_from.get("column", "geometry")
        values = raw.column(col_name).to_pylist() if col_name in raw.column_names else [None] * n
        return geometry.parsed(values, how, allowed, None if max_dec is None else int(max_dec), self.force_2d,
                               self.geometry["column"])

    def _coordinate(self, raw: pa.Table, name: str, codes: np.ndarray) -> np.ndarray:
        """One coordinate column as float64 (NaN where missing or unreadable, with the cause marked; a missing z
        is not a fault: the row is then 2-D)."""
        import numpy as np

        values, found = column_values(raw, name)
        optional = name == self.geo_from.get("z")
        if values is None:
            if optional and self.json_rows and not found:  # these rows have no z: 2-D points
                return np.full(raw.num_rows, np.nan)
            detail = f"expected float64, found {found}" if found else "missing" if self.json_rows else \
                "missing from the source"
            mark(codes, np.ones(raw.num_rows, dtype=bool), self.causes.code("GEOMETRY_INVALID", name, detail))
            return np.full(raw.num_rows, np.nan)
        done = convert_values(values, "float64")
        if done.failed.any():  # a coordinate that is not a number makes the geometry invalid
            self._failures(values, done, name, "float64", found, codes, "GEOMETRY_INVALID")
        out = np.asarray(done.typed.to_numpy(zero_copy_only=False), dtype=float)
        if not optional:
            mark(codes, np.isnan(out) & ~done.failed, self.causes.code("GEOMETRY_INVALID", name, "missing"))
        return out
