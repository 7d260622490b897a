"""The evidence hooks for real: pre-commit installed in a governed repository lets a backfill's evidence in (every
manifest and receipt validated on the way), then refuses a commit that deletes or edits it; `kfm manifest validate`
finds each kind of damage at its file without a store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_precommit import hook_env

from conftest import Runner, git
from kfm_gitops.example import FIRST_PLAN

SLUG = "ks_storm_reports"
VERSION = f"releases/{SLUG}/2023-06.69a8eb0e.7df9ce5a"


def commit(root: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "commit", "-m", message], cwd=root, env=env, capture_output=True, text=True)


@pytest.fixture
def hooked(governed: Path, kfm: Runner, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The example's first release committed through the hooks (which validate every file of it)."""
    env = hook_env(tmp_path)
    subprocess.run([str(Path(sys.executable).parent / "pre-commit"), "install"], cwd=governed, env=env, check=True,
                   capture_output=True)
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    git(governed, "add", "-A")
    done = commit(governed, env, "Evidence: first release")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kfm manifest validate" in done.stdout + done.stderr
    return governed, env


def test_the_hook_refuses_a_commit_that_deletes_or_edits_evidence(hooked: tuple[Path, dict[str, str]]) -> None:
    root, env = hooked
    qa = f"{VERSION}/qa.json"
    git(root, "rm", "-q", qa)
    (root / "NOTES.md").write_text("new files are fine\n")
    git(root, "add", "NOTES.md")
    done = commit(root, env, "tidy")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert (f"{qa}: EVIDENCE_ALTERED: the change deletes {qa}, committed evidence (hint: evidence is append-only: new "
            f"files with new names, never edits or deletions: restore it (`git checkout HEAD -- {qa}`))") in output
    git(root, "checkout", "HEAD", "--", qa)
    raw = sorted((root / "data/raw" / SLUG).glob("*.json"))[0]
    raw.write_text(raw.read_text().replace('"csv"', '"tsv"'))
    git(root, "add", "-A")
    done = commit(root, env, "tidy")
    assert done.returncode != 0
    assert f"EVIDENCE_ALTERED: the change edits {raw.relative_to(root).as_posix()}, committed evidence" in \
        done.stdout + done.stderr
    git(root, "checkout", "HEAD", "--", raw.relative_to(root).as_posix())
    done = commit(root, env, "notes only")
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_append_only_on_the_command_line(hooked: tuple[Path, dict[str, str]], kfm: Runner) -> None:
    root, _ = hooked
    r = kfm("evidence", "check-append-only")
    assert (r.code, r.out) == (0, "no evidence staged\n")
    (root / VERSION / "catalog" / "extra.json").write_text("{}\n")
    git(root, "add", "-A")
    r = kfm("evidence", "check-append-only", "--format", "json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert [f["code"] for f in doc["findings"]] == ["EVIDENCE_ALTERED"]
    assert doc["findings"][0]["message"] == (f"the change adds {VERSION}/catalog/extra.json to {VERSION}, committed "
                                             "evidence (a run or version folder is written once)")


def test_manifest_validate_finds_each_kind_of_damage(hooked: tuple[Path, dict[str, str]], kfm: Runner) -> None:
    root, _ = hooked
    runs = root / "releases" / SLUG / "runs"
    files = [f"{VERSION}/promotion-manifest.json", f"{VERSION}/receipt.json",
             *sorted(p.relative_to(root).as_posix() for p in (root / "data/raw" / SLUG).glob("*.json")),
             *sorted(p.relative_to(root).as_posix() for p in runs.glob("*/receipt.json"))]
    r = kfm("manifest", "validate", *files)
    assert (r.code, r.out) == (0, f"{len(files)} files valid\n")
    manifest = root / VERSION / "promotion-manifest.json"
    doc = json.loads(manifest.read_text())
    doc["artifacts"].pop(0)
    manifest.write_text(json.dumps(doc, indent=2))
    receipt = root / files[-1]
    receipt.write_text(json.dumps(json.loads(receipt.read_text()), indent=1))
    raw = root / files[2]
    raw.write_text(raw.read_text().replace('"csv"', '"tsv"'))
    r = kfm("manifest", "validate", *files, "README.md")
    assert r.code == 1
    lines = r.out.splitlines()
    assert f"{VERSION}/promotion-manifest.json: MANIFEST_INCOMPLETE: the promotion manifest: partition 2023-01 has " \
           "no entry in artifacts" in r.out
    assert any(line.startswith(f"{VERSION}/promotion-manifest.json: MANIFEST_ALTERED: promotion-manifest.json is not "
                               "the file the roll-up wrote") for line in lines)
    assert f"{files[-1]}: RECEIPT_NOT_CANONICAL: the receipt is not in canonical JSON form (was it edited?)" in lines
    assert any(line.startswith(f"{files[2]}: MANIFEST_TAMPERED: its content gives id") for line in lines)
    assert "README.md: MANIFEST_UNKNOWN: not a file kfm validates" in r.out
    assert f"{VERSION}/receipt.json: RECEIPT_INVALID: promotion-manifest.json beside it is not the file it records " \
           "(hint: receipts and what they record are never edited: restore them from git)" in lines
    assert lines[-1] == f"{len(files) + 1} files checked, 6 errors"
