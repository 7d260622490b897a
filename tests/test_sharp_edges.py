"""Faults that an earlier version of the suite let through: each test here fails when its fault is put back
(default deny for a user's own policy, QA limits at their boundary, reuse of runs whose partitions are gone, copies
between stores that do not verify, KFM_ACTOR, and the published GeoParquet's columns against the contract)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import Runner, git
from kfm_gitops import policy
from kfm_gitops.example import FIRST_PLAN
from kfm_gitops.store import Store, key_of

SLUG = "ks_storm_reports"
LABELS = ["public", "public_generalized", "restricted", "restricted_sensitive_location", "internal", "embargoed",
          "quarantine"]


def version_of(root: Path) -> str:
    return re.search(r'expected_dataset_version_id: "([^"]*)"', (root / FIRST_PLAN).read_text()).group(1)  # type: ignore[union-attr]


def processing_input() -> dict[str, Any]:
    return {"label": "public", "vocabulary": {"labels": LABELS}, "obligations": [],
            "license": {"spdx": "CC-BY-4.0"}, "terms": {"digest": "sha256:" + "ab" * 32}}


def test_a_policy_that_denies_nothing_but_never_allows_denies(governed: Path) -> None:
    for p in (governed / "policies").glob("*.rego"):
        p.unlink()
    (governed / "policies/strict.rego").write_text(
        "package kfm.processing\n\nimport rego.v1\n\ndefault allow := false\n\n"
        'deny contains "NEVER" if false\n\nallow if input.label == "no such label"\n')
    decision, findings = policy.decide(governed, "processing", processing_input())
    assert decision.allow is False  # no deny rule fired, and yet nothing allowed it: default deny
    assert decision.deny == ("POLICY_NOT_ALLOWED",)
    assert decision.as_dict()["outcome"] == "deny"
    assert findings == []  # the policies decided: a deny, not an error


def test_default_deny_names_its_cause_when_a_backfill_is_refused(governed: Path, kfm: Runner) -> None:
    for p in (governed / "policies").glob("*.rego"):
        p.unlink()
    (governed / "policies/strict.rego").write_text(
        "package kfm.processing\n\nimport rego.v1\n\ndefault allow := false\n\n"
        'deny contains "NEVER" if false\n\nallow if input.label == "no such label"\n')
    git(governed, "add", "-A")
    git(governed, "commit", "-qm", "a stricter policy")
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1
    assert "ROLLUP_BLOCKED: no version: the processing policy denies this data (POLICY_NOT_ALLOWED)" in r.out


def test_the_same_policy_allows_when_its_allow_rule_holds(governed: Path) -> None:
    for p in (governed / "policies").glob("*.rego"):
        p.unlink()
    (governed / "policies/strict.rego").write_text(
        "package kfm.processing\n\nimport rego.v1\n\ndefault allow := false\n\n"
        'deny contains "NEVER" if false\n\nallow if input.label == "public"\n')
    decision, findings = policy.decide(governed, "processing", processing_input())
    assert (decision.allow, decision.deny, findings) == (True, (), [])


def qa_of(total: int, bad: int, nulls: int = 0) -> Any:
    import numpy as np

    from kfm_gitops.qa import QA

    qa = QA(["id", "magnitude"])
    ids = pa.array([f"r{i}" for i in range(total)])
    invalid = qa.causes.code("SCHEMA_INVALID", "magnitude", "expected float64, found text")
    codes = np.array([invalid if i >= total - bad else 0 for i in range(total)], dtype=np.int32)
    absent = {"id": np.zeros(total, dtype=bool), "magnitude": np.array([i < nulls for i in range(total)])}
    qa.add(ids, codes, absent, int((codes == 0).sum()))
    return qa


@pytest.mark.parametrize(("bad", "status"), [(1, "pass"), (2, "fail")])
def test_an_invalid_ratio_at_its_limit_passes_and_just_above_fails(bad: int, status: str) -> None:
    report = qa_of(10, bad).report({"max_invalid_ratio": 0.1}, "x", "2023-01")  # 1 of 10 is exactly 10%
    assert report["status"] == status, report["threshold_failures"]


@pytest.mark.parametrize(("nulls", "status"), [(2, "pass"), (3, "fail")])
def test_a_null_ratio_at_its_limit_passes_and_just_above_fails(nulls: int, status: str) -> None:
    report = qa_of(10, 0, nulls).report({"max_null_ratio": {"magnitude": 0.2}}, "x", "2023-01")
    assert report["status"] == status, report["threshold_failures"]


@pytest.mark.parametrize(("minimum", "status"), [(10, "pass"), (11, "fail")])
def test_min_rows_at_its_limit_passes_and_one_more_fails(minimum: int, status: str) -> None:
    assert qa_of(10, 0).report({"min_rows": minimum}, "x", "2023-01")["status"] == status


def test_a_run_whose_partitions_left_the_store_is_not_reused(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    v1 = version_of(governed)
    doc = json.loads((governed / "releases" / SLUG / v1 / "promotion-manifest.json").read_text())
    feb = next(a["digest"] for a in doc["artifacts"] if a["path"].endswith("/2023-02.parquet"))
    (governed / ".kfm/objects" / key_of(feb)).unlink()
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0, r.out + r.err
    assert re.findall(r"^  (2023-0\d)\s+reused", r.out, re.M) == ["2023-01", "2023-03", "2023-04", "2023-05",
                                                                   "2023-06"]
    assert Store(str(governed / ".kfm/objects")).verify(feb) is None  # made again, the same bytes
    assert version_of(governed) == v1


def corrupt_one_object(root: Path, version: str) -> str:
    doc = json.loads((root / "releases" / SLUG / version / "promotion-manifest.json").read_text())
    digest: str = doc["artifacts"][0]["digest"]
    path = root / ".kfm/objects" / key_of(digest)
    path.chmod(0o644)
    path.write_bytes(b"PAR1 not the bytes named")
    return digest


def test_store_push_refuses_to_copy_a_corrupt_object(governed: Path, tmp_path: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    version = version_of(governed)
    bad = corrupt_one_object(governed, version)
    shared = tmp_path / "shared"
    r = kfm("store", "push", f"releases/{SLUG}/{version}", "--to", str(shared))
    assert r.code == 1, r.out + r.err
    assert f"the stored object {bad} is corrupt" in r.err
    assert not (shared / key_of(bad)).exists()


def test_store_pull_refuses_to_copy_a_corrupt_object(governed: Path, tmp_path: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    version = version_of(governed)
    shared = tmp_path / "shared"
    assert kfm("store", "push", f"releases/{SLUG}/{version}", "--to", str(shared)).code == 0
    doc = json.loads((governed / "releases" / SLUG / version / "promotion-manifest.json").read_text())
    digest = doc["artifacts"][0]["digest"]
    remote = shared / key_of(digest)
    remote.chmod(0o644)
    remote.write_bytes(b"PAR1 not the bytes named")
    (governed / ".kfm/objects" / key_of(digest)).unlink()
    r = kfm("store", "pull", f"releases/{SLUG}/{version}", "--from", str(shared))
    assert r.code == 1, r.out + r.err
    assert f"the stored object {digest} is corrupt" in r.err
    assert not (governed / ".kfm/objects" / key_of(digest)).exists()


def test_kfm_actor_overrides_the_committer(governed: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFM_ACTOR", "release bot")
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    receipts = [json.loads(p.read_text()) for p in (governed / "releases" / SLUG / "runs").glob("*/receipt.json")]
    assert receipts
    assert {json.dumps(r["actor"], sort_keys=True) for r in receipts} == {
        json.dumps({"principal": "release_bot", "role": "contributor"}, sort_keys=True)}


CONTRACT_TYPES = {"string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"), "float64": pa.float64(),
                  "int32": pa.int32(), "int64": pa.int64(), "bool": pa.bool_(), "date": pa.date32()}


def test_the_published_geoparquet_has_the_contract_s_columns_and_types(governed: Path, kfm: Runner) -> None:
    import pyarrow.parquet as pq

    from kfm_gitops._yaml import Document, load

    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    loaded = load(governed / "datasets" / SLUG / "dataset.yaml")
    assert isinstance(loaded, Document)
    contract = loaded.data
    doc = json.loads((governed / "releases" / SLUG / version_of(governed) / "promotion-manifest.json").read_text())
    assert len(doc["artifacts"]) == 5
    for artifact in doc["artifacts"]:
        schema = pq.read_schema(governed / ".kfm/objects" / key_of(artifact["digest"]))
        for col in contract["schema"]["columns"]:
            if col.get("required"):
                assert col["name"] in schema.names, f"{artifact['path']}: required column {col['name']} missing"
            if col["name"] in schema.names:
                field = schema.field(col["name"])
                assert field.type == CONTRACT_TYPES[col["type"]], f"{artifact['path']}: {col['name']} {field.type}"
                assert field.nullable is not bool(col.get("required")), f"{artifact['path']}: {col['name']}"
        geometry = contract["schema"]["geometry"]["column"]
        assert schema.field(geometry).type == pa.binary()
        geo = json.loads(schema.metadata[b"geo"])
        assert geo["primary_column"] == geometry
        assert geo["columns"][geometry]["encoding"] == "WKB"
        declared = {c["name"] for c in contract["schema"]["columns"]} | {geometry, "bbox"}
        assert set(schema.names) <= declared, f"{artifact['path']}: undeclared columns"

