"""WORK, geometry: source geometries (x/y[/z] columns, WKT, WKB, GeoJSON) become ISO WKB with a bbox, and every row
that cannot be published gets a problem naming why: unreadable, a type the contract does not declare (a 3-D
geometry in a 2-D contract included: Z is never dropped silently), M coordinates, a missing Z, coordinates outside
longitude/latitude, more decimals than the contract allows.

Flattening is never implicit: only the pipeline's ``op: force_2d`` transform drops Z, and it is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Geometry type names by shapely's type ids.
GEOMETRY_TYPES = ("Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
                  "GeometryCollection")
_WKB_NAMES = {1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString", 6: "MultiPolygon",
              7: "GeometryCollection"}
POINT_2D, POINT_3D = 21, 29  # bytes of an ISO WKB point without and with Z


def type_name(type_id: int, has_z: bool) -> str:
    """The GeoParquet name of a geometry type: "Point", "Point Z"."""
    return GEOMETRY_TYPES[type_id] + (" Z" if has_z else "")


def _type_code(name: str) -> int:
    """A type name as one integer: shapely's type id times two, plus one for Z."""
    base, _, z = name.partition(" ")
    return GEOMETRY_TYPES.index(base) * 2 + (1 if z == "Z" else 0)


def bbox_type() -> pa.DataType:
    import pyarrow as pa

    return pa.struct([("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64())])


def bbox_array(columns: Sequence[np.ndarray]) -> pa.Array:
    """The bbox covering column from its four columns: xmin, ymin, xmax, ymax (``list(bounds.T)`` of shapely's)."""
    import pyarrow as pa

    return pa.StructArray.from_arrays([pa.array(c) for c in columns], fields=list(bbox_type()))


@dataclass(frozen=True, slots=True)
class Problem:
    """Rows (a mask) refused for one reason, with the column and what was wrong, in the contract's terms."""

    mask: np.ndarray
    reason: str
    column: str
    detail: str


@dataclass(slots=True)
class Geometries:
    """One batch's geometries: WKB (a placeholder point where a row has a problem), the bbox covering column, and
    the problems in the order they take precedence."""

    wkb: pa.Array
    bbox: pa.Array
    problems: list[Problem] = field(default_factory=list)
    flattened: int = 0  # rows whose Z the force_2d transform dropped

    @property
    def bad(self) -> np.ndarray:
        """Rows with a problem that makes the geometry unusable (not those merely over-precise)."""
        import numpy as np

        out = np.zeros(len(self.wkb), dtype=bool)
        for p in self.problems:
            if p.reason == "GEOMETRY_INVALID":
                out |= p.mask
        return out


def decimals_over(values: np.ndarray, limit: int) -> np.ndarray:
    """Coordinates that need more than ``limit`` decimals (|v| <= 180, so float64 is exact far below 1e-6 here)."""
    import numpy as np

    scaled = values * 10.0 ** limit
    with np.errstate(invalid="ignore"):
        over: np.ndarray = (np.abs(scaled - np.round(scaled)) > 1e-6) & np.isfinite(values)
    return over


def point_wkb(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> pa.Array:
    """Little-endian ISO WKB points, built directly: 1 byte order, uint32 type (1, or 1001 where ``z`` is not NaN),
    two or three doubles."""
    import numpy as np
    import pyarrow as pa

    n = len(x)
    has_z = np.zeros(n, dtype=bool) if z is None else ~np.isnan(z)
    if has_z.all() or not has_z.any():  # the common cases: one fixed-width buffer
        width = POINT_3D if n and has_z.all() else POINT_2D
        buf = np.empty((n, width), dtype=np.uint8)
        buf[:, 0] = 1
        buf[:, 1:5] = np.frombuffer(np.uint32(1001 if width == POINT_3D else 1).tobytes(), dtype=np.uint8)
        buf[:, 5:13] = x.astype("<f8").view(np.uint8).reshape(n, 8)
        buf[:, 13:21] = y.astype("<f8").view(np.uint8).reshape(n, 8)
        if width == POINT_3D:
            assert z is not None
            buf[:, 21:29] = z.astype("<f8").view(np.uint8).reshape(n, 8)
        offsets = np.arange(0, width * (n + 1), width, dtype=np.int32)
        return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes())])
    assert z is not None
    sizes = np.where(has_z, POINT_3D, POINT_2D)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    starts = offsets[:-1]
    out[starts] = 1
    codes = np.where(has_z, 1001, 1).astype("<u4").view(np.uint8).reshape(n, 4)
    eight = np.arange(8)
    out[starts[:, None] + 1 + np.arange(4)] = codes
    out[starts[:, None] + 5 + eight] = x.astype("<f8").view(np.uint8).reshape(n, 8)
    out[starts[:, None] + 13 + eight] = y.astype("<f8").view(np.uint8).reshape(n, 8)
    zs = starts[has_z]
    out[zs[:, None] + 21 + eight] = z[has_z].astype("<f8").view(np.uint8).reshape(len(zs), 8)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out.tobytes())])


