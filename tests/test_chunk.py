"""WORK -> PROCESSED for one chunk: the example's chunks become valid GeoParquet, the bad batch lands in quarantine
with the right reasons, the output is byte-identical across runs, and bad inputs never make a partial artifact."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Runner, git
from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM
from kfm_gitops.sources import SourceError
from kfm_gitops.store import Store

RUNS = "releases/ks_storm_reports/runs"


def run_folder(root: Path, key: str) -> Path:
    folders = sorted(p for p in (root / RUNS).iterdir() if f".{key}." in p.name
                     and (p / "qa.json").exists())
    assert folders, f"no processing run for {key}"
    return folders[-1]


def partitions(root: Path, key: str) -> list[dict[str, Any]]:
    receipt = json.loads((run_folder(root, key) / "receipt.json").read_text())
    return [o for o in receipt["outputs"] if o.get("role", "").startswith("partition:")]


def process(kfm: Runner, key: str) -> str:
    r = kfm("process", FIRST_PLAN, "--chunk", key)
    assert r.code in (0, 1), r.err
    return r.out


@pytest.fixture
def acquired(governed: Path, kfm: Runner) -> Path:
    shutil.copytree(governed / REDELIVERY / "2023-03", governed / UPSTREAM / "2023-03")
    assert kfm("acquire", FIRST_PLAN).code == 0
    return governed


def test_a_chunk_becomes_valid_geoparquet(acquired: Path, kfm: Runner) -> None:
    out = process(kfm, "2023-01")
    assert out.splitlines()[0] == "chunk 2023-01: 120 rows, 120 accepted, 0 quarantined"
    parts = partitions(acquired, "2023-01")
    assert [p["role"] for p in parts] == ["partition:2023-01"]
    store = Store(str(acquired / ".kfm/objects"))
    path = store.local_path(parts[0]["digest"])
    assert path is not None
    done = subprocess.run([str(Path(sys.executable).parent / "geoparquet-validator"), "check", str(path), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = json.loads(done.stdout)["outcomes"]
    assert {o["status"] for o in outcomes} <= {"pass", "skip"}
    assert sum(o["status"] == "pass" for o in outcomes) >= 10
    import geopandas

    df = geopandas.read_parquet(path)
    assert len(df) == 120
    assert str(df.crs) == "OGC:CRS84"
    assert set(df.geometry.geom_type) == {"Point"}
    assert df["report_id"].is_unique
    assert str(df["event_time"].dtype) == "datetime64[us, UTC]"
    import pyarrow.parquet as pq

    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Point"]
    assert col["bbox"] == [float(df.geometry.x.min()), float(df.geometry.y.min()),
                           float(df.geometry.x.max()), float(df.geometry.y.max())]
    assert "covering" in col
    assert pq.read_metadata(path).row_group(0).column(0).compression == "ZSTD"


def test_the_bad_batch_is_quarantined_with_its_reasons(acquired: Path, kfm: Runner) -> None:
    out = process(kfm, "2023-03")
    assert out.splitlines()[0] == "chunk 2023-03: 129 rows, 120 accepted, 9 quarantined"
    folder = run_folder(acquired, "2023-03")
    q = json.loads((folder / "quarantine.json").read_text())
    from kfm_gitops.schema import validate_data

    assert validate_data(q, "quarantine") == []
    assert validate_data(json.loads((folder / "qa.json").read_text()), "qa") == []
    assert q["counts"] == {"DUPLICATE_ID": 1, "GEOMETRY_INVALID": 2, "GEOMETRY_OVERPRECISE": 1, "OUT_OF_EXTENT": 1,
                           "OUT_OF_WINDOW": 1, "SCHEMA_INVALID": 3}
    by_id = {r["id"]: r["reason"] for r in q["records"]}
    assert by_id == {
        "KS-202303-9001": "SCHEMA_INVALID", "KS-202303-9002": "SCHEMA_INVALID", "KS-202303-9003": "GEOMETRY_INVALID",
        "KS-202303-9004": "GEOMETRY_INVALID", "KS-202303-9005": "OUT_OF_EXTENT", "KS-202303-9006": "OUT_OF_WINDOW",
        "KS-202303-9007": "SCHEMA_INVALID", "KS-202303-0001": "DUPLICATE_ID", "KS-202303-9009": "GEOMETRY_OVERPRECISE",
    }
    assert q["whole_chunk"] is False
    # Ids, hashes and reason codes only: no raw attribute values or coordinates in the committed record.
    text = (folder / "quarantine.json").read_text()
    assert "heavy" not in text and "-99.321234567" not in text and "Jasper" not in text
    # The rows themselves are in the store.
    import pyarrow.parquet as pq

    store = Store(str(acquired / ".kfm/objects"))
    rows_path = store.local_path(q["rows_object"])
    assert rows_path is not None
    rows = pq.read_table(rows_path).to_pylist()
    assert any(r["magnitude"] == "heavy" for r in rows)
    qa = json.loads((folder / "qa.json").read_text())
    assert qa["rows"] == {"total": 129, "accepted": 120, "quarantined": 9, "other_chunks": 0}
    assert qa["status"] == "pass"
    # Nothing quarantined reaches PROCESSED.
    import geopandas

    path = store.local_path(partitions(acquired, "2023-03")[0]["digest"])
    df = geopandas.read_parquet(path)
    assert not set(by_id) - {"KS-202303-0001"} & set(df["report_id"])
    assert list(df["report_id"]).count("KS-202303-0001") == 1


def test_processing_is_byte_identical_across_directories(tmp_path: Path, kfm: Runner,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from kfm_gitops.example import repository_files
    from kfm_gitops.repository import init

    digests = []
    for name in ("a", "b"):
        root = tmp_path / name
        init(root, repository_files())
        shutil.copytree(root / REDELIVERY / "2023-03", root / UPSTREAM / "2023-03")
        monkeypatch.chdir(root)
        assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-03", "--chunk", "2023-02").code == 0
        process(kfm, "2023-03")
        process(kfm, "2023-02")
        digests.append([p["digest"] for k in ("2023-02", "2023-03") for p in partitions(root, k)]
                       + [json.loads((run_folder(root, "2023-03") / "quarantine.json").read_text())["rows_object"]])
        qa = (run_folder(root, "2023-03") / "qa.json").read_bytes()
        digests[-1].append(qa.decode())
    assert digests[0] == digests[1]


def rewrite_month(root: Path, month: str, transform: Any) -> None:
    folder = root / UPSTREAM / month
    for f in sorted(folder.glob("*.csv")):
        f.write_text(transform(f.read_text()))
    git(root, "add", "-A")
    git(root, "commit", "-qm", f"change {month}")


def test_a_chunk_over_its_threshold_is_quarantined_whole(governed: Path, kfm: Runner) -> None:
    # Every row of January loses its offset: all SCHEMA_INVALID, far over max_invalid_ratio.
    rewrite_month(governed, "2023-01", lambda t: t.replace("Z,", ","))
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    r = kfm("process", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 1
    assert "chunk 2023-01 quarantined whole: 120 of 120 rows (100.0%) failed checks" in r.out
    folder = run_folder(governed, "2023-01")
    q = json.loads((folder / "quarantine.json").read_text())
    assert q["whole_chunk"] is True and q["reasons"] == ["QA_THRESHOLD"]
    assert q["counts"] == {"SCHEMA_INVALID": 120}
    assert partitions(governed, "2023-01") == []
    receipt = json.loads((folder / "receipt.json").read_text())
    assert receipt["validation"]["status"] == "fail"


def test_a_missing_column_is_routed_not_crashed(governed: Path, kfm: Runner) -> None:
    def drop_county(text: str) -> str:
        lines = text.splitlines()
        return "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 2) for line in lines) + "\n"

    rewrite_month(governed, "2023-02", drop_county)
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-02").code == 0
    r = kfm("process", FIRST_PLAN, "--chunk", "2023-02")
    assert r.code == 1  # county is required: every row fails, so the chunk is quarantined whole
    assert "quarantined 120 x SCHEMA_INVALID" in r.out


def test_an_empty_chunk_makes_no_partition(governed: Path, kfm: Runner) -> None:
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-03").code == 0
    r = kfm("process", FIRST_PLAN, "--chunk", "2023-03")
    assert r.out.splitlines()[0] == "chunk 2023-03: 0 rows, 0 accepted, 0 quarantined"
    assert partitions(governed, "2023-03") == []


def test_processing_needs_an_acquisition(governed: Path, kfm: Runner) -> None:
    r = kfm("process", FIRST_PLAN, "--chunk", "2023-04")
    assert r.code == 1
    assert "chunk 2023-04 of ks_storm_reports has no acquisition" in r.err


def test_other_formats(governed: Path, kfm: Runner) -> None:
    """GeoJSON, newline-delimited GeoJSON and Parquet (WKB geometry) give the same artifact, from the same rows."""
    from datetime import UTC

    from kfm_gitops.chunk import process_chunk
    from kfm_gitops.config import Vocabularies
    from kfm_gitops.dataset import load_contract
    from kfm_gitops.periods import period_of_key

    contract = load_contract(governed, "ks_storm_reports", Vocabularies())
    assert not isinstance(contract, list)
    import csv

    text = (governed / UPSTREAM / "2023-02/reports-2023-02-01.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    features: list[dict[str, Any]] = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [
                                           float(r.pop("longitude")),
                                           float(r.pop("latitude"))]},
                 "properties": {k: (v or None) for k, v in r.items()}} for r in rows]
    store = Store(str(governed / ".kfm/objects"))
    outputs = {}
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    columns = {k: [f["properties"][k] for f in features] for k in features[0]["properties"]}
    columns["geometry"] = [shapely.to_wkb(shapely.geometry.shape(f["geometry"])) for f in features]
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    sources = {"geojson": ({"format": "geojson"}, json.dumps({"type": "FeatureCollection", "features": features})
                           .encode()),
               "ndjson": ({"format": "ndjson"}, ("\n".join(json.dumps(f) for f in features) + "\n").encode()),
               "parquet": ({"format": "parquet", "geometry": {"from": "wkb", "column": "geometry"}}, sink.getvalue())}
    for fmt, (source, data) in sources.items():
        digest = store.put_bytes(data).digest
        pipeline = dict(contract.pipeline.data)
        pipeline["source"] = source
        from dataclasses import replace

        from kfm_gitops._yaml import Document

        c = replace(contract, pipeline=Document("p", pipeline, {}, {}))
        manifest = {"objects": [{"name": f"x.{fmt}", "digest": digest}]}
        result = process_chunk(c, manifest, period_of_key("2023-02", UTC), store, governed / f".work-{fmt}",
                               "event_time")
        assert result.qa["rows"] == {"total": 30, "accepted": 30, "quarantined": 0, "other_chunks": 0}, result.qa
        outputs[fmt] = result.partitions[0]["digest"]
    assert outputs["geojson"] == outputs["ndjson"] == outputs["parquet"]


def test_a_feature_collection_is_read_feature_by_feature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches come out before the end of the file is read: a FeatureCollection is never loaded whole."""
    from kfm_gitops import sources

    monkeypatch.setattr(sources, "BATCH_ROWS", 10)
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-97.5, 38.25]},
               "properties": {"report_id": "KS-1", "magnitude": 1.75, "injuries": 2, "note": None}}
    body = json.dumps({"type": "FeatureCollection", "features": [feature] * 30})
    path = tmp_path / "cut.geojson"
    path.write_text(body[:-2] + ', {"type": "Feat')  # the last feature is cut off
    batches = []
    with pytest.raises(SourceError, match="ends before the JSON is complete, at line 1, column 5098; 30 feature"):
        for batch in sources._geojson_batches(path, "geojson"):
            batches.append(batch)
    assert [b.num_rows for b in batches] == [10, 10, 10]
    assert batches[0].to_pylist()[0] == {"report_id": "KS-1", "magnitude": "1.75", "injuries": "2", "note": None,
                                         "$id": None, "geometry": json.dumps(feature["geometry"])}


