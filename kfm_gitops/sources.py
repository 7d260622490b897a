"""WORK, step zero: RAW objects read batch by batch as Arrow tables (CSV and GeoJSON as text, Parquet as its own
types), the shape each format promises checked as they are read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

CSV_BLOCK = 8 * 1024 * 1024  # fixed, so that batching never depends on the machine
BATCH_ROWS = 65_536  # rows per batch for formats read in Python


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
