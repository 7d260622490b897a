"""Transforms that validate act: every op the pipeline schema accepts is applied (rename, drop, force_2d), an op
that would do nothing is refused where it is written, and one that cannot apply to a source is a finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from upstreams import (
    backfill,
    collection,
    dataset_yaml,
    feature,
    make_repository,
    pipeline_yaml,
    run_folders,
    version_partitions,
)

from conftest import Runner


def test_the_schema_accepts_exactly_the_ops_kfm_applies() -> None:
    from kfm_gitops.normalize import TRANSFORM_OPS
    from kfm_gitops.schema import load_schema

    schema = load_schema("pipeline")
    assert schema["properties"]["transforms"]["items"]["properties"]["op"]["enum"] == list(TRANSFORM_OPS)


def quakes(n: int = 3, **extra: object) -> bytes:
    return collection([feature(f"e{i}", [-117.5, 35.7, 1.0], time=f"2023-07-0{i}T00:00:00Z", mag=1.0, place="p",
                               secret="s3cr3t", **extra) for i in range(1, n + 1)])


def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transforms: str, data: bytes | None = None) -> str:
    root = tmp_path / "repo"
    plan = make_repository(root, "quakes", dataset_yaml(), pipeline_yaml(transforms=transforms),
                           {"2023-07/a.geojson": data or quakes()})
    monkeypatch.chdir(root)
    return plan


def test_cast_is_refused_where_it_is_written(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    repository(tmp_path, monkeypatch, "[{op: cast, columns: {mag: float64}}]")
    r = kfm("dataset", "validate", "quakes")
    assert r.code == 1
    assert ("datasets/quakes/pipeline.yaml:6:19: SCHEMA_VALUE: transforms[0].op is \"cast\"; it must be one of: "
            "rename, drop, force_2d (hint: rename maps source columns") in r.out


@pytest.mark.parametrize(("transforms", "expected"), [
    ('[{op: rename, columns: {"$id": event_id, mag: magnitude}}]',
     "6:59: PIPELINE_TRANSFORM: rename maps 'mag' to 'magnitude', which neither the contract's columns nor "
     "source.geometry read"),
    ("[{op: force_2d, names: [x]}]", "6:29: PIPELINE_TRANSFORM: transform force_2d takes no 'names'"),
])
def test_a_transform_that_would_change_nothing_is_refused(tmp_path: Path, kfm: Runner,
                                                          monkeypatch: pytest.MonkeyPatch, transforms: str,
                                                          expected: str) -> None:
    repository(tmp_path, monkeypatch, transforms)
    r = kfm("dataset", "validate", "quakes")
    assert r.code == 1
    assert f"datasets/quakes/pipeline.yaml:{expected}" in r.out


def test_force_2d_on_flat_points_is_refused(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    make_repository(root, "quakes", dataset_yaml(types="Point"), pipeline_yaml(
        source="  format: csv\n  geometry: {from: xy, x: lon, y: lat}\n", transforms="[{op: force_2d}]"), {})
    monkeypatch.chdir(root)
    r = kfm("dataset", "validate", "quakes")
    assert r.code == 1 and "force_2d has nothing to flatten" in r.out


def test_rename_and_drop_act(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    data = collection([feature("e1", [-117.5, 35.7, 1.0], time="2023-07-01T00:00:00Z", magnitude=1.5, place="p",
                               secret="s3cr3t"),
                       feature(None, [-117.5, 35.7, 1.0], time="2023-07-02T00:00:00Z", magnitude=2.5, place="q",
                               secret="s3cr3t")])
    plan = repository(tmp_path, monkeypatch, '[{op: rename, columns: {"$id": event_id, magnitude: mag}}, '
                      "{op: drop, names: [secret]}]", data)
    code, out = backfill(kfm, plan)
    assert code == 0, out
    import geopandas
    import pyarrow.parquet as pq

    root = tmp_path / "repo"
    df = geopandas.read_parquet(version_partitions(root, "quakes")["2023-07"])
    assert df["mag"].tolist() == [1.5]
    q = json.loads((run_folders(root, "quakes")[-1] / "quarantine.json").read_text())
    assert [(r["row"], r["column"], r["detail"]) for r in q["records"]] == [(2, "event_id", "required, found null")]
    from kfm_gitops.store import Store

    rows_path = Store(str(root / ".kfm/objects")).local_path(q["rows_object"])
    assert rows_path is not None
    kept = pq.read_table(rows_path)
    assert "secret" not in kept.column_names and "mag" in kept.column_names  # dropped before anything is kept


@pytest.mark.parametrize(("transforms", "problem"), [
    ('[{op: rename, columns: {"$id": event_id, magnitude: mag}}]',
     "rename: 2023-07/a.geojson has no column 'magnitude'"),
    ('[{op: rename, columns: {"$id": event_id, place: mag}}]', "rename: 2023-07/a.geojson has a column 'mag' already"),
    ('[{op: rename, columns: {"$id": event_id}}, {op: drop, names: [nothing]}]',
     "drop: 2023-07/a.geojson has no column 'nothing'"),
])
def test_a_transform_that_cannot_apply_is_a_finding(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch,
                                                    transforms: str, problem: str) -> None:
    plan = repository(tmp_path, monkeypatch, transforms)
    code, out = backfill(kfm, plan)
    assert code == 1
    assert f"TRANSFORM_INAPPLICABLE: chunk 2023-07: {problem}" in out
    assert "ROLLUP_BLOCKED" in out


@pytest.mark.parametrize(("obligation", "where", "message"), [
    ("{type: generalize_geometry, params: {method: round_99_decimals}}", "9:52",
     "round_99_decimals: coordinates carry at most 15 decimals, so rounding to 99 changes nothing"),
    ("{type: generalize_geometry, params: {method: round_4_decimals}}", "9:52",
     "round_4_decimals changes nothing: the contract's coordinates have at most 4 decimals already"),
    ("{type: generalize_geometry, params: {method: grid_aggregation_0km}}", "9:52",
     "grid_aggregation_0km: a cell of size 0 generalises nothing"),
    ("{type: min_count_threshold, params: {min_count: 1}}", "9:55",
     "min_count_threshold with min_count 1 suppresses nothing"),
    ("{type: remove_attributes, params: {fields: [nope]}}", "9:7",
     "remove_attributes names 'nope', which the contract does not declare"),
])
def test_obligation_parameters_that_do_nothing_are_refused_at_their_line(
        tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch, obligation: str, where: str,
        message: str) -> None:
    dataset = dataset_yaml().replace("policy: {label: public, obligations: []}",
                                     f"policy:\n  label: public\n  obligations:\n    - {obligation}")
    dataset = dataset.replace("geometry: {column: geometry, types: [Point Z]}",
                              "geometry: {column: geometry, types: [Point Z], max_decimals: 4}")
    root = tmp_path / "repo"
    make_repository(root, "quakes", dataset, pipeline_yaml(), {})
    monkeypatch.chdir(root)
    r = kfm("dataset", "validate", "quakes")
    assert r.code == 1
    assert f"datasets/quakes/dataset.yaml:{where}: DATASET_OBLIGATION_INAPPLICABLE: {message}" in r.out, r.out


def test_a_plan_that_adds_an_obligation_that_does_nothing_is_refused_at_its_line(governed: Path,
                                                                                kfm: Runner) -> None:
    from kfm_gitops.example import FIRST_PLAN

    text = (governed / FIRST_PLAN).read_text().replace("policy_label: public", "policy_label: public_generalized")
    text = text.replace("  obligations:\n", '  obligations:\n    - {"type": "generalize_geometry", "params": '
                        '{"method": "round_99_decimals"}}\n')
    (governed / FIRST_PLAN).write_text(text)
    r = kfm("plan", "validate", FIRST_PLAN)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "round_99" in ln)) + 1
    assert (f"{FIRST_PLAN}:{line}:7: PLAN_OBLIGATION_INAPPLICABLE: round_99_decimals: coordinates carry at most 15 "
            "decimals") in r.out, r.out
