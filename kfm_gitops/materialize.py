"""PROCESSED: GeoParquet 1.1, one artifact per partition, written the same way on every machine.

WKB geometry, a ``bbox`` covering column, ``geo`` metadata (geometry types, bbox, CRS), zstd, rows in the order the
inputs give them (objects by name, rows as written), fixed row groups and writer settings: the same inputs give
byte-identical files with the same pyarrow release. Artifacts land in the store under their digest; nothing is
ever overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfm_gitops.geometry import wkb_types, z_range
from kfm_gitops.periods import iso_utc

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kfm_gitops.store import Store

ROW_GROUP = 65_536
MEDIA_TYPE = "application/vnd.apache.parquet"
GEOPARQUET_VERSION = "1.1.0"
# Fixed writer settings: part of what makes an artifact's bytes reproducible.
WRITER = {"compression": "zstd", "compression_level": 1, "use_dictionary": True, "write_statistics": True,
          "version": "2.6", "data_page_version": "1.0",
          # No ARROW:schema: readers then take the file metadata, where "geo" is written at close, as the schema's.
          "store_schema": False}


@dataclass(slots=True)
class PartitionWriter:
    key: str
    path: Path
    schema: pa.Schema
    geometry_column: str
    time_column: str
    id_column: str = ""
    rows: int = 0
    bbox: list[float] = field(default_factory=lambda: [float("inf"), float("inf"), float("-inf"), float("-inf")])
    time_min: datetime | None = None
    time_max: datetime | None = None
    types: set[str] = field(default_factory=set)
    z: list[float] | None = None  # the smallest and largest Z, once a geometry with Z was written
    _writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        bbox = table.column("bbox")
        self.bbox = [min(self.bbox[0], pc.min(pc.struct_field(bbox, "xmin")).as_py()),
                     min(self.bbox[1], pc.min(pc.struct_field(bbox, "ymin")).as_py()),
                     max(self.bbox[2], pc.max(pc.struct_field(bbox, "xmax")).as_py()),
                     max(self.bbox[3], pc.max(pc.struct_field(bbox, "ymax")).as_py())]
        mm = pc.min_max(table.column(self.time_column)).as_py()
        if mm["min"] is not None:
            self.time_min = mm["min"] if self.time_min is None else min(self.time_min, mm["min"])
            self.time_max = mm["max"] if self.time_max is None else max(self.time_max, mm["max"])
        types, has_z = wkb_types(table.column(self.geometry_column))
        self.types.update(types)
        zs = z_range(table.column(self.geometry_column), has_z)
        if zs is not None:
            self.z = [zs[0], zs[1]] if self.z is None else [min(self.z[0], zs[0]), max(self.z[1], zs[1])]
        import pyarrow.parquet as pq

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(str(self.path), self.schema, **self.options())
        # Row groups follow the batches, which the fixed CSV block size and the inputs decide: the same inputs give
        # the same row groups on every machine. Nothing is held back, so memory stays flat.
        self._writer.write_table(table.cast(self.schema), row_group_size=ROW_GROUP)

    def options(self) -> dict[str, Any]:
        """The fixed writer settings, with dictionaries only for repetitive text and no min/max statistics for WKB
        (meaningless there; the bbox column carries the statistics readers use)."""
        import pyarrow as pa

        strings = [f.name for f in self.schema if pa.types.is_string(f.type) and f.name != self.id_column]
        stats = [f.name for f in self.schema if f.name not in (self.geometry_column, "bbox")]
        stats += ["bbox.xmin", "bbox.ymin", "bbox.xmax", "bbox.ymax"]
        return {**WRITER, "use_dictionary": strings, "write_statistics": stats}

    def close(self) -> dict[str, Any]:
        """Finish the file; its runtime metadata (bbox, temporal extent, rows, geometry types)."""
        meta = {"partition": self.key, "rows": self.rows, "bbox": [round(v, 9) for v in self.bbox],
                "temporal": [iso_utc(self.time_min) if self.time_min else None,
                             iso_utc(self.time_max) if self.time_max else None],
                "geometry_types": sorted(self.types)}
        if self.z is not None:
            meta["z"] = [round(v, 9) for v in self.z]
        if self._writer is not None:
            self._writer.add_key_value_metadata({"geo": geo_metadata(self.geometry_column, meta)})
            self._writer.close()
            self._writer = None
        return meta


def geo_metadata(column: str, meta: dict[str, Any]) -> str:
    """The GeoParquet 1.1 ``geo`` key: CRS omitted means OGC:CRS84, the contract's only CRS for now. A file with Z
    gets a 3-D bbox (xmin, ymin, zmin, xmax, ymax, zmax), as the spec allows; the covering column stays 2-D."""
    bbox = meta["bbox"]
    if meta.get("z"):
        bbox = [bbox[0], bbox[1], meta["z"][0], bbox[2], bbox[3], meta["z"][1]]
    doc = {
        "version": GEOPARQUET_VERSION,
        "primary_column": column,
        "columns": {column: {
            "encoding": "WKB",
            "geometry_types": meta["geometry_types"],
            "bbox": bbox,
            "covering": {"bbox": {"xmin": ["bbox", "xmin"], "ymin": ["bbox", "ymin"], "xmax": ["bbox", "xmax"],
                                  "ymax": ["bbox", "ymax"]}},
        }},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def store_artifact(store: Store, path: Path) -> tuple[str, int]:
    stored = store.put_file(path)
    return stored.digest, stored.size


def drop_rows(path: Path, drop: np.ndarray, schema: pa.Schema, geometry_column: str, time_column: str,
              key: str, id_column: str = "") -> dict[str, Any]:
    """Rewrite a partition file without the rows flagged in ``drop`` (duplicates found at the end of a chunk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if drop.all():
        path.unlink()
        return {"partition": key, "rows": 0, "bbox": [], "temporal": [None, None], "geometry_types": []}
    tmp = path.with_suffix(".rewrite.parquet")
    writer = PartitionWriter(key, tmp, schema, geometry_column, time_column, id_column)
    start = 0
    # Row group by row group, so that rewriting a partition of any size takes the memory of one group.
    source = pq.ParquetFile(path)
    for group in range(source.num_row_groups):
        table = source.read_row_group(group).replace_schema_metadata(None)
        keep = ~drop[start: start + table.num_rows]
        start += table.num_rows
        writer.write(table.filter(pa.array(keep)))
    source.close()
    meta = writer.close()
    tmp.replace(path)
    return meta
