"""WORK, step zero: RAW objects read batch by batch as Arrow tables (CSV and GeoJSON as text, Parquet as its own
types), the shape each format promises checked as they are read.

A document that is not what its format promises is refused whole, with where (``SourceError``): a GeoJSON file
that is not a FeatureCollection or a Feature (a misspelt ``features`` included), an item that is not a Feature, a
property named ``$id``, JSON that breaks off (at its line and column), a file holding nothing but whitespace. Rows
are never dropped on the way: what is read is a row.

GeoJSON Features give their properties as columns, the Feature's ``id`` as the column ``$id`` and the geometry as
``geometry`` (JSON text). Nested properties are kept as JSON text (``nested: json``, the default) or flattened into
dotted names (``nested: flatten``: ``{"origin": {"depth": 5}}`` gives the column ``origin.depth``); arrays stay
JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfm_gitops.errors import KfmError

if TYPE_CHECKING:
    import pyarrow as pa

CSV_BLOCK = 8 * 1024 * 1024  # fixed, so that batching never depends on the machine
BATCH_ROWS = 65_536  # rows per batch for formats read in Python
FEATURE_ID = "$id"  # the source column holding a GeoJSON Feature's id
_HEAD = 64 * 1024


class SourceError(KfmError):
    """A source that is not the shape its format promises; the message says where, and quotes no data."""

    code = "SOURCE_UNREADABLE"


def read_batches(path: Path, fmt: str, options: dict[str, Any], nested: str = "json") -> Iterator[pa.Table]:
    """An upstream object as tables of strings (CSV, GeoJSON) or native values (Parquet), batch by batch."""
    if fmt in ("csv", "geojson", "ndjson"):
        _not_blank(path)
    if fmt == "csv":
        yield from _csv_batches(path, options)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            table = pa.Table.from_batches([batch])
            yield table.flatten() if nested == "flatten" else table
    elif fmt in ("geojson", "ndjson"):
        yield from _geojson_batches(path, fmt, nested)
    else:
        raise SourceError(f"unknown source format {fmt!r}")


def _not_blank(path: Path) -> None:
    """A text file with nothing but whitespace is an empty delivery, refused like a 0-byte one."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
        more = bool(fh.read(1))
    if not more and not head.removeprefix(b"\xef\xbb\xbf").strip():
        raise SourceError("holds no data (only whitespace): an empty delivery" if head else "is empty")


def _csv_batches(path: Path, options: dict[str, Any]) -> Iterator[pa.Table]:
    import csv as pycsv

    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = options.get("delimiter", ",")
    with open(path, encoding="utf-8-sig", newline="") as fh:  # Arrow strips a BOM from the first name too
        header = next(pycsv.reader(fh, delimiter=delimiter), [])
    if not header:
        raise SourceError("has no header line")
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header}, strings_can_be_null=True,
        null_values=list(options.get("null_values", [""])), quoted_strings_can_be_null=False)
    reader = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK, use_threads=True),
        parse_options=pacsv.ParseOptions(delimiter=delimiter), convert_options=convert_options)
    for batch in reader:
        yield pa.Table.from_batches([batch])


def _geojson_batches(path: Path, fmt: str, nested: str = "json") -> Iterator[pa.Table]:
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    features = _collection_features(path) if fmt == "geojson" else _sequence_features(path)
    for where, feature in features:
        rows.append(_row(feature, where, nested))
        if len(rows) >= BATCH_ROWS:
            yield pa.Table.from_pylist(rows, schema=_string_schema(rows))
            rows = []
    if rows:
        yield pa.Table.from_pylist(rows, schema=_string_schema(rows))


