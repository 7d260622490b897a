"""RAW acquisition end to end in real repositories: manifests, receipts, supersession, frozen inputs, bad upstream
files, tamper detection, and moving objects between stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Runner, git
from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM
from kfm_gitops.receipts import Receipt, read_receipt
from kfm_gitops.schema import validate_data

RAW = "data/raw/ks_storm_reports"
RUNS = "releases/ks_storm_reports/runs"


def manifests(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / RAW).glob("*.json"))}


def receipts(root: Path) -> list[Receipt]:
    out = []
    for p in sorted((root / RUNS).glob("*/receipt.json")):
        r = read_receipt(p)
        assert isinstance(r, Receipt), r
        out.append(r)
    return out


def redeliver_march(root: Path) -> None:
    shutil.copytree(root / REDELIVERY / "2023-03", root / UPSTREAM / "2023-03")


def test_acquire_the_example(governed: Path, kfm: Runner) -> None:
    r = kfm("acquire", FIRST_PLAN)
    assert r.code == 0, r.out + r.err
    assert "2023-03      empty   0 object(s)" in r.out
    assert "warning: EMPTY_CHUNK: no upstream data for chunk 2023-03: a gap" in r.out
    assert r.out.splitlines()[-1] == "6 chunks acquired"
    found = manifests(governed)
    assert len(found) == 6
    head = git(governed, "rev-parse", "HEAD").strip()
    for name, data in found.items():
        doc = json.loads(data)
        assert validate_data(doc, "acquisition") == []
        assert name == f"{doc['acquisition_id']}.json"
        assert data == (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        # No time of acquisition: that lives in the receipt.
        assert datetime.now(UTC).strftime("%Y-%m-%d") not in data.decode()
        assert not any(k.endswith("_at") for k in doc)
        assert doc["terms"]["source_uri"] == f"{UPSTREAM}/TERMS.txt"
    rs = receipts(governed)
    assert len(rs) == 6
    for rec in rs:
        assert rec.data["operation"] == "acquire"
        assert rec.data["environment"]["git_commit"] == head
        assert rec.data["actor"] == {"principal": "steward@example.org", "role": "contributor"}
        assert rec.data["inputs"][0]["role"] == "terms"
        assert rec.data["validation"]["status"] in ("pass", "warn")
        assert rec.data["plan"] == FIRST_PLAN
    march = next(rec for rec in rs if rec.data["chunk"]["key"] == "2023-03")
    assert march.data["validation"]["status"] == "warn"
    # Nothing is left in staging, and the store holds every object named.
    assert list((governed / ".kfm" / "staging").iterdir()) == []
    r = kfm("raw", "verify")
    assert r.code == 0
    assert r.out == "6 acquisition manifests valid (21 object(s) re-hashed in " + str(governed / ".kfm/objects") + ")\n"


def test_the_same_acquisition_is_the_same_file_everywhere(tmp_path: Path, kfm: Runner,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from kfm_gitops.example import repository_files
    from kfm_gitops.repository import init

    results = []
    for name in ("one", "two"):
        root = tmp_path / name
        init(root, repository_files())
        monkeypatch.chdir(root)
        assert kfm("acquire", FIRST_PLAN).code == 0
        results.append(manifests(root))
    assert results[0] == results[1]


def test_changed_upstream_supersedes_and_unchanged_is_reused(governed: Path, kfm: Runner) -> None:
    assert kfm("acquire", FIRST_PLAN).code == 0
    before = manifests(governed)
    redeliver_march(governed)
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-03")
    assert r.code == 0, r.out
    assert "note: upstream delivered chunk 2023-03, which was empty in acquisition 2023-03." in r.out
    assert "HASH_MISMATCH" not in r.out  # a redelivery of what was missing is the normal case
    after = manifests(governed)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing rewritten
    new = [json.loads(v) for k, v in after.items() if k not in before]
    assert len(new) == 1
    old_march = next(json.loads(v) for v in before.values() if json.loads(v)["chunk"]["key"] == "2023-03")
    assert new[0]["supersedes"] == [old_march["acquisition_id"]]
    assert len(new[0]["objects"]) == 4
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-03", "--chunk", "2023-01")
    assert r.code == 0
    assert r.out.count(" reused ") == 2
    assert "HASH_MISMATCH" not in r.out
    assert manifests(governed) == after


def test_uncommitted_inputs_are_refused(governed: Path, kfm: Runner) -> None:
    ds = governed / "datasets/ks_storm_reports/dataset.yaml"
    ds.write_text(ds.read_text() + "# an uncommitted comment\n")
    r = kfm("acquire", FIRST_PLAN)
    assert r.code == 1
    assert "refusing to run from uncommitted inputs" in r.err
    assert ("datasets/ks_storm_reports/dataset.yaml: INPUTS_UNCOMMITTED: datasets/ks_storm_reports/dataset.yaml "
            "differs from HEAD") in r.err
    assert not (governed / RAW).exists()
    (governed / "policies/extra.rego").write_text("package kfm\n")
    git(governed, "checkout", "datasets")
    r = kfm("acquire", FIRST_PLAN)
    assert "policies/extra.rego" in r.err


def test_no_secret_reaches_a_written_file(governed: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY",
               "GITHUB_TOKEN": "ghp_0123456789abcdefSECRETSECRETSECRET",
               "KFM_PASSWORD": "correct-horse-battery-staple-42"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("CI", "true")
    assert kfm("acquire", FIRST_PLAN).code == 0
    written = [p for p in governed.rglob("*") if p.is_file() and ".git" not in p.parts]
    for p in written:
        data = p.read_bytes()
        for v in secrets.values():
            assert v.encode() not in data, f"{p} holds a secret"
    rec = receipts(governed)[0]
    assert rec.data["environment"]["ci"] == {"CI": "true", "GITHUB_RUN_ID": "4242"}
    assert rec.data["actor"]["role"] == "pipeline"


def write_pipeline(root: Path, old: str, new: str) -> None:
    path = root / "datasets/ks_storm_reports/pipeline.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    git(root, "commit", "-qam", "pipeline change")


def test_symlink_outside_the_upstream_folder(governed: Path, kfm: Runner, tmp_path: Path) -> None:
    secret = tmp_path / "outside.csv"
    secret.write_text("not upstream data\n")
    (governed / UPSTREAM / "2023-01" / "zz-link.csv").symlink_to(secret)
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-01", "--chunk", "2023-02")
    assert r.code == 1
    assert "SOURCE_OUTSIDE: 2023-01/zz-link.csv links outside the upstream folder" in r.out
    assert "2023-01      FAILED" in r.out
    names = [json.loads(v)["chunk"]["key"] for v in manifests(governed).values()]
    assert names == ["2023-02"]  # the failed chunk wrote no manifest; the good one did
    failed = next(rec for rec in receipts(governed) if rec.data["chunk"]["key"] == "2023-01")
    assert failed.data["validation"]["status"] == "fail"
    assert failed.data["outputs"] == []


@pytest.mark.parametrize(("change", "code"), [
    # the contract's check (PIPELINE_PATH, tests/test_dataset.py) refuses a root or pattern that leaves its
    # folder before any connector runs
    (("root: upstream/ks_storm_reports", "root: ../elsewhere"), "PLAN_DATASET_INVALID"),
    (('pattern: "{year}-{month}/*.csv"', 'pattern: "../{year}-{month}/*.csv"'), "PLAN_DATASET_INVALID"),
    (("root: upstream/ks_storm_reports", "root: upstream/nothing_here"), "SOURCE_MISSING"),
    (('pattern: "{year}-{month}/*.csv"', 'pattern: "{year}-{month}/*.csv"\n    max_bytes: 100'), "FILE_TOO_LARGE"),
    (('pattern: "{year}-{month}/*.csv"', 'pattern: "{year}-{mnth}/*.csv"'), "PLAN_DATASET_INVALID"),
    (('pattern: "{year}-{month}/*.csv"', 'pattern: "{year}-{month}/*.csv"\n    max_bytes: lots'), "CONNECTOR_PARAMS"),
    (('pattern: "{year}-{month}/*.csv"', 'pattern: "{year}-{month}/*.csv"\n    recursive: true'), "CONNECTOR_PARAMS"),
])
def test_bad_connector_parameters(governed: Path, kfm: Runner, change: tuple[str, str], code: str) -> None:
    write_pipeline(governed, *change)
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 1
    assert f": {code}: " in r.out + r.err, r.out + r.err
    assert not (governed / RAW).exists()


def test_empty_upstream_file(governed: Path, kfm: Runner) -> None:
    (governed / UPSTREAM / "2023-01" / "reports-empty.csv").write_bytes(b"")
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 1
    assert "SOURCE_EMPTY: reports-empty.csv is empty" in r.out.replace("2023-01/", "")


def test_missing_terms_stop_everything(governed: Path, kfm: Runner) -> None:
    (governed / UPSTREAM / "TERMS.txt").unlink()
    git(governed, "commit", "-qam", "lose the terms")
    r = kfm("acquire", FIRST_PLAN)
    assert r.code == 1
    assert "no licence or terms snapshot: nothing is acquired without one" in r.err
    assert "TERMS_MISSING" in r.err
    assert not (governed / RAW).exists()


def test_unknown_chunk_is_a_usage_error(governed: Path, kfm: Runner) -> None:
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2024-01")
    assert r.code == 2
    assert "no chunk 2024-01 in this plan" in r.err


def test_raw_verify_names_corrupt_and_missing_objects(governed: Path, kfm: Runner) -> None:
    assert kfm("acquire", FIRST_PLAN).code == 0
    doc = json.loads((governed / RAW).glob("2023-01.*.json").__next__().read_text())
    corrupt, missing = doc["objects"][0], doc["objects"][1]
    objects = governed / ".kfm/objects/sha256"
    path = objects / corrupt["digest"][7:9] / corrupt["digest"][7:]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01  # flip one bit
    path.write_bytes(bytes(data))
    (objects / missing["digest"][7:9] / missing["digest"][7:]).unlink()
    for jobs in ("1", "2"):
        r = kfm("raw", "verify", "ks_storm_reports", "--jobs", jobs)
        assert r.code == 1
        lines = r.out.splitlines()
        assert any(f"HASH_MISMATCH: {corrupt['name']} ({corrupt['digest']}) is corrupt" in line for line in lines)
        assert any(f"OBJECT_MISSING: 1 object(s) named by 1 acquisition manifest are not in the store "
                   f"{governed / '.kfm/objects'} (the first: {missing['name']} {missing['digest']})" in line
                   for line in lines)
        assert lines[-1].startswith("6 acquisition manifests checked, 2 errors")


def test_raw_verify_catches_edited_manifests(governed: Path, kfm: Runner) -> None:
    assert kfm("acquire", FIRST_PLAN).code == 0
    path = next((governed / RAW).glob("2023-02.*.json"))
    doc = json.loads(path.read_text())
    doc["objects"][0]["digest"] = doc["objects"][1]["digest"]
    path.write_text(json.dumps(doc))
    other = next((governed / RAW).glob("2023-04.*.json"))
    doc = json.loads(other.read_text())
    doc["objects"][0]["source_uri"] = "../../../etc/passwd"
    other.write_text(json.dumps(doc))
    r = kfm("raw", "verify")
    assert r.code == 1
    assert f"{RAW}/{path.name}: MANIFEST_TAMPERED: its content gives id" in r.out
    assert f"{RAW}/{other.name}: MANIFEST_PATH_OUTSIDE: '../../../etc/passwd' names a path outside" in r.out
    assert f"{RAW}/{other.name}: MANIFEST_TAMPERED" in r.out  # every field is part of the id


def test_raw_verify_with_nothing_to_verify_fails(governed: Path, kfm: Runner) -> None:
    r = kfm("raw", "verify")
    assert r.code == 1
    assert r.out.startswith("no acquisition manifest checked: nothing to validate is a failure")


def test_store_push_and_pull(governed: Path, kfm: Runner) -> None:
    remote = f"memory://kfm-shared-{uuid.uuid4().hex}"
    assert kfm("acquire", FIRST_PLAN).code == 0
    r = kfm("store", "push", "ks_storm_reports", "--to", remote)
    assert r.code == 0
    assert r.out.startswith("push: 21 object(s) copied, 0 already there")
    shutil.rmtree(governed / ".kfm/objects")
    assert kfm("raw", "verify").code == 1
    r = kfm("store", "pull", "--from", remote)
    assert r.out.startswith("pull: 21 object(s) copied, 0 already there")
    assert kfm("raw", "verify").code == 0
    # The store can also be named for a command, or by KFM_STORE: raw verify against the remote itself.
    assert kfm("raw", "verify", "--store", remote).code == 0


def test_concurrent_acquisitions_take_turns(governed: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "kfm"), "acquire", FIRST_PLAN], cwd=governed,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(manifests(governed)) == 6
    assert len(receipts(governed)) == 12
    assert sum(out.count(" reused ") for out, _ in outs) == 6  # whichever ran second reused every acquisition


def test_operational_params_do_not_change_the_acquisition(governed: Path, kfm: Runner) -> None:
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    before = manifests(governed)
    write_pipeline(governed, 'pattern: "{year}-{month}/*.csv"', 'pattern: "{year}-{month}/*.csv"\n    max_bytes: 99999')
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 0
    assert " reused " in r.out
    assert manifests(governed) == before


def test_an_html_page_in_place_of_a_csv_is_refused(governed: Path, kfm: Runner) -> None:
    page = b"\xef\xbb\xbf\n  <!DOCTYPE html><html><body>Service unavailable</body></html>\n"
    (governed / UPSTREAM / "2023-01" / "reports-2023-01-29.csv").write_bytes(page)
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 1
    assert ("UPSTREAM_ERROR_PAGE: 2023-01/reports-2023-01-29.csv is an HTML page, not text/csv data" in r.out
            .replace(f"{UPSTREAM}/", "")), r.out
    assert not (governed / RAW).exists()


def test_receipts_say_the_same_wherever_kfm_runs(governed: Path, kfm: Runner,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(governed.parent)  # run from outside the repository
    assert kfm("acquire", f"{governed.name}/{FIRST_PLAN}", "--chunk", "2023-03").code == 0
    (receipt,) = [json.loads(p.read_text()) for p in (governed / "releases").rglob("receipt.json")]
    paths = [f["path"] for f in receipt["validation"]["findings"] if "path" in f]
    assert paths and all(p.startswith("data/raw/ks_storm_reports/2023-03.") for p in paths), paths


def test_the_container_digest_is_recorded_when_given(governed: Path, kfm: Runner,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from kfm_gitops.receipts import CONTAINER_ENV

    image = "sha256:" + "ab" * 32
    monkeypatch.setenv(CONTAINER_ENV, image)
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    (receipt,) = [json.loads(p.read_text()) for p in (governed / "releases").rglob("receipt.json")]
    assert receipt["environment"]["container_digest"] == image
    monkeypatch.setenv(CONTAINER_ENV, "latest")
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-02")
    assert r.code == 1
    assert r.err.startswith(f"kfm: {CONTAINER_ENV}: ")
    assert not list((governed / "data" / "raw").rglob("2023-02.*.json"))


def test_a_connector_plugin_is_found_by_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from kfm_gitops import connectors

    class Plugin:
        name = "plugin"

    class EntryPoint:
        name = "plugin"

        def load(self) -> type[Plugin]:
            return Plugin

    def entry_points(group: str) -> list[EntryPoint]:
        return [EntryPoint()] if group == "kfm_gitops.connectors" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert isinstance(connectors.get("plugin"), Plugin)
    with pytest.raises(Exception, match="no connector named 'nothing'"):
        connectors.get("nothing")
