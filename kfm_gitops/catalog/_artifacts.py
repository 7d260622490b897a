"""Runtime metadata of PROCESSED artifacts, from their GeoParquet footers in the store: the bounding box the writer
recorded in ``geo``, the time span of the partitioning axis from the column statistics, the row count and size.
Only footers are read, never the rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from kfm_gitops.catalog._inputs import MANIFEST, ArtifactMeta, VersionDocs
from kfm_gitops.errors import KfmError
from kfm_gitops.findings import Finding
from kfm_gitops.periods import iso_exact
from kfm_gitops.store import Store, StoreError


class ArtifactError(KfmError):
    """An artifact whose footer lacks what the catalogs need."""

    code = "ARTIFACT_UNREADABLE"


def time_columns(dataset: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns of the partitioning axis: one, or a valid_time interval's start and end."""
    axis = dataset["partitioning"]["axis"]
    spec = dataset["time_axes"][axis]
    return (spec["start_column"], spec["end_column"]) if axis == "valid_time" else (spec["column"],)


UNITS = {"milliseconds": 1000, "microseconds": 1, "nanoseconds": 0.001}  # to microseconds
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(raw: int, logical: Mapping[str, Any]) -> datetime:
    """A time statistic from its stored integer (reading it as a Python value would import pandas)."""
    if logical.get("Type") == "Timestamp" and logical.get("timeUnit") in UNITS:
        return EPOCH + timedelta(microseconds=int(raw * UNITS[str(logical["timeUnit"])]))
    if logical.get("Type") == "Date":
        return EPOCH + timedelta(days=int(raw))
    raise ArtifactError(f"a time column stored as {logical.get('Type', 'no logical type')}")


def footer_meta(handle: IO[bytes] | str, digest: str, size: int, columns: Sequence[str]) -> ArtifactMeta:
    """An artifact's metadata from its footer (``handle`` an open file or a path)."""
    import json

    import pyarrow.parquet as pq

    md = pq.read_metadata(handle)
    geo = json.loads((md.metadata or {}).get(b"geo", b"{}"))
    bbox = geo.get("columns", {}).get(geo.get("primary_column"), {}).get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise ArtifactError("no bounding box in its GeoParquet metadata")
    leaves = {md.schema.column(i).path: i for i in range(md.num_columns)}
    low: datetime | None = None
    high: datetime | None = None
    for name in columns:
        if name not in leaves:
            raise ArtifactError(f"no column {name}")
        logical = json.loads(md.schema.column(leaves[name]).logical_type.to_json())
        for g in range(md.num_row_groups):
            stats = md.row_group(g).column(leaves[name]).statistics
            if stats is None or not stats.has_min_max:
                continue
            lo, hi = _instant(stats.min_raw, logical), _instant(stats.max_raw, logical)
            low = lo if low is None or lo < low else low
            high = hi if high is None or hi > high else high
    if low is None or high is None:
        raise ArtifactError(f"no time statistics for {', '.join(columns)}")
    return ArtifactMeta(digest, size, md.num_rows, (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
                        iso_exact(low), iso_exact(high))


def read_artifact(store: Store, digest: str, columns: Sequence[str]) -> ArtifactMeta:
    """Raises StoreError (missing, unreadable) or ArtifactError (not a GeoParquet file kfm wrote)."""
    import pyarrow as pa

    try:
        size = store.size(digest)
        local = store.local_path(digest)
        if local is not None:
            return footer_meta(str(local), digest, size, columns)
        with store.open(digest) as fh:
            return footer_meta(fh, digest, size, columns)
    except FileNotFoundError as exc:
        raise StoreError("OBJECT_MISSING", f"{digest} is not in the store {store.url}",
                         hint="`kfm store pull` copies a dataset's objects from the shared store") from exc
    except (pa.ArrowException, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"not a readable GeoParquet file ({type(exc).__name__})") from exc


def read_artifacts(root: Path, store: Store, docs: VersionDocs, dataset: Mapping[str, Any]
                   ) -> dict[str, ArtifactMeta] | list[Finding]:
    """Runtime metadata of every partition's artifact; a finding at the manifest's pointer for each one missing
    from the store or unreadable."""
    from kfm_gitops.catalog._json import Locator, Problem

    columns = time_columns(dataset)
    out: dict[str, ArtifactMeta] = {}
    problems = []
    for i, p in enumerate(docs.manifest["partitions"]):
        digest = str(p["processed"])
        try:
            out[digest] = read_artifact(store, digest, columns)
        except StoreError as exc:
            code = "ARTIFACT_MISSING" if exc.code == "OBJECT_MISSING" else exc.code
            problems.append(Problem(MANIFEST, f"/partitions/{i}/processed", code,
                                    f"the artifact of partition {p['partition']}: {exc.message}", exc.hint))
        except ArtifactError as exc:
            problems.append(Problem(MANIFEST, f"/partitions/{i}/processed", "ARTIFACT_UNREADABLE",
                                    f"the artifact of partition {p['partition']}: {exc}"))
    if problems:
        text = (root / docs.folder / MANIFEST).read_text(encoding="utf-8")
        return Locator(docs.folder, {MANIFEST: text}).findings(problems)
    return out
