"""The real-shaped examples under tests/examples/upstreams/, each a governed repository's files (contract,
pipeline, plan, upstream files as delivered), through `kfm backfill run` and read back: every row in is a row out
or a quarantined row, timestamps exact to the microsecond, Z kept, ids kept."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from upstreams import run_folders, version_partitions

from conftest import EXAMPLES, Runner

UPSTREAMS = EXAMPLES / "upstreams"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def example(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kfm: Runner) -> tuple[Path, str]:
    """The example as a governed repository, backfilled; its root and the run's output."""
    from kfm_gitops.repository import init

    folder = UPSTREAMS / name
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    root = tmp_path / "repo"
    init(root, files)
    monkeypatch.chdir(root)
    (plan,) = [k for k in files if k.startswith("plans/")]
    r = kfm("backfill", "run", plan, "--yes")
    assert r.code == 0, r.out + r.err
    return root, r.out


def quarantined(root: Path, slug: str) -> list[dict[str, Any]]:
    return [r for f in run_folders(root, slug) for r in json.loads((f / "quarantine.json").read_text())["records"]]


def values(series: Any) -> list[Any]:
    """A column as Python values, a missing one as None (pandas reads nulls of text columns as NaN)."""
    return [None if v is None or v != v else v for v in series.tolist()]


def ms(value: int) -> datetime:
    return EPOCH + timedelta(milliseconds=value)


def geoparquet_valid(path: Path) -> dict[str, Any]:
    done = subprocess.run([str(Path(sys.executable).parent / "geoparquet-validator"), "check", str(path), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    import pyarrow.parquet as pq

    geo: dict[str, Any] = json.loads(pq.read_schema(path).metadata[b"geo"])["columns"]["geometry"]
    return geo


def test_a_usgs_style_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kfm: Runner) -> None:
    root, _ = example("usgs_quakes", tmp_path, monkeypatch, kfm)
    feed = json.loads(next((UPSTREAMS / "usgs_quakes/upstream").rglob("*.geojson")).read_text())["features"]
    path = version_partitions(root, "usgs_quakes")["2023-07"]
    import geopandas

    df = geopandas.read_parquet(path)
    out = quarantined(root, "usgs_quakes")
    assert len(feed) == len(df) + len(out)
    assert [(r["id"], r["reason"], r["column"], r["detail"]) for r in out] == [
        ("nc73912399", "SCHEMA_INVALID", "time", "required, found null")]
    kept = [f for f in feed if f["id"] != "nc73912399"]
    assert df["event_id"].tolist() == [f["id"] for f in kept]
    assert df["time"].tolist() == [ms(f["properties"]["time"]) for f in kept]
    assert df["updated"].tolist() == [ms(f["properties"]["updated"]) for f in kept]
    assert df.has_z.all()
    assert df.geometry.z.tolist() == [f["geometry"]["coordinates"][2] for f in kept]
    assert df["mag"].isna().tolist() == [f["properties"]["mag"] is None for f in kept]
    assert values(df["review_status"]) == [(f["properties"].get("products") or {}).get("origin", {}).get(
        "review_status") for f in kept]
    assert values(df["place"]) == [f["properties"]["place"] for f in kept]
    assert df["mag_type"].tolist() == [f["properties"]["magType"] for f in kept]
    geo = geoparquet_valid(path)
    assert geo["geometry_types"] == ["Point Z"] and len(geo["bbox"]) == 6
    qa = json.loads((run_folders(root, "usgs_quakes")[-1] / "qa.json").read_text())
    assert qa["null_ratio"]["felt"] == round(sum(f["properties"]["felt"] is None for f in feed) / len(feed), 6)


def test_a_csv_with_epoch_seconds_and_a_depth_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      kfm: Runner) -> None:
    import csv

    root, _ = example("quakes_csv", tmp_path, monkeypatch, kfm)
    rows = list(csv.DictReader((UPSTREAMS / "quakes_csv/upstream/quakes_csv/2023-08.csv").read_text().splitlines()))
    path = version_partitions(root, "quakes_csv")["2023-08"]
    import geopandas

    df = geopandas.read_parquet(path)
    out = quarantined(root, "quakes_csv")
    assert len(rows) == len(df) + len(out)
    assert [(r["id"], r["reason"], r["column"], r["detail"]) for r in out] == [
        ("ch2023aug05", "GEOMETRY_INVALID", "longitude", "missing")]
    kept = [r for r in rows if r["id"] != "ch2023aug05"]

    def instant(text: str) -> datetime | None:  # exact: decimal seconds to whole microseconds
        return EPOCH + timedelta(microseconds=int(Decimal(text) * 1_000_000)) if text else None

    assert df["event_id"].tolist() == [r["id"] for r in kept]
    assert df["time"].tolist() == [instant(r["time"]) for r in kept]
    assert df["time"].tolist()[-1] == datetime(2023, 8, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert values(df["updated"]) == [instant(r["updated"]) for r in kept]
    assert df.has_z.tolist() == [bool(r["depth"]) for r in kept]
    assert [g.z for g in df.geometry if g.has_z] == [float(r["depth"]) for r in kept if r["depth"]]
    assert df["place"].tolist()[2] == "Valparaíso, Chile"
    assert geoparquet_valid(path)["geometry_types"] == ["Point", "Point Z"]


def test_a_month_file_read_by_daily_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kfm: Runner) -> None:
    root, text = example("quakes_month", tmp_path, monkeypatch, kfm)
    feed = json.loads((UPSTREAMS / "quakes_month/upstream/quakes_month/2023-07.geojson").read_text())["features"]
    assert "note: gap: 2023-07-11 .. 2023-07-19 (9 daily partitions) have no data in this window" in text
    parts = version_partitions(root, "quakes_month")
    import geopandas

    frames = {key: geopandas.read_parquet(path) for key, path in parts.items()}
    july = [f for f in feed if ms(f["properties"]["time"]).month == 7]
    by_day: dict[str, list[dict[str, Any]]] = {}
    for f in july:
        by_day.setdefault(ms(f["properties"]["time"]).strftime("%Y-%m-%d"), []).append(f)
    assert sorted(frames) == sorted(by_day)  # one partition per day with data, none for the outage
    for key, df in frames.items():
        assert df["event_id"].tolist() == [f["id"] for f in by_day[key]]
        assert df["time"].tolist() == [ms(f["properties"]["time"]) for f in by_day[key]]
        assert df.has_z.all()
    out = quarantined(root, "quakes_month")
    assert [(r["id"], r["reason"], r["detail"]) for r in out] == [
        ("tm20230630a", "OUT_OF_WINDOW", "outside the plan's window")]
    qas = [json.loads((f / "qa.json").read_text())["rows"] for f in run_folders(root, "quakes_month")]
    assert len(qas) == 31
    assert sum(q["total"] for q in qas) == len(feed)  # every row of the month's file, once across the plan
    assert {q["total"] + q["other_chunks"] for q in qas} == {len(feed)}  # every chunk read the whole file
