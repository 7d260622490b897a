"""Files that span several chunks: a month's file read by daily chunks gives one correct partition per day; rows of
another chunk that reads the same file are its rows (other_chunks), not failures; each row is published or
quarantined by exactly one chunk of the plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from upstreams import (
    backfilled,
    collection,
    dataset_yaml,
    feature,
    pipeline_yaml,
    run_folders,
    version_partitions,
)

from conftest import Runner

RENAME_ID = '[{op: rename, columns: {"$id": event_id}}]'


def quake(fid: str, when: str) -> dict[str, object]:
    return feature(fid, [-117.5, 35.7, 5.0], time=when, mag=1.0, place="p")


def test_a_month_file_read_by_daily_chunks_gives_one_partition_per_day(tmp_path: Path, kfm: Runner,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    days = [quake(f"d{d}{k}", f"2023-07-0{d}T{10 + k}:00:00Z") for d in range(1, 6) for k in range(2)]
    outside = [quake("june", "2023-06-30T23:59:59Z"), quake("later", "2023-07-10T00:00:00Z")]
    month = collection(outside[:1] + days + outside[1:])
    root, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(partitioning="daily", max_invalid=0.6),
                                 pipeline_yaml(pattern="{year}-{month}.geojson", transforms=RENAME_ID),
                                 {"2023-07.geojson": month},
                                 window=(datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 7, 6, tzinfo=UTC)),
                                 mode="daily")
    assert code == 0, out
    import geopandas

    parts = version_partitions(root, "quakes")
    assert sorted(parts) == [f"2023-07-0{d}" for d in range(1, 6)]
    published = {k: geopandas.read_parquet(p)["event_id"].tolist() for k, p in parts.items()}
    assert published == {f"2023-07-0{d}": [f"d{d}0", f"d{d}1"] for d in range(1, 6)}
    qas = {json.loads((f / "qa.json").read_text())["chunk"]: json.loads((f / "qa.json").read_text())
           for f in run_folders(root, "quakes")}
    assert {k: q["rows"] for k, q in qas.items()} == {
        "2023-07-01": {"total": 4, "accepted": 2, "quarantined": 2, "other_chunks": 8},
        **{f"2023-07-0{d}": {"total": 2, "accepted": 2, "quarantined": 0, "other_chunks": 10} for d in range(2, 6)}}
    assert sum(q["rows"]["total"] for q in qas.values()) == 12  # every row of the file, once
    assert qas["2023-07-02"]["invalid_ratio"] == 0.0
    q = json.loads(next(f for f in run_folders(root, "quakes") if ".2023-07-01." in f.name)
                   .joinpath("quarantine.json").read_text())
    assert [(r["id"], r["reason"], r["detail"]) for r in q["records"]] == [
        ("june", "OUT_OF_WINDOW", "outside the plan's window"), ("later", "OUT_OF_WINDOW", "outside the plan's window")]


def test_a_row_of_a_chunk_that_does_not_read_its_file_is_out_of_window() -> None:
    import numpy as np

    from kfm_gitops.chunk import NO_TIME, Placement, epoch_us
    from kfm_gitops.periods import period_of_key

    chunks = tuple(period_of_key(k, UTC) for k in ("2023-01", "2023-02", "2023-03"))
    bounds = np.array([epoch_us(c.start) for c in chunks] + [epoch_us(chunks[-1].end)], dtype=np.int64)
    placement = Placement(chunks, 1, bounds, "file", {"pattern": "{year}-{month}/*.csv"}, "UTC")
    readers = placement.readers("2023-02/a.csv")
    assert readers.tolist() == [False, True, False]
    times = [datetime(2023, 2, 3, tzinfo=UTC), datetime(2023, 3, 3, tzinfo=UTC), datetime(2022, 1, 1, tzinfo=UTC)]
    instants = np.array([epoch_us(t) for t in times] + [NO_TIME], dtype=np.int64)
    owner, at = placement.owners(instants, readers)
    assert owner.tolist() == [1, 1, 1, 1] and at.tolist() == [1, 2, -1, -1]
    shared = Placement(chunks, 1, bounds, "file", {"pattern": "2023/*.csv"}, "UTC")
    owner, _ = shared.owners(instants, shared.readers("2023/all.csv"))
    assert owner.tolist() == [1, 2, 0, 0]  # outside the plan or without a time: the first chunk that reads it


@pytest.mark.parametrize("pattern", ["*.csv", "2023-0?/*.csv", "**/*.csv", "2023-0[12]/**/x*.csv", "**",
                                     "2023-01/*", "*/*/*.csv", ".hidden/*", "2023-*"])
def test_glob_matches_is_what_path_glob_finds(tmp_path: Path, pattern: str) -> None:
    from kfm_gitops.connectors.file import glob_matches

    for name in ("a.csv", "2023-01/x.csv", "2023-01/deep/x1.csv", "2023-02/y.CSV", "2023-03/z.csv",
                 ".hidden/h.csv", "2023-01/.dot.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found = {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob(pattern) if p.is_file()}
    every = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {n for n in every if glob_matches(n, pattern)} == found


def test_the_http_connector_says_which_windows_ask_for_an_object() -> None:
    from kfm_gitops.connectors import Window, readers

    days = [Window(f"2023-07-{d:02d}", datetime(2023, 7, d, tzinfo=UTC), datetime(2023, 7, d + 1, tzinfo=UTC), UTC)
            for d in (1, 30)] + [Window("2023-08-01", datetime(2023, 8, 1, tzinfo=UTC),
                                        datetime(2023, 8, 2, tzinfo=UTC), UTC)]
    params = {"url": "https://example.org/feed/{year}-{month}.geojson"}
    assert readers("http", params, days, "2023-07.geojson") == [True, True, False]
    assert readers("file", {"pattern": "{year}/{month}/*.csv"}, days, "2023/07/a.csv") == [True, True, False]