def test_wkt_geometries_are_checked_for_type_validity_and_precision_all_at_once(governed: Path) -> None:
    import pyarrow as pa

    from kfm_gitops.config import Vocabularies
    from kfm_gitops.dataset import load_contract
    from kfm_gitops.normalize import Normalizer

    contract = load_contract(governed, "ks_storm_reports", Vocabularies())
    assert not isinstance(contract, list)
    dataset = json.loads(json.dumps(contract.dataset.data))
    dataset["schema"]["geometry"].update(types=["Point", "Polygon"], max_decimals=2)
    pipeline = {**contract.pipeline.data, "source": {"format": "csv", "geometry": {"from": "wkt", "column": "wkt"}}}
    values = ["POLYGON ((-98 38, -97.5 38, -97.5 38.25, -98 38))",  # two decimals at most: fine
              "POLYGON ((-98 38, -97.5 38, -97.5 38.255, -98 38))",  # one vertex with three: over-precise
              "POINT (-97.25 38.5)",
              "POINT (-97.125 38.5)",  # three decimals
              "LINESTRING (-98 38, -97 39)",  # a type the contract does not allow
              "POLYGON ((-98 38, -97 38",  # unparseable
              None]
    import numpy as np

    codes = np.zeros(len(values), dtype=np.int32)
    geoms = Normalizer(dataset, pipeline)._geometry(pa.table({"wkt": values}), len(values), codes)
    assert geoms.bad.tolist() == [False, False, False, False, True, True, True]
    over = [p for p in geoms.problems if p.reason == "GEOMETRY_OVERPRECISE"]
    assert [p.detail for p in over] == ["more than 2 decimals"]
    assert over[0].mask.tolist() == [False, True, False, True, False, False, False]
    assert geoms.bbox.to_pylist()[2] == {"xmin": -97.25, "ymin": 38.5, "xmax": -97.25, "ymax": 38.5}
    details = {p.detail: np.nonzero(p.mask)[0].tolist() for p in geoms.problems if p.mask.any()}
    assert details == {"missing": [6], "not a valid WKT geometry": [5],
                       "LineString; the contract declares Point, Polygon": [4], "more than 2 decimals": [1, 3]}
