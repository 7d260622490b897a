"""Evidence that is there already is checked, not trusted, as a user meets it: a version folder edited before it is
committed is refused, naming the file that differs from what kfm would write; a run folder's qa.json that is not
JSON is a finding at its line and column (exit 1); a plan whose committed expected_dataset_version_id differs from
what a run gives stops the roll-up, naming both ids."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import SLUG, Runner, commit_all, version_of
from kfm_gitops.example import FIRST_PLAN, UPSTREAM


def folder_of(root: Path) -> Path:
    return root / "releases" / SLUG / version_of(root)


@pytest.mark.parametrize(("name", "edit", "why"), [
    ("checksums.json", lambda t: t.replace('"partition": "2023-06"', '"partition": "2023-07"'),
     "its artifacts or their digests"),
    ("promotion-manifest.json", lambda t: t.replace('"policy_label": "public"', '"policy_label": "internal"'),
     "its content (partitions, artifacts, spec_hash, label or obligations)"),
    ("receipt.json", lambda t: t.replace('"status":"pass"', '"status":"warn"'),
     "it is not this version's roll-up receipt"),
    ("runs.json", lambda t: t.replace('"carried": []', '"carried": ["2022-12"]'),
     "its digests of runs.json and qa.json"),
])
def test_an_edited_version_folder_is_refused_naming_the_file(governed: Path, kfm: Runner, name: str,
                                                             edit: object, why: str) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    folder = folder_of(governed)
    path = folder / name
    text = path.read_text()
    edited = edit(text)  # type: ignore[operator]
    assert edited != text
    path.write_text(edited)
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1, r.out
    shown = (folder / (name if name != "runs.json" else "promotion-manifest.json")).relative_to(governed).as_posix()
    assert (f"{shown}: VERSION_DIFFERS: {why}: it differs from what kfm would write (hint: version folders are "
            f"written once and never edited: restore it with `git checkout HEAD -- "
            f"{folder.relative_to(governed).as_posix()}`, or, if it was never committed, remove the folder and run "
            "again)") in r.out.splitlines()
    assert "exists already" not in r.out
    shutil.rmtree(folder)  # the hint's way out
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    assert (folder / name).read_text() != edited


def test_a_run_folder_qa_file_that_is_not_json_is_a_located_finding(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    qa = next((governed / "releases" / SLUG / "runs").glob("*.2023-02.*/qa.json"))
    qa.write_text(qa.read_text().replace('"rows": {', '"rows" {', 1))
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1
    rel = qa.relative_to(governed).as_posix()
    line = next(i for i, text in enumerate(qa.read_text().splitlines(), 1) if '"rows" {' in text)
    assert r.err.splitlines()[:2] == [
        f"kfm: the run {qa.parent.name} cannot be reused",
        f"  {rel}:{line}:10: RUN_INVALID: not JSON: Expecting ':' delimiter (hint: run folders are never edited: "
        f"restore it with `git checkout HEAD -- {qa.parent.relative_to(governed).as_posix()}`, or, if the run was "
        "never committed, remove its folder and run again)"]
    assert "internal error" not in r.err


def test_a_committed_expected_id_that_differs_from_the_result_stops_the_roll_up(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    v1 = version_of(governed)
    commit_all(governed, "first release")
    csv = sorted((governed / UPSTREAM / "2023-01").glob("*.csv"))[0]
    csv.write_bytes(csv.read_bytes().replace(b"Sedgwick", b"Zedgwick"))
    commit_all(governed, "upstream rewrote January")
    plan_before = (governed / FIRST_PLAN).read_text()
    versions_before = sorted(p.name for p in (governed / "releases" / SLUG).iterdir())
    r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01", "--force")
    assert r.code == 1
    finding = next(line for line in r.out.splitlines() if "ROLLUP_ID_DIFFERS" in line)
    line = next(i for i, t in enumerate(plan_before.splitlines(), 1) if "expected_dataset_version_id" in t)
    assert re.fullmatch(
        rf"{FIRST_PLAN}:{line}:[0-9]+: ROLLUP_ID_DIFFERS: this run gives version "
        r"2023-06\.[0-9a-f]{8}\.[0-9a-f]{8}, "
        rf"but the plan's committed expected_dataset_version_id is {re.escape(v1)} \(hint: a plan reproduces the "
        r"version it was rolled up into, .*\)", finding), finding
    assert (governed / FIRST_PLAN).read_text() == plan_before
    assert sorted(p.name for p in (governed / "releases" / SLUG).iterdir()) == versions_before
    doc = json.loads(kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01", "--force", "--format",
                         "json").out)
    assert (doc["ok"], doc["version"]) == (False, None)
    assert [f["code"] for f in doc["findings"]][-1] == "ROLLUP_ID_DIFFERS"