def _declared(allowed: Sequence[str]) -> str:
    return ", ".join(allowed)


def _type_problems(codes: np.ndarray, candidates: np.ndarray, allowed: Sequence[str], column: str) -> list[Problem]:
    """One problem per geometry type the contract does not declare, among the ``candidates`` rows."""
    import numpy as np

    ok_codes = [_type_code(name) for name in allowed]
    wrong = candidates & ~np.isin(codes, ok_codes)
    out = []
    for code in np.unique(codes[wrong]).tolist():
        name = type_name(code // 2, bool(code % 2))
        detail = f"{name}; the contract declares {_declared(allowed)}"
        flat = name.removesuffix(" Z")
        if code % 2 and flat in allowed:
            detail += " (declare " + name + ", or flatten with the force_2d transform)"
        elif not code % 2 and f"{name} Z" in allowed:
            detail += " (a 2-D geometry: declare " + name + " too)"
        out.append(Problem(wrong & (codes == code), "GEOMETRY_INVALID", column, detail))
    return out


def points(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, allowed: Sequence[str], max_decimals: int | None,
           force_2d: bool, column: str) -> Geometries:
    """Point geometries from coordinates already converted (NaN where the source had none: the caller has said
    why). ``z`` None: the pipeline names no z column."""
    import numpy as np

    flattened = 0
    if z is not None and force_2d:
        flattened, z = int((~np.isnan(z)).sum()), None
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(x) & np.isfinite(y)
        outside = usable & ((np.abs(x) > 180) | (np.abs(y) > 90))
    has_z = np.zeros(len(x), dtype=bool) if z is None else ~np.isnan(z)
    problems = [Problem(outside, "GEOMETRY_INVALID", column, "coordinates outside longitude/latitude range")]
    problems += _type_problems(has_z.astype(np.int64), usable & ~outside, allowed, column)  # Point is type id 0
    bad = ~usable
    for p in problems:
        bad |= p.mask
    x0, y0 = np.where(bad, 0.0, x), np.where(bad, 0.0, y)
    wkb = point_wkb(x0, y0, None if z is None else np.where(bad, np.nan, z))
    bbox = bbox_array([x0, y0, x0, y0])
    if max_decimals is not None:
        over = (decimals_over(x0, max_decimals) | decimals_over(y0, max_decimals)) & ~bad
        problems.append(Problem(over, "GEOMETRY_OVERPRECISE", column, f"more than {max_decimals} decimals"))
    return Geometries(wkb, bbox, problems, flattened)


def _parse(values: Sequence[Any], how: str) -> np.ndarray:
    import numpy as np
    import shapely

    if how == "wkt":
        return np.asarray(shapely.from_wkt(np.array(values, dtype=object), on_invalid="ignore"))
    if how == "wkb":
        return np.asarray(shapely.from_wkb(np.array(values, dtype=object), on_invalid="ignore"))
    # geojson: the geometry member as JSON text
    return np.asarray(shapely.from_geojson(np.array([v if v else None for v in values], dtype=object),
                                           on_invalid="ignore"))


def parsed(values: Sequence[Any], how: str, allowed: Sequence[str], max_decimals: int | None, force_2d: bool,
           column: str) -> Geometries:
    """Geometries from WKT, WKB or GeoJSON text, checked all at once (no per-row loop)."""
    import numpy as np
    import shapely

    absent = np.array([v is None or v == "" for v in values], dtype=bool)
    geoms = _parse(values, how)
    unread = shapely.is_missing(geoms) & ~absent
    present = ~absent & ~unread
    problems = [Problem(absent, "GEOMETRY_INVALID", column, "missing"),
                Problem(unread, "GEOMETRY_INVALID", column, f"not a valid {how.upper()} geometry")]
    has_m = present & shapely.has_m(geoms)
    problems.append(Problem(has_m, "GEOMETRY_INVALID", column, "has M coordinates, which kfm does not publish"))
    present &= ~has_m
    flattened = 0
    if force_2d:
        has_z = present & shapely.has_z(geoms)
        flattened = int(has_z.sum())
        geoms = np.where(has_z, shapely.force_2d(geoms), geoms)
    codes = shapely.get_type_id(geoms) * 2 + shapely.has_z(geoms)
    typed = _type_problems(codes, present, allowed, column)
    problems += typed
    for p in typed:
        present &= ~p.mask
    present = _shape_problems(geoms, present, problems, column)
    bad = ~present
    bounds = np.where(bad[:, None], 0.0, shapely.bounds(geoms))
    geoms = np.where(bad, shapely.points(0.0, 0.0), geoms)
    wkb = shapely.to_wkb(geoms, output_dimension=3, byte_order=1, flavor="iso")
    import pyarrow as pa

    out = Geometries(pa.array(wkb, pa.binary()), bbox_array(list(bounds.T)), problems, flattened)
    if max_decimals is not None:  # every coordinate of every usable geometry at once, mapped back to its row
        over = np.zeros(len(values), dtype=bool)
        rows = np.nonzero(present)[0]
        coords, index = shapely.get_coordinates(geoms[rows], return_index=True)
        off = decimals_over(coords[:, 0], max_decimals) | decimals_over(coords[:, 1], max_decimals)
        over[rows[np.unique(index[off])]] = True
        out.problems.append(Problem(over, "GEOMETRY_OVERPRECISE", column, f"more than {max_decimals} decimals"))
    return out


def _shape_problems(geoms: np.ndarray, present: np.ndarray, problems: list[Problem], column: str) -> np.ndarray:
    """Invalid or empty geometries, a Z that is not a number, coordinates outside longitude/latitude: appended to
    ``problems``; returns the rows still usable."""
    import numpy as np
    import shapely

    rows = np.nonzero(present)[0]
    empty = np.zeros(len(geoms), dtype=bool)
    empty[rows] = shapely.is_empty(geoms[rows])
    invalid = np.zeros(len(geoms), dtype=bool)
    invalid[rows] = ~shapely.is_valid(geoms[rows]) & ~empty[rows]
    problems.append(Problem(empty, "GEOMETRY_INVALID", column, "empty"))
    problems.append(Problem(invalid, "GEOMETRY_INVALID", column, "not valid (self-intersecting or degenerate)"))
    present = present & ~empty & ~invalid
    zrows = np.nonzero(present & shapely.has_z(geoms))[0]
    no_z = np.zeros(len(geoms), dtype=bool)
    if len(zrows):
        coords, index = shapely.get_coordinates(geoms[zrows], include_z=True, return_index=True)
        no_z[zrows[np.unique(index[~np.isfinite(coords[:, 2])])]] = True
    problems.append(Problem(no_z, "GEOMETRY_INVALID", column, "a Z coordinate is missing or not a number"))
    present &= ~no_z
    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(bounds).all(axis=1) & (np.abs(bounds[:, [0, 2]]) <= 180).all(axis=1) & \
            (np.abs(bounds[:, [1, 3]]) <= 90).all(axis=1)
    outside = present & ~inside
    problems.append(Problem(outside, "GEOMETRY_INVALID", column, "coordinates outside longitude/latitude range"))
    usable: np.ndarray = present & inside
    return usable


def wkb_types(wkb: pa.ChunkedArray | pa.Array) -> tuple[set[str], np.ndarray]:
    """Geometry type names from the WKB headers (little- or big-endian, ISO or EWKB flags), and a mask of the rows
    with Z."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    head = pc.binary_slice(wkb, 0, 5)
    if isinstance(head, pa.ChunkedArray):
        head = head.combine_chunks()
    if len(head) == 0:
        return set(), np.zeros(0, dtype=bool)
    raw = np.frombuffer(head.buffers()[2], dtype=np.uint8)[: 5 * len(head)]
    if len(raw) < 5 * len(head):
        return set(), np.zeros(len(head), dtype=bool)
    rows = raw.reshape(-1, 5)
    little = rows[:, 0] == 1
    le = rows[:, 1:5].copy().view("<u4").ravel()
    be = rows[:, 1:5].copy().view(">u4").ravel()
    codes = np.where(little, le, be)
    iso = codes & 0xFFFF
    has_z = ((codes & 0x80000000) != 0) | ((iso // 1000) == 1) | ((iso // 1000) == 3)
    found = {_WKB_NAMES.get(int(c) // 2, "Unknown") + (" Z" if c % 2 else "")
             for c in np.unique((iso % 1000) * 2 + has_z).tolist()}
    return found, has_z


def z_range(wkb: pa.ChunkedArray | pa.Array, has_z: np.ndarray) -> tuple[float, float] | None:
    """The smallest and largest Z of the rows with Z (points read straight from their bytes, other geometries
    through shapely)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not has_z.any():
        return None
    col = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    rows = col.filter(pa.array(has_z))
    lengths = np.asarray(pc.binary_length(rows).to_numpy(zero_copy_only=False))
    if (lengths == POINT_3D).all() and rows.offset == 0:  # ISO little-endian Point Z: z is the last double
        data = np.frombuffer(rows.buffers()[2], dtype=np.uint8)[: POINT_3D * len(rows)].reshape(-1, POINT_3D)
        if (data[:, 0] == 1).all():
            zs = data[:, 21:29].copy().view("<f8").ravel()
            return float(zs.min()), float(zs.max())
    import shapely

    coords = shapely.get_coordinates(shapely.from_wkb(np.array(rows.to_pylist(), dtype=object)), include_z=True)
    zs = coords[:, 2][np.isfinite(coords[:, 2])]
    return (float(zs.min()), float(zs.max())) if len(zs) else None
