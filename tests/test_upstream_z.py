"""3-D geometries end to end: Z kept from GeoJSON, WKB and x/y/z columns into GeoParquet (geometry types with " Z",
a 3-D bbox), refused at QA with a row count when the contract declares 2-D, and flattened only by an explicit
force_2d transform whose evidence is in the receipt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from upstreams import (
    backfilled,
    collection,
    dataset_yaml,
    feature,
    make_repository,
    pipeline_yaml,
    run_folders,
    version_partitions,
)

from conftest import Runner

QUAKES = [feature(None, [-117.5, 35.7, 8.2], event_id="us7000a1", time="2023-07-01T10:00:00Z", mag=2.1,
                  place="near Ridgecrest"),
          feature(None, [-155.3, 19.4, 31.0], event_id="us7000a2", time="2023-07-02T11:30:00.123456Z", mag=4.4,
                  place=None),
          feature(None, [142.1, 38.3, -1.5], event_id="us7000a3", time="2023-07-03T00:00:00Z", mag=None,
                  place="off Honshu")]


def month(features: list[dict[str, object]]) -> dict[str, bytes]:
    return {"2023-07/week.geojson": collection(features)}


def validator_passes(path: Path) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "geoparquet-validator"), "check", str(path), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {o["status"] for o in json.loads(done.stdout)["outcomes"]} <= {"pass", "skip"}


def test_z_is_kept_end_to_end(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    root, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(), pipeline_yaml(), month(QUAKES))
    assert code == 0, out
    path = version_partitions(root, "quakes")["2023-07"]
    import geopandas
    import pyarrow.parquet as pq

    df = geopandas.read_parquet(path)
    assert df.has_z.all()
    assert sorted(df.geometry.z.tolist()) == [-1.5, 8.2, 31.0]
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])["columns"]["geometry"]
    assert geo["geometry_types"] == ["Point Z"]
    assert geo["bbox"] == [-155.3, 19.4, -1.5, 142.1, 38.3, 31.0]  # xmin, ymin, zmin, xmax, ymax, zmax
    assert set(geo["covering"]["bbox"]) == {"xmin", "ymin", "xmax", "ymax"}
    validator_passes(path)


def test_a_2d_contract_refuses_z_with_a_count_never_flattens(tmp_path: Path, kfm: Runner,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(types="Point"), pipeline_yaml(),
                                 month(QUAKES))
    assert code == 1
    assert ("top reasons: geometry: Point Z; the contract declares Point (declare Point Z, or flatten with the "
            "force_2d transform) (3 rows)") in out
    folder = run_folders(root, "quakes")[-1]
    q = json.loads((folder / "quarantine.json").read_text())
    assert q["whole_chunk"] is True and q["counts"] == {"GEOMETRY_INVALID": 3}
    assert {(r["column"], r["reason"]) for r in q["records"]} == {("geometry", "GEOMETRY_INVALID")}
    qa = json.loads((folder / "qa.json").read_text())
    check = next(c for c in qa["checks"] if c["reason"] == "GEOMETRY_INVALID")
    assert check["columns"] == {"geometry": 3}
    assert not list((root / "releases" / "quakes").glob("*/promotion-manifest.json"))


def test_force_2d_flattens_with_evidence_in_the_receipt(tmp_path: Path, kfm: Runner,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(types="Point"),
                                 pipeline_yaml(transforms="[{op: force_2d}]"), month(QUAKES))
    assert code == 0, out
    import geopandas

    df = geopandas.read_parquet(version_partitions(root, "quakes")["2023-07"])
    assert not df.has_z.any() and len(df) == 3
    receipt = json.loads((run_folders(root, "quakes")[-1] / "receipt.json").read_text())
    assert receipt["transforms_applied"] == [{"op": "force_2d", "evidence": {"rows_flattened": 3}}]


XYZ = """\
  format: csv
  geometry: {from: xy, x: longitude, y: latitude, z: depth}
