"""The plan-to-run loop as a user meets it: a run of an uncommitted plan is refused before anything is printed,
naming the files and giving the one git command that commits them (which works as given); a run ends with its
summary (chunks by state, rows in, out and quarantined by reason, the version, the time); the README shows the
commit step."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import GIT_ENV, PROJECT, SLUG, Runner, commit_all, gap_plan, git, version_of
from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM


def new_plan(kfm: Runner) -> str:
    r = kfm("plan", "new", SLUG, "--window", "2023-05-01T00:00:00Z/2023-07-01T00:00:00Z", "--chunking", "monthly",
            "--reason", "May and June again", "--reviewer", "steward-kim")
    assert r.code == 0, r.err
    return r.out.splitlines()[0].removeprefix("wrote ")


def test_an_uncommitted_plan_is_refused_before_the_header_with_the_git_command(governed: Path, kfm: Runner) -> None:
    import os

    rel = new_plan(kfm)
    r = kfm("backfill", "run", rel, "--yes")
    assert (r.code, r.out) == (1, "")  # no header, no dry run, nothing written
    command = f"git add {rel} && git commit -m 'Backfill plan {Path(rel).stem}'"
    assert r.err.splitlines() == [
        "kfm: refusing to run from uncommitted inputs: a run that cannot be reproduced cannot be promoted",
        f"  {rel}: INPUTS_UNCOMMITTED: {rel} differs from HEAD (hint: commit it (or restore it) before a real run)",
        f"  hint: commit them first: {command}"]
    assert not (governed / "releases").exists() or not any((governed / "releases").rglob("receipt.json"))
    first = governed / FIRST_PLAN  # a plan that asks for a dry run first is checked before its dry run too
    first.write_text(first.read_text().replace("January to June 2023", "January to June"))
    r = kfm("backfill", "run", FIRST_PLAN)
    assert (r.code, r.out) == (1, "")
    assert f"  hint: commit them first: git add {FIRST_PLAN} && git commit -m " in r.err
    git(governed, "checkout", "--", FIRST_PLAN)
    done = subprocess.run(["sh", "-c", command], cwd=governed, env={**os.environ, **GIT_ENV}, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    r = kfm("backfill", "run", rel, "--yes")
    assert r.code == 0, r.out + r.err
    assert r.out.startswith(f"backfill {SLUG}: 2 chunk(s)")


def test_a_run_ends_with_its_summary(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0
    v1 = version_of(governed)
    lines = r.out.splitlines()
    assert re.fullmatch(rf"summary: 6 chunk\(s\): 5 done, 1 empty, 0 reused, 0 failed; version {re.escape(v1)}; "
                        r"[0-9]+\.[0-9] s", lines[-2]), lines[-2]
    assert lines[-1] == "         rows: 600 in, 600 out, 0 quarantined"
    commit_all(governed, "first release")
    import shutil

    shutil.copytree(governed / REDELIVERY / "2023-03", governed / UPSTREAM / "2023-03")
    rel = gap_plan(governed, v1)
    commit_all(governed, "gap plan")
    r = kfm("backfill", "run", rel, "--yes", "--format", "json")
    import json

    summary = json.loads(r.out)["summary"]
    assert summary["chunks"] == {"done": 1, "empty": 0, "reused": 0, "failed": 0, "quarantined": 0, "pending": 0}
    assert summary["rows"] == {"in": 129, "out": 120, "quarantined": 9}
    assert summary["quarantine"] == {"DUPLICATE_ID": 1, "GEOMETRY_INVALID": 2, "GEOMETRY_OVERPRECISE": 1,
                                     "OUT_OF_EXTENT": 1, "OUT_OF_WINDOW": 1, "SCHEMA_INVALID": 3}
    assert summary["version"] == version_of(governed, rel)
    again = kfm("backfill", "run", rel, "--yes").out.splitlines()
    assert again[-1] == ("         rows: 129 in, 120 out, 9 quarantined (1 DUPLICATE_ID, 2 GEOMETRY_INVALID, "
                         "1 GEOMETRY_OVERPRECISE, 1 OUT_OF_EXTENT, 1 OUT_OF_WINDOW, 3 SCHEMA_INVALID)")
    assert again[-2].startswith("summary: 1 chunk(s): 0 done, 0 empty, 1 reused, 0 failed; version ")


def test_the_readme_plan_section_shows_the_commit_step() -> None:
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("## A backfill plan, step by step", 1)[1].split("\n## ", 1)[0]
    assert "$ git add plans/ks_storm_reports/" in section and "git commit" in section
    assert section.index("git commit") < section.index("kfm backfill run")
