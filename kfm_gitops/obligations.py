"""Obligations, applied in WORK before anything reaches PROCESSED: remove attributes, generalise geometry, suppress
small groups; and the record-only ones (attribution, notice, no asset links), carried into the metadata.

Each application is recorded with evidence that it holds, computed from the output itself (columns absent, the
coordinate precision after, the smallest group count), so that a gate can check it from the artifact alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kfm_gitops.findings import Finding
from kfm_gitops.geometry import bbox_array, type_name
from kfm_gitops.policy import dataset_columns, grid_cell, normalized, obligation_problems

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa



def max_decimals(coords: np.ndarray) -> int:
    """The fewest decimals that write every coordinate exactly (up to 15)."""
    import numpy as np

    if coords.size == 0:
        return 0
    for d in range(16):
        if np.all(np.round(coords, d) == coords):
            return d
    return 15


@dataclass(slots=True)
class Obligations:
    """The obligations of one run (the plan's, which include the contract's), ready to apply batch by batch."""

    items: list[dict[str, Any]]
    geometry_column: str
    protected: tuple[str, ...]  # columns that cannot be removed (id, time axes)
    removed: list[str] = field(default_factory=list)
    method: str | None = None
    min_count: tuple[int, list[str]] | None = None
    decimals_seen: int = 0
    suppressed: int = 0
    smallest_group: int | None = None
    off_grid: int = 0  # output coordinates not on a grid cell's centre (grid_aggregation)
    types_seen: set[str] = field(default_factory=set)  # output geometry type names

    @classmethod
    def for_dataset(cls, obligations: list[dict[str, Any]], dataset: dict[str, Any]
                    ) -> tuple[Obligations, list[Finding]]:
        """``build`` for a dataset contract: its declared columns, geometry column, and the id and time-axis
        columns no obligation may remove."""
        columns, protected, types, decimals = dataset_columns(dataset)
        return cls.build(obligations, columns, dataset["schema"]["geometry"]["column"], protected, types, decimals)

    @classmethod
    def build(cls, obligations: list[dict[str, Any]], columns: list[str], geometry_column: str,
              protected: tuple[str, ...], geometry_types: tuple[str, ...] = (), max_decimals: int | None = None
              ) -> tuple[Obligations, list[Finding]]:
        items = [normalized(o) for o in obligations]
        out = cls(items, geometry_column, protected)
        findings = obligation_problems(items, columns, protected, geometry_types, max_decimals)
        for ob in items:
            params = ob.get("params", {})
            if ob["type"] == "remove_attributes":
                for name in params.get("fields", []):
                    if name in columns and name not in protected and name not in out.removed:
                        out.removed.append(name)
            elif ob["type"] == "generalize_geometry":
                out.method = str(params.get("method", ""))
            elif ob["type"] == "min_count_threshold":
                out.min_count = (int(params.get("min_count", 1)), list(params.get("group_by", [])))
        return out, findings

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([f for f in schema if f.name not in self.removed])

    def apply(self, table: pa.Table) -> pa.Table:
        """Remove attributes and generalise geometry (min_count works on whole partitions: see ``suppress``)."""
        if self.removed:
            table = table.drop_columns([c for c in self.removed if c in table.column_names])
        if self.method and table.num_rows:
            table = self._generalise(table)
        return table

    def _generalise(self, table: pa.Table) -> pa.Table:
        """Rewrite the geometries and their bboxes. Rounding keeps Z (it generalises location, not depth);
        centroid_only, bounding_box_only and grid_aggregation give 2-D results, as the evidence's types show."""
        import numpy as np
        import pyarrow as pa
        import shapely

        col = table.column(self.geometry_column).combine_chunks()
        geoms = shapely.from_wkb(np.array(col.to_pylist(), dtype=object))
        method = self.method or ""
        if method == "centroid_only":
            geoms = shapely.centroid(geoms)
        elif method == "bounding_box_only":
            geoms = shapely.envelope(geoms)
        elif method.startswith("round_"):
            digits = int(method.split("_")[1])
            coords = shapely.get_coordinates(geoms, include_z=True)
            coords[:, :2] = np.round(coords[:, :2], digits)
            geoms = shapely.set_coordinates(geoms.copy(), coords)
        elif method.startswith("grid_aggregation_"):
            cell = grid_cell(method)
            centres = shapely.get_coordinates(shapely.centroid(geoms))
            snapped = np.floor(centres / cell) * cell + cell / 2
            geoms = shapely.points(snapped)
        coords = shapely.get_coordinates(geoms)
        self.decimals_seen = max(self.decimals_seen, max_decimals(coords))
        self.types_seen.update(type_name(int(t), bool(z)) for t, z in set(zip(
            shapely.get_type_id(geoms).tolist(), shapely.has_z(geoms).tolist(), strict=True)))
        if method.startswith("grid_aggregation_"):
            cell = grid_cell(method)
            steps = (coords - cell / 2) / cell
            self.off_grid += int((~np.isclose(steps, np.round(steps), rtol=0, atol=1e-6)).any(axis=1).sum())
        wkb = pa.array(shapely.to_wkb(geoms, output_dimension=3, byte_order=1, flavor="iso"), pa.binary())
        table = table.set_column(table.column_names.index(self.geometry_column), self.geometry_column, wkb)
        return table.set_column(table.column_names.index("bbox"), "bbox", bbox_array(list(shapely.bounds(geoms).T)))

    def suppress(self, table: pa.Table) -> np.ndarray:
        """Rows of a whole partition in groups smaller than min_count (True: drop)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.min_count is None or table.num_rows == 0:
            return np.zeros(table.num_rows, dtype=bool)
        minimum, group_by = self.min_count
        if not group_by:
            counts = np.full(table.num_rows, table.num_rows)
        else:
            keyed = table.select(group_by).append_column("__row", pa.array(np.arange(table.num_rows)))
            grouped = keyed.group_by(group_by).aggregate([("__row", "count")])
            joined = keyed.join(grouped, keys=group_by, join_type="left outer").sort_by("__row")
            counts = np.asarray(joined.column("__row_count").to_numpy(), dtype=np.int64)
        drop = counts < minimum
        kept = counts[~drop]
        self.suppressed += int(drop.sum())
        if len(kept):
            smallest = int(kept.min())
            self.smallest_group = smallest if self.smallest_group is None else min(self.smallest_group, smallest)
        _ = pc
        return np.asarray(drop, dtype=bool)

    def evidence(self, output_columns: list[str]) -> list[dict[str, Any]]:
        """What was applied, each with evidence a reader can check against the output."""
        out = []
        for ob in self.items:
            entry: dict[str, Any] = {"type": ob["type"], "params": ob.get("params", {})}
            if ob["type"] == "remove_attributes":
                fields = list(ob.get("params", {}).get("fields", []))
                entry["evidence"] = {"absent": sorted(f for f in fields if f not in output_columns)}
            elif ob["type"] == "generalize_geometry":
                evidence: dict[str, Any] = {"max_decimals": self.decimals_seen}
                method = str(ob.get("params", {}).get("method", ""))
                if method.startswith("grid_aggregation_"):
                    evidence.update(cell_degrees=grid_cell(method), off_grid=self.off_grid)
                elif method in ("centroid_only", "bounding_box_only"):
                    evidence["geometry_types"] = sorted(self.types_seen)
                entry["evidence"] = evidence
            elif ob["type"] == "min_count_threshold":
                entry["evidence"] = {"smallest_group": self.smallest_group, "suppressed_rows": self.suppressed}
            else:
                entry["evidence"] = {"recorded": True}
            if ob.get("message"):
                entry["message"] = ob["message"]
            out.append(entry)
        return out