"""


def test_a_z_column_gives_3d_points_and_a_row_without_z_is_named(tmp_path: Path, kfm: Runner,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    csv = ("event_id,time,mag,place,longitude,latitude,depth\n"
           "a1,2023-07-01T00:00:00Z,1.5,x,-117.5,35.7,8.25\n"
           "a2,2023-07-02T00:00:00Z,2.5,y,-118.5,34.7,\n"
           "a3,2023-07-03T00:00:00Z,3.5,z,-119.5,33.7,-0.5\n")
    root, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(),
                                 pipeline_yaml(pattern="{year}-{month}/*.csv", source=XYZ),
                                 {"2023-07/events.csv": csv.encode()})
    assert code == 0, out
    import geopandas

    df = geopandas.read_parquet(version_partitions(root, "quakes")["2023-07"])
    assert df["event_id"].tolist() == ["a1", "a3"] and df.has_z.all()
    assert df.geometry.z.tolist() == [8.25, -0.5]
    q = json.loads((run_folders(root, "quakes")[-1] / "quarantine.json").read_text())
    assert [(r["id"], r["row"], r["column"], r["detail"]) for r in q["records"]] == [
        ("a2", 2, "geometry", "Point; the contract declares Point Z (a 2-D geometry: declare Point too)")]


def test_wkb_keeps_z_and_refuses_m(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import shapely

    from kfm_gitops.geometry import parsed

    wkt = ["POINT Z (1 2 3)", "LINESTRING Z (0 0 1, 1 1 2)", "POINT M (1 2 3)", "POINT ZM (1 2 3 4)",
           "LINESTRING Z (0 0 1, 1 1 NaN)", "POINT (1 2)"]
    wkb = [shapely.to_wkb(shapely.from_wkt(w), flavor="iso", output_dimension=4) for w in wkt]
    g = parsed(wkb, "wkb", ["Point Z", "LineString Z"], None, False, "geometry")
    found = {p.detail: np.nonzero(p.mask)[0].tolist() for p in g.problems if p.mask.any()}
    assert found == {"has M coordinates, which kfm does not publish": [2, 3],
                     "a Z coordinate is missing or not a number": [4],
                     "Point; the contract declares Point Z, LineString Z (a 2-D geometry: declare Point too)": [5]}
    back = shapely.from_wkb(np.array(pa.array(g.wkb).to_pylist(), dtype=object))
    assert shapely.has_z(back[:2]).all() and shapely.get_coordinates(back[1], include_z=True).tolist() == [
        [0, 0, 1], [1, 1, 2]]


@pytest.mark.parametrize(("source", "transforms", "types", "expected"), [
    (XYZ, "[]", "Point", "source.geometry.z gives points a Z, but the contract declares Point"),
    ("  format: csv\n  geometry: {from: xy, x: longitude, y: latitude}\n", "[]", "Point Z",
     "the contract declares Point Z only, but source.geometry names no z column"),
    ("  format: geojson", "[{op: force_2d}]", "Point Z", "force_2d drops every Z, but the contract declares Point Z"),
    ("  format: csv\n  geometry: {from: wkt, column: wkt, z: depth}\n", "[]", "Point Z",
     "source.geometry from wkt takes Z from the geometry itself"),
])
def test_dataset_validate_says_where_z_cannot_go(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch,
                                                 source: str, transforms: str, types: str, expected: str) -> None:
    root = tmp_path / "repo"
    make_repository(root, "quakes", dataset_yaml(types=types), pipeline_yaml(source=source, transforms=transforms),
                    {})
    monkeypatch.chdir(root)
    r = kfm("dataset", "validate", "quakes")
    assert r.code == 1
    assert expected in r.out
    line = next(ln for ln in r.out.splitlines() if expected in ln)
    assert line.startswith("datasets/quakes/pipeline.yaml:"), line


def test_point_wkb_matches_shapely_for_2d_3d_and_mixed() -> None:
    import numpy as np
    import shapely

    from kfm_gitops.geometry import point_wkb

    x, y = np.array([1.5, -2.25, 3.0]), np.array([4.0, 5.5, -6.125])
    for z in (None, np.array([7.0, -8.5, 0.0]), np.array([7.0, np.nan, 0.0])):
        built = point_wkb(x, y, z).to_pylist()
        coords = [[a, b] if z is None or np.isnan(c) else [a, b, c]
                  for a, b, c in zip(x, y, z if z is not None else [np.nan] * 3, strict=True)]
        expected = [shapely.to_wkb(shapely.points(c), byte_order=1, flavor="iso", output_dimension=3) for c in coords]
        assert built == expected
