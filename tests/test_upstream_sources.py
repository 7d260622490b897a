"""Nothing dropped without a finding: Feature ids and nested properties reach the contract; a document that is not
the shape its format promises is refused with where; blank files, control characters and renamed coordinate
columns are findings, not silent losses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from upstreams import (
    backfill,
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
from kfm_gitops.sources import SourceError, read_batches

F1 = feature("us1", [-117.5, 35.7, 8.0], time="2023-07-01T10:00:00Z", mag=2.5, place="a",
             origin={"depth_type": "from location", "review": {"status": "reviewed"}}, ids=["us1", "ci9"])
F2 = feature(4711, [-118.5, 34.7, 9.0], time="2023-07-02T10:00:00Z", mag=None, place=None, origin=None, ids=[])


def rows(path: Path, fmt: str = "geojson", nested: str = "json") -> list[dict[str, Any]]:
    return [r for t in read_batches(path, fmt, {}, nested) for r in t.to_pylist()]


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_a_features_id_is_the_column_dollar_id_and_nested_properties_stay_json(tmp_path: Path) -> None:
    got = rows(write(tmp_path, "a.geojson", collection([F1, F2])))
    assert [r["$id"] for r in got] == ["us1", "4711"]
    assert json.loads(got[0]["origin"]) == {"depth_type": "from location", "review": {"status": "reviewed"}}
    assert got[0]["ids"] == '["us1", "ci9"]' and got[1]["origin"] is None and got[1]["mag"] is None


def test_nested_properties_flatten_to_dotted_names(tmp_path: Path) -> None:
    got = rows(write(tmp_path, "a.geojson", collection([F1, F2])), nested="flatten")
    assert got[0]["origin.depth_type"] == "from location" and got[0]["origin.review.status"] == "reviewed"
    assert got[0]["ids"] == '["us1", "ci9"]'  # arrays stay JSON text
    assert got[1]["origin.review.status"] is None and got[1]["origin"] is None


def test_a_lone_feature_is_one_row(tmp_path: Path) -> None:
    got = rows(write(tmp_path, "one.geojson", json.dumps(F1)))
    assert len(got) == 1 and got[0]["$id"] == "us1" and got[0]["place"] == "a"


@pytest.mark.parametrize(("text", "message"), [
    (json.dumps({"type": "FeatureCollection", "Features": [F1, F2]}),
     "is a FeatureCollection without 'features' (it has 'Features'): its features would be lost"),
    (json.dumps({"type": "FeatureColection", "features": [F1, F2]}),
     "is not a GeoJSON FeatureCollection or Feature (type 'FeatureColection')"),
    (json.dumps({"features": [F1]}), "is not a GeoJSON FeatureCollection or Feature (no type)"),
    (json.dumps([F1, F2]), "is not a GeoJSON object (FeatureCollection or Feature)"),
    (json.dumps({"type": "Point", "coordinates": [1, 2]}),
     "is not a GeoJSON FeatureCollection or Feature (type 'Point')"),
    (json.dumps({"type": "FeatureCollection", "features": [F1, {"type": "Point", "coordinates": [1, 2]}]}),
     "features[1] is not a GeoJSON Feature"),
    (json.dumps({"type": "FeatureCollection", "features": [{**F1, "properties": {"$id": "x"}}]}),
     "features[0]: a property is named $id, which holds the Feature's id"),
    (json.dumps({"type": "FeatureCollection", "features": [{**F1, "properties": [1]}]}),
     "features[0]: properties is not an object"),
])
def test_a_document_of_another_shape_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SourceError) as err:
        rows(write(tmp_path, "x.geojson", text))
    assert str(err.value) == message


def test_broken_json_is_located(tmp_path: Path) -> None:
    whole = json.dumps({"type": "FeatureCollection", "features": [F1, F2]}, indent=1)
    text = whole[: whole.index('4711')]  # cut inside the second feature
    with pytest.raises(SourceError) as err:
        rows(write(tmp_path, "cut.geojson", text))
    line, col = text.count("\n") + 1, len(text) - text.rfind("\n")
    assert str(err.value) == f"ends before the JSON is complete, at line {line}, column {col}; 1 feature(s) read " \
        "before it"
    bad = whole.replace('"place": null', '"place": ]', 1)
    at = bad.index('"place": ]') + len('"place": ')
    with pytest.raises(SourceError) as err:
        rows(write(tmp_path, "bad.geojson", bad))
    line, col = bad[:at].count("\n") + 1, at - bad[:at].rfind("\n")
    assert str(err.value).startswith(f"is not valid JSON at line {line}, column {col} (")
    assert str(err.value).endswith("; 1 feature(s) read before it")


def test_newline_delimited_features_are_checked_line_by_line(tmp_path: Path) -> None:
    ok = "\x1e" + json.dumps(F1) + "\n\n" + json.dumps(F2) + "\n"
    assert [r["$id"] for r in rows(write(tmp_path, "a.ndjson", ok), "ndjson")] == ["us1", "4711"]
    with pytest.raises(SourceError, match=r"^line 3: not valid JSON$"):
        rows(write(tmp_path, "b.ndjson", json.dumps(F1) + "\n\n{oops\n"), "ndjson")
    with pytest.raises(SourceError, match=r"^line 1 is not a GeoJSON Feature$"):
        rows(write(tmp_path, "c.ndjson", "[1, 2]\n"), "ndjson")


@pytest.mark.parametrize("fmt", ["csv", "geojson", "ndjson"])
def test_a_file_of_whitespace_is_an_empty_delivery(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(SourceError, match=r"holds no data \(only whitespace\): an empty delivery"):
        rows(write(tmp_path, f"blank.{fmt}", "\n \r\n"), fmt)
    with pytest.raises(SourceError, match=r"^is empty$"):
        rows(write(tmp_path, f"empty.{fmt}", b""), fmt)


def quake(**over: Any) -> dict[str, Any]:
    return feature(over.pop("fid", "us1"), [-117.5, 35.7, 8.0], **{"time": "2023-07-01T10:00:00Z", "mag": 2.5,
                                                                     "place": "a", **over})


RENAME_ID = '[{op: rename, columns: {"$id": event_id}}]'


def test_ids_are_kept_end_to_end(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    data = collection([quake(fid="us1"), quake(fid="us2", time="2023-07-02T00:00:00Z"),
                       quake(fid=77, time="2023-07-03T00:00:00Z")])
    plan = make_repository(root, "quakes", dataset_yaml(), pipeline_yaml(transforms=RENAME_ID),
                           {"2023-07/week.geojson": data})
    monkeypatch.chdir(root)
    code, out = backfill(kfm, plan)
    assert code == 0, out
    import geopandas

    df = geopandas.read_parquet(version_partitions(root, "quakes")["2023-07"])
    assert df["event_id"].tolist() == ["us1", "us2", "77"]


def test_a_missing_id_says_where_the_features_id_is(tmp_path: Path, kfm: Runner,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(), pipeline_yaml(),
                              {"2023-07/w.geojson": collection([quake()])})
    assert code == 1
    assert ('COLUMN_MISSING: chunk 2023-07: 2023-07/w.geojson has no column event_id that the contract declares '
            '(hint: fix the upstream delivery, or rename a source column to it (transforms: [{op: rename, columns: '
            '{"$id": event_id}}]); a Feature\'s id is the source column $id)') in out


def test_a_misspelt_features_key_is_not_a_silent_loss(tmp_path: Path, kfm: Runner,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    good = collection([quake(fid=f"a{i}", time=f"2023-07-0{i}T00:00:00Z") for i in range(1, 4)])
    bad = json.dumps({"type": "FeatureCollection", "Features": [quake(fid="b1")]}).encode()
    _, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(), pipeline_yaml(transforms=RENAME_ID),
                              {"2023-07/a.geojson": good, "2023-07/b.geojson": bad})
    assert code == 1
    assert ("SOURCE_UNREADABLE: 2023-07/b.geojson is a FeatureCollection without 'features' (it has 'Features'): "
            "its features would be lost") in out
    assert "ROLLUP_BLOCKED" in out


CSV_SOURCE = "  format: csv\n  geometry: {from: xy, x: longitude, y: latitude}\n"
HEADER = "event_id,time,mag,place,longitude,latitude\n"


def test_control_characters_in_text_are_refused_by_column(tmp_path: Path, kfm: Runner,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    csv = HEADER + ("a1,2023-07-01T00:00:00Z,1.5,Ridge\x00crest,-117.5,35.7\n"
                    "a2,2023-07-02T00:00:00Z,1.5,\"two\tlines\nok\",-117.5,35.7\n"
                    "a3,2023-07-03T00:00:00Z,1.5,bell\x07,-117.5,35.7\n"
                    "a4,2023-07-04T00:00:00Z,1.5,c1\u0085,-117.5,35.7\n"
                    "a5,2023-07-05T00:00:00Z,1.5,São Tomé,-117.5,35.7\n")
    root, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(types="Point", max_invalid=0.9),
                                 pipeline_yaml(pattern="{year}-{month}/*.csv", source=CSV_SOURCE),
                                 {"2023-07/e.csv": csv.encode()})
    assert code == 0, out
    import geopandas

    df = geopandas.read_parquet(version_partitions(root, "quakes")["2023-07"])
    assert df["place"].tolist() == ["two\tlines\nok", "São Tomé"]
    q = json.loads((run_folders(root, "quakes")[-1] / "quarantine.json").read_text())
    assert [(r["id"], r["column"], r["detail"]) for r in q["records"]] == [
        (i, "place", "holds a control character") for i in ("a1", "a3", "a4")]


def test_renamed_coordinate_columns_are_missing_columns(tmp_path: Path, kfm: Runner,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    csv = "event_id,time,mag,place,lon,lat\na1,2023-07-01T00:00:00Z,1.5,x,-117.5,35.7\n"
    _, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(types="Point"),
                              pipeline_yaml(pattern="{year}-{month}/*.csv", source=CSV_SOURCE),
                              {"2023-07/e.csv": csv.encode()})
    assert code == 1
    assert ("COLUMN_MISSING: chunk 2023-07: 2023-07/e.csv has no column latitude, longitude that the contract "
            'declares (hint: fix the upstream delivery, or rename a source column to it (transforms: [{op: rename, '
            'columns: {"lat": latitude, "lon": longitude}}]))') in out


def test_a_property_some_features_lack_is_not_missing_from_the_source(tmp_path: Path, kfm: Runner,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """GeoJSON properties are sparse: a batch whose features all lack a key is not a source without it."""
    from kfm_gitops import sources

    monkeypatch.setattr(sources, "BATCH_ROWS", 2)
    features = [quake(fid=f"e{i}", time=f"2023-07-0{i}T00:00:00Z") for i in range(1, 6)]
    for f in features[:2]:
        del f["properties"]["mag"]  # the whole first batch lacks mag
    features[4]["properties"]["magnitude"] = features[4]["properties"].pop("mag")
    transforms = '[{op: rename, columns: {"$id": event_id}}, {op: drop, names: [magnitude]}]'
    root, code, out = backfilled(tmp_path, monkeypatch, kfm, dataset_yaml(), pipeline_yaml(transforms=transforms),
                                 {"2023-07/a.geojson": collection(features)})
    assert code == 0, out
    import geopandas

    df = geopandas.read_parquet(version_partitions(root, "quakes")["2023-07"])
    assert [None if v != v else v for v in df["mag"].tolist()] == [None, None, 2.5, 2.5, None]
    qa = json.loads((run_folders(root, "quakes")[-1] / "qa.json").read_text())
    assert qa["null_ratio"]["mag"] == 0.6
