"""The pre-commit hook, for real: a contributor commits one good and one bad plan; the bad one is rejected with
its line; the hooks file other repositories use runs the same commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT, git
from kfm_gitops import _yaml
from kfm_gitops.example import FIRST_PLAN
from kfm_gitops.repository import PRE_COMMIT_CONFIG, init


def hook_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}


def test_hook_rejects_a_bad_plan_with_its_line(tmp_path: Path) -> None:
    from kfm_gitops.example import repository_files

    root = tmp_path / "gov"
    init(root, repository_files())
    env = hook_env(tmp_path)
    pre_commit = str(Path(sys.executable).parent / "pre-commit")
    subprocess.run([pre_commit, "install"], cwd=root, env=env, check=True, capture_output=True)
    good = (root / FIRST_PLAN).read_text()
    (root / "plans/ks_storm_reports/good.yml").write_text(good.replace("First release", "Second look"))
    bad = good.replace('start: "2023-01-01T00:00:00Z"', 'start: "2023-01-01T00:00:00"')
    (root / "plans/ks_storm_reports/bad.yml").write_text(bad)
    git(root, "add", "plans")
    done = subprocess.run(["git", "commit", "-m", "two plans"], cwd=root, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr  # git shows the hook's output on stderr
    assert done.returncode != 0
    assert ("plans/ks_storm_reports/bad.yml:14:10: PLAN_TIMESTAMP_NAIVE: '2023-01-01T00:00:00' has no UTC offset"
            in output), output
    assert "2 plans checked, 1 error" in output
    assert "good.yml:" not in output
    # Fixed, the same commit goes through.
    (root / "plans/ks_storm_reports/bad.yml").write_text(good.replace("First release", "Third look"))
    git(root, "add", "plans")
    done = subprocess.run(["git", "commit", "-m", "two plans"], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hooks_file_and_configs_agree() -> None:
    """.pre-commit-hooks.yaml (for other repositories), the project's own config and the config kfm init writes
    run the same kfm commands on the same files."""
    hooks = _yaml.loads("hooks:\n" + "".join(f"  {line}\n" for line in
                                             (PROJECT / ".pre-commit-hooks.yaml").read_text().splitlines()), "h")
    assert isinstance(hooks, _yaml.Document)
    exported = {h["id"]: (h["entry"], h["files"]) for h in hooks.data["hooks"]}
    scaffold = _yaml.loads(PRE_COMMIT_CONFIG, "scaffold")
    own = _yaml.load(PROJECT / ".pre-commit-config.yaml")
    assert isinstance(scaffold, _yaml.Document) and isinstance(own, _yaml.Document)
    for cfg in (scaffold, own):
        local = {h["id"]: (h["entry"], h["files"]) for h in cfg.data["repos"][0]["hooks"] if h["id"].startswith("kfm")}
        assert local == exported
        assert all(h["language"] == "unsupported" for h in cfg.data["repos"][0]["hooks"])
    assert set(exported) == {"kfm-plan-validate", "kfm-dataset-validate", "kfm-evidence-append-only",
                             "kfm-manifest-validate"}