def _row(feature: Any, where: str, nested: str) -> dict[str, Any]:
    """A Feature as a row of text: its properties, ``$id`` and ``geometry``."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise SourceError(f"{where} is not a GeoJSON Feature")
    props = feature.get("properties")
    if props is not None and not isinstance(props, dict):
        raise SourceError(f"{where}: properties is not an object")
    props = props or {}
    if FEATURE_ID in props:
        raise SourceError(f"{where}: a property is named {FEATURE_ID}, which holds the Feature's id")
    row: dict[str, Any] = {}
    _put(row, "", props, nested)
    fid = feature.get("id")
    row[FEATURE_ID] = None if fid is None else fid if isinstance(fid, str) else json.dumps(fid)
    geometry = feature.get("geometry")
    row["geometry"] = json.dumps(geometry) if geometry is not None else None
    return row


def _put(row: dict[str, Any], prefix: str, props: dict[str, Any], nested: str) -> None:
    for k, v in props.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and nested == "flatten":
            _put(row, f"{name}.", v, nested)
        else:
            row[name] = None if v is None else v if isinstance(v, str) else json.dumps(v)


def _collection_features(path: Path) -> Iterator[tuple[str, Any]]:
    """The Features of a GeoJSON document, streamed one by one (memory stays bounded whatever the file's size);
    the document's shape is checked as well: a FeatureCollection with ``features``, or a lone Feature."""
    import ijson

    count = 0
    with open(path, "rb") as fh:
        try:
            for item in ijson.items(fh, "features.item", use_float=True):
                yield f"features[{count}]", item
                count += 1
        except ijson.JSONError as exc:
            raise SourceError(_json_error(path, exc, count)) from exc
    kind = _top_type(path, count)
    if kind == "Feature":
        with open(path, "rb") as fh:
            yield "the Feature", next(ijson.items(fh, "", use_float=True))


def _top_type(path: Path, count: int) -> str:
    """"FeatureCollection" or "Feature", or a SourceError saying what the document is instead."""
    import ijson

    keys, kind = _head_keys(path)
    if count and kind is None:  # the type comes after the features: read it alone (in C, nothing built)
        with open(path, "rb") as fh:
            kind = next(ijson.items(fh, "type"), None)
    elif not count:  # nothing at features.item: look at the whole top level (an error, or a short document)
        keys, kind = _top_level(path)
    if kind == "FeatureCollection":
        if count or "features" in keys:
            return kind
        close = sorted(k for k in keys if k.lower() == "features" or k.lower().rstrip("s") == "feature")
        found = f" (it has {', '.join(repr(k) for k in close)})" if close else ""
        raise SourceError(f"is a FeatureCollection without 'features'{found}: its features would be lost")
    if kind == "Feature" and count == 0:
        return kind
    what = f"type {kind!r}" if isinstance(kind, str) else "no type"
    raise SourceError(f"is not a GeoJSON FeatureCollection or Feature ({what})")


def _top_level(path: Path) -> tuple[set[str], Any]:
    """The keys and the type of a document's top level, streamed (nothing below it is built)."""
    import ijson

    keys: set[str] = set()
    kind: Any = None
    with open(path, "rb") as fh:
        for prefix, event, value in ijson.parse(fh):
            if prefix == "" and event == "map_key":
                keys.add(value)
            elif prefix == "type" and event in ("string", "number", "boolean"):
                kind = value
            elif prefix == "" and event in ("start_array", "string", "number", "boolean", "null"):
                raise SourceError("is not a GeoJSON object (FeatureCollection or Feature)")
    return keys, kind


def _head_keys(path: Path) -> tuple[set[str], str | None]:
    """The top-level keys and type that the first bytes of a document show (most documents name their type
    first, which saves reading the file a second time)."""
    import io

    import ijson

    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    keys: set[str] = set()
    kind: str | None = None
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head)):
            if prefix == "" and event == "map_key":
                keys.add(value)
            elif prefix == "type" and event == "string":
                kind = value
    except ijson.JSONError:
        pass  # the head ends mid-document
    return keys, kind


def _sequence_features(path: Path) -> Iterator[tuple[str, Any]]:
    """Newline-delimited GeoJSON (a record separator before each text is allowed, as RFC 8142 writes them)."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip().lstrip("\x1e")
            if not text:
                continue
            try:
                feature = json.loads(text)
            except ValueError as exc:
                raise SourceError(f"line {number}: not valid JSON") from exc
            yield f"line {number}", feature


def _json_error(path: Path, exc: Exception, count: int) -> str:
    """Where a JSON document breaks, as line and column, without quoting it."""
    reason = str(exc).splitlines()[0].removeprefix("parse error: ").strip() if str(exc) else ""
    offset = None if reason.startswith("premature EOF") else _error_offset(path)
    if offset is None:
        line, col = _position(path, None)
        where = f"ends before the JSON is complete, at line {line}, column {col}"
    else:
        line, col = _position(path, offset)
        where = f"is not valid JSON at line {line}, column {col}" + (f" ({reason})" if reason else "")
    return f"{where}; {count} feature(s) read before it"


def _error_offset(path: Path) -> int | None:
    """The character offset of a JSON syntax error, found by the pure-Python parser (on the error path only)."""
    import re

    import ijson

    backend = ijson.get_backend("python")
    with open(path, "rb") as fh:
        try:
            for _ in backend.basic_parse(fh):
                pass
        except ijson.JSONError as exc:
            m = re.search(r" at (\d+)$", str(exc))
            return int(m.group(1)) if m else None
    return None


def _position(path: Path, offset: int | None) -> tuple[int, int]:
    """1-based line and column of a character offset (None: the end of the file), reading the file as text."""
    line, col, seen = 1, 1, 0
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        while block := fh.read(1 << 20):
            if offset is not None and seen + len(block) > offset:
                block = block[: offset - seen]
            newlines = block.count("\n")
            if newlines:
                line += newlines
                col = len(block) - block.rfind("\n")
            else:
                col += len(block)
            seen += len(block)
            if offset is not None and seen >= offset:
                break
    return line, col


def _string_schema(rows: list[dict[str, Any]]) -> pa.Schema:
    import pyarrow as pa

    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    return pa.schema([(n, pa.string()) for n in names])
