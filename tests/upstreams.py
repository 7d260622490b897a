"""A governed repository around a dataset of the test's own (a contract, a pipeline, upstream files and a plan),
for the tests of real-shaped upstreams: epoch times, 3-D points, Feature ids, files that span chunks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import Runner

TERMS = "Terms: public domain test data.\n"

DATASET = """\
slug: {slug}
title: Earthquakes (test)
description: Earthquake events, one point per event.
publisher: {{name: Test upstream}}
license: {{spdx: CC0-1.0}}
policy: {{label: public, obligations: []}}
schema:
  id_column: event_id
  columns:
{columns}
  geometry: {{column: geometry, types: [{types}]}}
time_axes: {{event_time: {{column: time}}}}
partitioning: {{mode: {partitioning}, axis: event_time, timezone: UTC}}
extent: {{bbox: [-180, -90, 180, 90], crs: OGC:CRS84}}
cadence: P1D
qa: {{min_rows: 1, max_invalid_ratio: {max_invalid}}}
promotion: {{approvals: [{{role: steward, min: 1}}]}}
"""

COLUMNS = """\
    - {name: event_id, type: string, required: true}
    - {name: time, type: timestamp, required: true}
    - {name: mag, type: float64}
    - {name: place, type: string}
"""

PIPELINE = """\
connector:
  type: file
  params: {{root: upstream/{slug}, pattern: "{pattern}", terms: upstream/{slug}/TERMS.txt}}
source:
{source}
transforms: {transforms}
"""


def dataset_yaml(slug: str = "quakes", *, columns: str = COLUMNS, types: str = "Point Z",
                 partitioning: str = "monthly", max_invalid: float = 0.5) -> str:
    return DATASET.format(slug=slug, columns=columns.rstrip("\n"), types=types, partitioning=partitioning,
                          max_invalid=max_invalid)


def pipeline_yaml(slug: str = "quakes", *, pattern: str = "{year}-{month}/*.geojson",
                  source: str = "  format: geojson", transforms: str = "[]") -> str:
    return PIPELINE.format(slug=slug, pattern=pattern, source=source.rstrip("\n"), transforms=transforms)


def plan_yaml(slug: str, start: datetime, end: datetime, mode: str, parallelism: int = 1) -> str:
    from kfm_gitops.plan import render_template

    return render_template(slug=slug, path=f"plans/{slug}/backfill-20240101-abcdef.yml", reason="Real upstream test",
                           requested_by="ops-ana", reviewers=["steward-kim"], time_axis="event_time", start=start,
                           end=end, mode=mode, parallelism=parallelism, timezone="UTC",
                           terms=f"upstream/{slug}/TERMS.txt", label="public", obligations=[], prior="")


def plan_path(slug: str) -> str:
    return f"plans/{slug}/backfill-20240101-abcdef.yml"


JULY = (datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 8, 1, tzinfo=UTC))


def make_repository(root: Path, slug: str, dataset: str, pipeline: str, upstream: dict[str, bytes],
                    window: tuple[datetime, datetime] = JULY, mode: str = "monthly") -> str:
    """A governed repository at ``root`` (committed), with ``upstream`` files below upstream/<slug>/; returns the
    plan's path."""
    from kfm_gitops.repository import init

    files = {f"datasets/{slug}/dataset.yaml": dataset.encode(), f"datasets/{slug}/pipeline.yaml": pipeline.encode(),
             f"upstream/{slug}/TERMS.txt": TERMS.encode(),
             plan_path(slug): plan_yaml(slug, window[0], window[1], mode).encode(),
             **{f"upstream/{slug}/{name}": data for name, data in upstream.items()}}
    init(root, files)
    return plan_path(slug)


def feature(fid: str | int | None, coords: list[float], **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Feature", "geometry": {"type": "Point", "coordinates": coords},
                           "properties": props}
    if fid is not None:
        out["id"] = fid
    return out


def collection(features: list[dict[str, Any]]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def run_folders(root: Path, slug: str) -> list[Path]:
    return sorted(p for p in (root / "releases" / slug / "runs").iterdir() if (p / "qa.json").exists())


def backfill(kfm: Runner, plan: str) -> tuple[int, str]:
    r = kfm("backfill", "run", plan, "--yes")
    return r.code, r.out + r.err


def version_partitions(root: Path, slug: str) -> dict[str, Path]:
    """The newest version's partitions, as paths in the local store."""
    from kfm_gitops.store import Store

    versions = sorted((root / "releases" / slug).glob("*/promotion-manifest.json"))
    assert len(versions) == 1, versions
    manifest = json.loads(versions[0].read_text())
    store = Store(str(root / ".kfm/objects"))
    out = {}
    for p in manifest["partitions"]:
        path = store.local_path(p["processed"])
        assert path is not None
        out[p["partition"]] = path
    return out


def backfilled(tmp_path: Path, monkeypatch: Any, kfm: Runner, dataset: str, pipeline: str,
               upstream: dict[str, bytes], **plan: Any) -> tuple[Path, int, str]:
    """``make_repository`` in tmp_path/repo, as the working directory, and its plan backfilled: the root, the exit
    code and the output."""
    root = tmp_path / "repo"
    path = make_repository(root, "quakes", dataset, pipeline, upstream, **plan)
    monkeypatch.chdir(root)
    code, out = backfill(kfm, path)
    return root, code, out
