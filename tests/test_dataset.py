"""Dataset contracts: validation with located findings, and a spec_hash that ignores formatting only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Runner
from kfm_gitops import _yaml
from kfm_gitops.config import Vocabularies
from kfm_gitops.dataset import load_contract
from kfm_gitops.identity import sha256_digest

DS = "datasets/ks_storm_reports/dataset.yaml"
PL = "datasets/ks_storm_reports/pipeline.yaml"


def spec_hash_cli(kfm: Runner) -> str:
    r = kfm("dataset", "hash", "ks_storm_reports")
    assert r.code == 0, r.err
    return r.out.strip()


def reversed_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: reversed_keys(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [reversed_keys(v) for v in obj]
    return obj


def leaves(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, (*path, i))
    else:
        yield path


def mutated(obj: Any, path: tuple[Any, ...]) -> Any:
    data = json.loads(json.dumps(obj))
    node = data
    for p in path[:-1]:
        node = node[p]
    v = node[path[-1]]
    if isinstance(v, bool):
        node[path[-1]] = not v
    elif isinstance(v, (int, float)):
        node[path[-1]] = v + 1
    else:
        node[path[-1]] = str(v) + "x"
    return data


def test_example_contract_is_valid(governed: Path, kfm: Runner) -> None:
    r = kfm("dataset", "validate")
    assert (r.code, r.out) == (0, "2 contract files valid\n")
    r = kfm("dataset", "validate", "ks_storm_reports")
    assert (r.code, r.out) == (0, "2 contract files valid\n")
    r = kfm("dataset", "validate", DS, PL)  # as the pre-commit hook passes them
    assert (r.code, r.out) == (0, "2 contract files valid\n")


def test_spec_hash_is_the_jcs_digest_of_both_files(governed: Path, kfm: Runner) -> None:
    import rfc8785

    ds = _yaml.load(governed / DS)
    pl = _yaml.load(governed / PL)
    assert isinstance(ds, _yaml.Document) and isinstance(pl, _yaml.Document)
    expected = sha256_digest(rfc8785.dumps({"dataset": ds.data, "pipeline": pl.data}))
    assert spec_hash_cli(kfm) == expected
    r = kfm("dataset", "hash", "ks_storm_reports", "--format", "json")
    assert json.loads(r.out) == {"dataset_slug": "ks_storm_reports", "spec_hash": expected}


def test_reformatting_never_changes_the_hash(governed: Path, kfm: Runner) -> None:
    before = spec_hash_cli(kfm)
    for rel in (DS, PL):
        doc = _yaml.load(governed / rel)
        assert isinstance(doc, _yaml.Document)
        # Flow style, every string quoted, keys in reverse order, new comments: the same values.
        text = "# reformatted\n" + json.dumps(reversed_keys(doc.data), indent=1, ensure_ascii=False) + "\n# end\n"
        (governed / rel).write_text(text)
    assert kfm("dataset", "validate").code == 0
    assert spec_hash_cli(kfm) == before


def test_any_value_change_changes_the_hash(governed: Path, kfm: Runner) -> None:
    doc = _yaml.load(governed / DS)
    assert isinstance(doc, _yaml.Document)
    vocab = Vocabularies()
    base = load_contract(governed, "ks_storm_reports", vocab)
    assert not isinstance(base, list)
    seen = {base.spec_hash}
    paths = list(leaves(doc.data))
    assert len(paths) > 40
    for path in paths:
        (governed / DS).write_text(json.dumps(mutated(doc.data, path)))
        ds = _yaml.load(governed / DS)
        pl = _yaml.load(governed / PL)
        assert isinstance(ds, _yaml.Document) and isinstance(pl, _yaml.Document)
        from kfm_gitops.identity import spec_hash

        h = spec_hash(ds.data, pl.data)
        assert h not in seen, f"changing {path} did not change the hash"
        seen.add(h)


@pytest.mark.parametrize(("old", "new", "code", "where"), [
    ("type: float64", "type: decimal", "SCHEMA_VALUE", "30:31"),
    ("axis: event_time", "axis: valid_time", "DATASET_PARTITION_AXIS", "43:9"),
    ("bbox: [-102.06, 36.99, -94.58, 40.01]", "bbox: [-94.58, 36.99, -102.06, 40.01]", "DATASET_EXTENT", "47:9"),
    ("bbox: [-102.06, 36.99, -94.58, 40.01]", "bbox: [-102.06, 36.99, 194.58, 40.01]", "DATASET_EXTENT", "47:9"),
    ("id_column: report_id", "id_column: report", "DATASET_UNKNOWN_COLUMN", "24:14"),
    ("event_time: {column: event_time}", "event_time: {column: observed}", "DATASET_UNKNOWN_COLUMN", "39:24"),
    ("event_time: {column: event_time}", "event_time: {column: county}", "DATASET_TIME_COLUMN_TYPE", "39:24"),
    ("event_time: {column: event_time}", "ingest_time: {column: event_time}", "DATASET_UNKNOWN_TIME_AXIS", "39:3"),
    ("timezone: UTC", "timezone: Kansas/Topeka", "DATASET_TIMEZONE", "44:13"),
    ("label: public", "label: open_data", "POLICY_UNKNOWN_LABEL", "18:10"),
    ("slug: ks_storm_reports", "slug: ks_storms", "DATASET_SLUG_MISMATCH", "3:7"),
    ("  spdx: CC-BY-4.0\n", "", "SCHEMA_INVALID", "14:3"),
    ("cadence: P1M", "cadance: P1M", "SCHEMA_UNKNOWN_KEY", "50:1"),
    ("max_null_ratio: {magnitude: 0.2,", "max_null_ratio: {hail: 0.2,", "DATASET_UNKNOWN_COLUMN", "55:20"),
    ("{role: steward, min: 1}", "{role: stewart, min: 1}", "DATASET_ROLE", "59:14"),
    ("crs: OGC:CRS84", "crs: EPSG:3857", "DATASET_CRS", "48:8"),
])
def test_bad_contract_is_a_located_finding(governed: Path, kfm: Runner, old: str, new: str, code: str,
                                           where: str) -> None:
    path = governed / DS
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    r = kfm("dataset", "validate", DS)
    assert r.code == 1
    first = r.out.splitlines()[0]
    assert first.startswith(f"{DS}:{where}: {code}: "), r.out


@pytest.mark.parametrize(("old", "new", "code"), [
    ("type: file", "type: ftp", "PIPELINE_UNKNOWN_CONNECTOR"),
    ("format: csv", "format: xlsx", "SCHEMA_VALUE"),
    ("    x: longitude\n", "", "PIPELINE_GEOMETRY"),
    ("transforms: []", "transforms: [{op: rename}]", "PIPELINE_TRANSFORM"),
    ("  crs: OGC:CRS84", "  crs: EPSG:3857", "PIPELINE_CRS"),
    ('pattern: "{year}-{month}/*.csv"', 'pattern: "{yr}-{month}/*.csv"', "PIPELINE_TEMPLATE"),
    ('pattern: "{year}-{month}/*.csv"', 'pattern: "../../../outside/*{year}*.csv"', "PIPELINE_PATH"),
    ("root: upstream/ks_storm_reports", "root: ../elsewhere", "PIPELINE_PATH"),
])
def test_bad_pipeline_is_a_located_finding(governed: Path, kfm: Runner, old: str, new: str, code: str) -> None:
    path = governed / PL
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    r = kfm("dataset", "validate", "ks_storm_reports")
    assert r.code == 1
    assert f": {code}: " in r.out.splitlines()[0]


def test_hash_of_an_invalid_contract_is_refused(governed: Path, kfm: Runner) -> None:
    path = governed / DS
    path.write_text(path.read_text().replace("cadence: P1M", "cadence: P1X"))
    r = kfm("dataset", "hash", "ks_storm_reports")
    assert r.code == 1
    assert r.out == ""
    assert "dataset 'ks_storm_reports' has no valid contract" in r.err
    assert "SCHEMA_FORMAT" in r.err


def test_unknown_dataset(governed: Path, kfm: Runner) -> None:
    r = kfm("dataset", "hash", "nope")
    assert r.code == 1
    assert "DATASET_NOT_FOUND" in r.err
