"""The backfill run end to end: the gap filled, the bad batch quarantined, determinism, resumption, recovery from
kill -9, a matrix run on two clones sharing a store, and the quickstart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT_ENV, PROJECT, Runner, commit_all, gap_plan, git, version_of
from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM

SLUG = "ks_storm_reports"
KFM = str(Path(sys.executable).parent / "kfm")


def manifest(root: Path, version: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((root / "releases" / SLUG / version / "promotion-manifest.json").read_text())
    return doc


def run_folders(root: Path) -> list[str]:
    base = root / "releases" / SLUG / "runs"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def test_first_release_then_gap_fill(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0, r.out + r.err
    assert "note: gap: partition 2023-03 has no data in this window" in r.out
    v1 = version_of(governed)
    m1 = manifest(governed, v1)
    assert [p["partition"] for p in m1["partitions"]] == ["2023-01", "2023-02", "2023-04", "2023-05", "2023-06"]  # type: ignore[attr-defined]
    assert m1["base_dataset_version_id"] is None
    assert v1.startswith("2023-06.") and v1.split(".")[1] == kfm("dataset", "hash", SLUG).out.strip()[7:15]
    commit_all(governed, "first release")
    shutil.copytree(governed / REDELIVERY / "2023-03", governed / UPSTREAM / "2023-03")
    rel = gap_plan(governed, v1)
    commit_all(governed, "redelivery and gap plan")
    r = kfm("backfill", "run", rel, "--yes")
    assert r.code == 0, r.out + r.err
    assert "2023-03      done (120/129 rows, 9 quarantined)" in r.out
    v2 = version_of(governed, rel)
    m2 = manifest(governed, v2)
    assert m2["base_dataset_version_id"] == v1
    parts = {p["partition"]: p["processed"] for p in m2["partitions"]}  # type: ignore[attr-defined]
    assert sorted(parts) == ["2023-01", "2023-02", "2023-03", "2023-04", "2023-05", "2023-06"]
    carried = {p["partition"]: p["processed"] for p in m1["partitions"]}  # type: ignore[attr-defined]
    assert all(parts[k] == v for k, v in carried.items())  # the base's partitions, unchanged
    runs = json.loads((governed / "releases" / SLUG / v2 / "runs.json").read_text())
    assert runs["carried"] == ["2023-01", "2023-02", "2023-04", "2023-05", "2023-06"]
    assert [r["chunk"] for r in runs["runs"]] == ["2023-03"]
    # The version id recomputes from the manifest alone.
    from kfm_gitops.identity import PartitionContent, dataset_version_id

    contents = [PartitionContent(p["partition"], p["processed"], tuple(p["raw"])) for p in m2["partitions"]]  # type: ignore[attr-defined]
    assert dataset_version_id(str(m2["spec_hash"]), contents) == v2
    receipt = json.loads((governed / "releases" / SLUG / v2 / "receipt.json").read_text())
    assert receipt["operation"] == "rollup" and receipt["dataset_version_id"] == v2


def test_rerun_reuses_everything(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    folders = run_folders(governed)
    v1 = version_of(governed)
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")  # the reused artifacts are checked: tests/test_reuse.py
    assert r.code == 0, r.out + r.err
    import re

    assert len(re.findall(r"^  2023-0[1-6]\s+reused", r.out, re.M)) == 6
    assert run_folders(governed) == folders
    assert version_of(governed) == v1
    r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--force", "--chunk", "2023-02")
    assert r.code == 0
    assert len(run_folders(governed)) == len(folders) + 1
    assert version_of(governed) == v1  # the same bytes again


def test_two_directories_give_the_same_version(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfm_gitops.example import repository_files
    from kfm_gitops.repository import init

    out = []
    for name in ("one", "two"):
        root = tmp_path / name
        init(root, repository_files())
        monkeypatch.chdir(root)
        assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
        v = version_of(root)
        out.append((v, (root / "releases" / SLUG / v / "checksums.json").read_bytes(),
                    sorted(p.read_bytes() for p in (root / "data/raw" / SLUG).glob("*.json"))))
    assert out[0] == out[1]


def test_dry_run_writes_nothing_and_dry_run_first_asks(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "run", FIRST_PLAN, "--dry-run")
    assert r.code == 0
    assert r.out.splitlines()[0] == "dry run: 6 chunk(s); nothing is written"
    assert "source upstream/ks_storm_reports/2023-03/*.csv" in r.out
    assert git(governed, "status", "--porcelain") == ""
    r = kfm("backfill", "run", FIRST_PLAN)  # dry_run_first: true, and no terminal to confirm on
    assert r.code == 1
    assert "not run: the plan asks for a dry run first; pass --yes to run" in r.err
    assert git(governed, "status", "--porcelain") == ""


def test_a_chunk_quarantined_whole_blocks_the_rollup(governed: Path, kfm: Runner) -> None:
    for f in (governed / UPSTREAM / "2023-02").glob("*.csv"):
        f.write_text(f.read_text().replace("Z,", ","))
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1
    assert "ROLLUP_BLOCKED: no version: chunk(s) 2023-02 (quarantined) did not pass" in r.out
    assert "<to-be-computed>" in (governed / FIRST_PLAN).read_text()
    assert not [p for p in (governed / "releases" / SLUG).iterdir() if p.name != "runs"]


def test_matrix(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "matrix", FIRST_PLAN)  # the plan's max_parallelism: 2
    assert json.loads(r.out) == {"include": [{"shard": "1/2", "chunks": "2023-01 2023-02 2023-03"},
                                             {"shard": "2/2", "chunks": "2023-04 2023-05 2023-06"}]}
    r = kfm("backfill", "matrix", FIRST_PLAN, "--shards", "4")
    assert [s["chunks"] for s in json.loads(r.out)["include"]] == [
        "2023-01 2023-02", "2023-03 2023-04", "2023-05", "2023-06"]
    r = kfm("backfill", "matrix", FIRST_PLAN, "--shards", "9")  # never more shards than chunks
    assert [s["chunks"] for s in json.loads(r.out)["include"]] == [f"2023-0{m}" for m in range(1, 7)]


def test_ten_thousand_chunks_fit_a_matrix_of_256() -> None:
    from kfm_gitops.backfill import matrix

    keys = [f"k{i:05d}" for i in range(10_000)]
    shards = matrix(keys, 300)["include"]
    sizes = [len(s["chunks"].split()) for s in shards]
    assert len(shards) == 256 and sum(sizes) == 10_000 and max(sizes) - min(sizes) <= 1
    assert " ".join(s["chunks"] for s in shards).split() == keys  # each chunk once, in order
    assert shards[0]["shard"] == "1/256" and shards[-1]["shard"] == "256/256"


def test_matrix_run_on_two_clones_sharing_a_store(governed: Path, tmp_path: Path, kfm: Runner,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shared = str(tmp_path / "shared-store")
    clones = []
    for name in ("machine-a", "machine-b"):
        dest = tmp_path / name
        git(tmp_path, "clone", "-q", str(governed), str(dest))
        clones.append(dest)
    for dest, keys in zip(clones, (["2023-01", "2023-02", "2023-03"], ["2023-04", "2023-05", "2023-06"]),
                          strict=True):
        monkeypatch.chdir(dest)
        args = [a for k in keys for a in ("--chunk", k)]
        r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--store", shared, *args)
        assert r.code == 0, r.out + r.err
        assert "not rolled up" in r.out
    # The roll-up job collects the evidence of both (as CI artifacts would) and assembles the version.
    a, b = clones
    shutil.copytree(a / "releases", b / "releases", dirs_exist_ok=True)
    shutil.copytree(a / "data", b / "data", dirs_exist_ok=True)
    monkeypatch.chdir(b)
    r = kfm("backfill", "rollup", FIRST_PLAN, "--store", shared)
    assert r.code == 0, r.out + r.err
    monkeypatch.chdir(governed)
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    assert version_of(b) == version_of(governed)
    v = version_of(b)
    assert (b / "releases" / SLUG / v / "checksums.json").read_bytes() == \
        (governed / "releases" / SLUG / v / "checksums.json").read_bytes()


def test_recovery_after_kill_9(governed: Path, tmp_path: Path) -> None:
    """Killed in the middle of a run, run again: the result equals an uninterrupted run, and nothing half-written is
    visible in between."""
    # A bigger January so that there is a middle to kill the run in.
    jan = governed / UPSTREAM / "2023-01"
    header, *rows = (jan / "reports-2023-01-01.csv").read_text().splitlines()
    big = [header] + [r.replace("KS-202301-", f"KS-2023{i:05d}-") for i in range(3000) for r in rows]
    (jan / "reports-2023-01-01.csv").write_text("\n".join(big) + "\n")
    commit_all(governed, "bigger January")
    twin = tmp_path / "twin"
    git(tmp_path, "clone", "-q", str(governed), str(twin))
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.Popen([KFM, "backfill", "run", FIRST_PLAN, "--yes", "--jobs", "1"], cwd=governed, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = governed / ".kfm" / "staging"
    deadline = time.monotonic() + 60
    while not list(staging.glob("*.work")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until a chunk is being processed
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed in its middle"
    assert "<to-be-computed>" in (governed / FIRST_PLAN).read_text()  # killed before any roll-up
    # Whatever is visible is whole: every run folder has its receipt; no version exists without its manifest.
    runs = governed / "releases" / SLUG / "runs"
    for folder in runs.glob("*") if runs.exists() else []:
        assert (folder / "receipt.json").is_file()
    done = subprocess.run([KFM, "backfill", "run", FIRST_PLAN, "--yes"], cwd=governed, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    straight = subprocess.run([KFM, "backfill", "run", FIRST_PLAN, "--yes"], cwd=twin, env=env, capture_output=True,
                              text=True)
    assert straight.returncode == 0, straight.stdout + straight.stderr
    assert version_of(governed) == version_of(twin)
    assert list((governed / ".kfm" / "staging").iterdir()) == []  # the killed run's leftovers are gone
    v = version_of(twin)
    assert (governed / "releases" / SLUG / v / "checksums.json").read_bytes() == \
        (twin / "releases" / SLUG / v / "checksums.json").read_bytes()


def test_quickstart(tmp_path: Path, kfm: Runner) -> None:
    r = kfm("quickstart", str(tmp_path / "qs"))
    assert r.code == 0, r.out + r.err
    lines = r.out.splitlines()
    assert lines[0] == f"1. A governed repository in {tmp_path / 'qs'}, with the example dataset ks_storm_reports"
    assert "     gap: partition 2023-03 has no data in this window" in lines
    assert any("2023-03: done (120 of 129 rows, 9 quarantined)" in line for line in lines)
    root = tmp_path / "qs"
    assert git(root, "status", "--porcelain") == ""
    log = git(root, "log", "--first-parent", "--format=%s", "main").splitlines()
    assert log[-1] == "kfm quickstart: governed repository with the example dataset"
    assert [line.split(":")[0] for line in log[:-1]] == [
        "Merge plan PR plan/" + log[0].split("plan/")[1].split(":")[0], "Merge plan PR plan/"
        + log[1].split("plan/")[1].split(":")[0], "Upstream redelivery of 2023-03",
        "Merge plan PR plan/backfill-20230705-0c1d2e"]
    assert all("Approved-by: steward steward-kim" in git(root, "log", "-1", "--format=%B", f"main~{i}")
               for i in (0, 1, 3))
    # The release story: first release, the gap's version, then a rollback to the first; the ledger verifies.
    events = [json.loads(ln) for ln in git(root, "show", f"release:releases/{SLUG}/ledger.jsonl").splitlines()]
    assert [e["event_type"] for e in events] == ["promotion", "promotion", "rollback"]
    assert events[0]["subject"]["dataset_version_id"] == events[2]["subject"]["dataset_version_id"]
    assert all(e["gates"] == {g: "passed" for g in "ABCDEFG"} for e in events)
    assert git(root, "rev-parse", f"published/{SLUG}") == git(root, "rev-parse", "release")
    assert git(root, "tag", "--list", f"datasets/{SLUG}/*").split() == sorted(
        f"datasets/{SLUG}/{e['subject']['dataset_version_id']}" for e in events[:2])
    assert kfm("quickstart", str(root)).code == 1  # not on a used folder
    again = tmp_path / "qs2"
    assert kfm("quickstart", str(again)).code == 0
    versions = sorted(p.name for p in (root / "releases" / SLUG).iterdir() if p.name != "runs")
    assert versions == sorted(p.name for p in (again / "releases" / SLUG).iterdir() if p.name != "runs")
    assert len(versions) == 3
    assert any(line.endswith("coordinates have at most 1 decimal(s); absent columns: source") for line in lines)
    assert kfm("plan", "validate", str(root / "plans")).code == 1  # a folder is not a plan
    import glob

    r = kfm("plan", "validate", *sorted(glob.glob(str(root / "plans" / SLUG / "*.yml"))))
    assert (r.code, r.out.splitlines()[-1]) == (0, "3 plans valid"), r.out  # no warning on plans already rolled up
    assert "PLAN_PRIOR_VERSION" not in r.out
    assert ("   9 bad records in QUARANTINE: 1 DUPLICATE_ID, 2 GEOMETRY_INVALID, 1 GEOMETRY_OVERPRECISE, "
            "1 OUT_OF_EXTENT, 1 OUT_OF_WINDOW, 3 SCHEMA_INVALID") in lines
    assert not any("HASH_MISMATCH" in line for line in lines)  # a redelivery is the normal case: a note
    assert any(line.startswith("     upstream delivered chunk 2023-03, which was empty in acquisition 2023-03.")
               for line in lines)
    # the README quotes these ids as the ones every machine gets: they must be the real ones
    readme = (PROJECT / "README.md").read_text()
    for version in versions:
        assert f"`{version}`" in readme, f"README does not name the quickstart's version {version}"
    for manifest in (root / "data" / "raw" / SLUG).glob("2023-0[13].*.json"):
        if manifest.stem.startswith("2023-01") or json.loads(manifest.read_text())["objects"] == []:
            assert f"data/raw/{SLUG}/{manifest.name}" in readme, f"README does not name {manifest.name}"


def test_store_push_and_pull_a_version_folder(governed: Path, tmp_path: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    folder = f"releases/{SLUG}/{version_of(governed)}"
    shared = str(tmp_path / "shared")
    r = kfm("store", "push", folder, "--to", shared)
    assert r.code == 0
    # 5 partitions, the 20 RAW objects they were made from and the terms snapshot those were acquired under
    assert r.out.startswith("push: 26 object(s) copied, 0 already there")
    r = kfm("raw", "verify", "--store", shared)  # a store that received the version verifies the RAW zone
    assert r.code == 0, r.out
    r = kfm("store", "push", "releases/nothing-here", "--to", shared)
    assert r.code == 1
    assert "is neither a dataset slug nor a version folder" in r.err


def test_ctrl_c_during_the_roll_up_lands_the_version_and_the_plan_id_together(
        governed: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    import kfm_gitops.backfill as bf

    real = bf.set_expected_version  # type: ignore[attr-defined]  # the name the roll-up calls

    def interrupted_first(path: Path, version: str) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the version folder, before the plan's id
        real(path, version)

    monkeypatch.setattr(bf, "set_expected_version", interrupted_first)
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 130
    version = version_of(governed)  # the plan got its id although Ctrl-C came first
    assert (governed / "releases" / SLUG / version / "promotion-manifest.json").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored


def test_interrupts_are_held_back_and_then_delivered() -> None:
    from kfm_gitops._fs import interrupts_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("after the signal")
    assert steps == ["after the signal"]


def test_a_plan_kfm_cannot_update_stops_the_roll_up_before_the_version_lands(
        governed: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    plans = (governed / FIRST_PLAN).parent.resolve()
    real = tempfile.mkstemp
    read_only = [True]

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if read_only[0] and Path(kwargs.get("dir", "")).resolve() == plans:
            raise PermissionError(13, "Permission denied", str(plans))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1
    assert f"Permission denied: {plans}" in r.err
    assert sorted(p.name for p in (governed / "releases" / SLUG).iterdir()) == ["runs"]  # no version folder
    read_only[0] = False
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0, r.err  # once it can, the runs are reused and rolled up
    assert (governed / "releases" / SLUG / version_of(governed)).is_dir()
