"""`kfm init`: a governed repository with its two branches; running it again adds only what is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Runner, git
from kfm_gitops.repository import SCAFFOLD, SHARED


def tree(root: Path, ref: str) -> list[str]:
    return sorted(git(root, "ls-tree", "-r", "--name-only", ref).split())


def test_init_in_an_empty_directory(tmp_path: Path, kfm: Runner) -> None:
    root = tmp_path / "gov"
    r = kfm("init", str(root))
    assert r.code == 0, r.err
    assert r.out.startswith(f"created a git repository in {root}\n")
    from kfm_gitops.policy import default_files

    assert tree(root, "main") == sorted([*SCAFFOLD, *default_files()])
    assert tree(root, "release") == sorted(SHARED)
    for rel in SHARED:
        assert git(root, "show", f"main:{rel}") == git(root, "show", f"release:{rel}")
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    # release is its own history: it holds no evidence of main.
    assert git(root, "rev-list", "--count", "release").strip() == "1"
    assert git(root, "log", "-1", "--format=%an <%ae>", "main").strip() == "Test Steward <steward@example.org>"


def test_init_twice_changes_nothing(tmp_path: Path, kfm: Runner) -> None:
    root = tmp_path / "gov"
    assert kfm("init", str(root)).code == 0
    heads = git(root, "show-ref")
    r = kfm("init", str(root))
    assert r.code == 0
    assert r.out == f"{root} is already a governed repository; nothing to add\n"
    assert git(root, "show-ref") == heads


def test_init_on_an_existing_repository_adds_only_what_is_missing(tmp_path: Path, kfm: Runner) -> None:
    root = tmp_path / "existing"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("mine\n")
    (root / ".gitignore").write_text("secret.txt\n")
    git(root, "add", "README.md", ".gitignore")
    git(root, "commit", "-q", "-m", "first")
    (root / "staged.txt").write_text("work in progress\n")
    git(root, "add", "staged.txt")
    r = kfm("init", str(root))
    assert r.code == 0, r.err
    # the one change to a file of the user's: the local object store must never be committed
    assert "  added .gitignore (the line .kfm/)\n" in r.out
    ignore = "secret.txt\n\n# kfm's local object store, staging area and lock: data bytes never go into git.\n.kfm/\n"
    assert (root / ".gitignore").read_text() == ignore
    main_files = tree(root, "main")
    assert "README.md" in main_files and "kfm.yaml" in main_files
    assert "staged.txt" not in main_files  # the user's staged work is not committed by kfm
    assert git(root, "status", "--porcelain").splitlines() == ["A  staged.txt"]
    assert git(root, "show", "release:.gitignore") == ignore  # release carries main's shared files
    assert git(root, "show", "main:.gitignore") == ignore
    (root / ".kfm" / "objects").mkdir(parents=True)
    (root / ".kfm" / "objects" / "x").write_text("data\n")
    assert ".kfm" not in git(root, "status", "--porcelain")
    assert git(root, "rev-list", "--count", "main").strip() == "2"


def test_init_leaves_a_gitignore_that_already_ignores_the_store_or_has_changes(tmp_path: Path,
                                                                              kfm: Runner) -> None:
    for name, content, dirty in [("ignores", "/.kfm\n", False), ("dirty", "secret.txt\n", True)]:
        root = tmp_path / name
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / ".gitignore").write_text(content)
        git(root, "add", ".gitignore")
        git(root, "commit", "-q", "-m", "first")
        if dirty:
            (root / ".gitignore").write_text(content + "notes.txt\n")
        r = kfm("init", str(root))
        assert r.code == 0, r.err
        assert "added .gitignore" not in r.out
        assert (root / ".gitignore").read_text() == content + ("notes.txt\n" if dirty else "")
        assert ("note: .gitignore has uncommitted changes: add the line `.kfm/` to it yourself" in r.out) is dirty


def test_init_refuses_another_branch(tmp_path: Path, kfm: Runner) -> None:
    root = tmp_path / "other"
    root.mkdir()
    git(root, "init", "-q", "-b", "trunk")
    r = kfm("init", str(root))
    assert r.code == 1
    assert r.err == ("kfm: HEAD is on trunk, not main: a governed repository keeps its plans and evidence on main\n"
                     "  hint: rename the branch (`git branch -m trunk main`) or check out main, then run kfm init "
                     "again\n")


def test_init_refuses_a_subdirectory_of_a_repository(tmp_path: Path, kfm: Runner) -> None:
    root = tmp_path / "outer"
    assert kfm("init", str(root)).code == 0
    r = kfm("init", str(root / "inner"))
    assert r.code == 1
    assert "is inside the git repository at" in r.err


def test_release_files_that_differ_are_reported_not_changed(tmp_path: Path, kfm: Runner) -> None:
    root = tmp_path / "gov"
    assert kfm("init", str(root)).code == 0
    (root / "kfm.yaml").write_text((root / "kfm.yaml").read_text() + "# changed on main\n")
    git(root, "commit", "-qam", "change kfm.yaml on main only")
    release_before = git(root, "rev-parse", "release")
    r = kfm("init", str(root))
    assert r.code == 0
    assert "note: kfm.yaml differs between main and release; make them identical in a PR" in r.out
    assert git(root, "rev-parse", "release") == release_before


def test_init_with_the_example(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "gov"
    r = kfm("init", "--example", str(root))
    assert r.code == 0, r.err
    monkeypatch.chdir(root)
    assert kfm("plan", "validate").out == "1 plan valid\n"
    assert kfm("dataset", "validate").out == "2 contract files valid\n"
    assert git(root, "status", "--porcelain") == ""


def test_pre_commit_hooks_of_a_new_repository_pass(tmp_path: Path, kfm: Runner) -> None:
    import subprocess
    import sys

    root = tmp_path / "gov"
    assert kfm("init", "--example", str(root)).code == 0
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    done = subprocess.run([str(Path(sys.executable).parent / "pre-commit"), "run", "--all-files"], cwd=root,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kfm plan validate" in done.stdout and "Passed" in done.stdout


def _team_origin(tmp_path: Path, kfm: Runner) -> Path:
    """A governed repository pushed to a bare origin, as a team's would be."""
    first = tmp_path / "first"
    assert kfm("init", str(first)).code == 0
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(first, "push", "-q", str(origin), "main", "release")
    return origin


def test_init_in_a_fresh_clone_joins_the_teams_release_branch(tmp_path: Path, kfm: Runner) -> None:
    origin = _team_origin(tmp_path, kfm)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    r = kfm("init", str(clone))
    assert r.code == 0, r.err
    assert "note: release: made from origin/release, which it tracks" in r.out
    assert git(clone, "rev-parse", "release") == git(clone, "rev-parse", "origin/release")
    assert git(clone, "rev-parse", "--abbrev-ref", "release@{upstream}").strip() == "origin/release"
    assert git(clone, "merge-base", "release", "origin/release").strip()  # one history: a push fast-forwards
    git(clone, "push", "-q", "--dry-run", "origin", "release")


def test_init_refuses_a_local_release_unrelated_to_the_teams(tmp_path: Path, kfm: Runner) -> None:
    origin = _team_origin(tmp_path, kfm)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "checkout", "-q", "--orphan", "release")
    git(clone, "commit", "-q", "--allow-empty", "-m", "a release of its own")
    git(clone, "checkout", "-q", "main")
    before = git(clone, "show-ref")
    r = kfm("init", str(clone))
    assert r.code == 1
    assert "the branch release here and origin/release share no history" in r.err
    assert "git branch -f release origin/release" in r.err
    assert git(clone, "show-ref") == before


def test_init_refuses_to_start_a_history_beside_the_teams_main(tmp_path: Path, kfm: Runner) -> None:
    origin = _team_origin(tmp_path, kfm)
    fresh = tmp_path / "fresh"
    git(tmp_path, "init", "-q", "-b", "main", str(fresh))
    git(fresh, "remote", "add", "origin", str(origin))
    git(fresh, "fetch", "-q", "origin")
    r = kfm("init", str(fresh))
    assert r.code == 1
    assert "main has no commit here, but origin/main exists" in r.err
    assert "git checkout -B main origin/main" in r.err
    assert git(fresh, "for-each-ref", "refs/heads").strip() == ""


def test_the_next_step_fits_the_repository(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    blank = kfm("init", str(tmp_path / "blank"))
    assert blank.out.splitlines()[-1].startswith("next: add a dataset contract, datasets/SLUG/dataset.yaml")
    example = kfm("init", "--example", str(tmp_path / "example"))
    assert example.out.splitlines()[-1] == (
        "next: `pre-commit install`, then `kfm plan new ks_storm_reports --window START/END --chunking MODE "
        "--reason TEXT` for a backfill")
    monkeypatch.chdir(tmp_path / "blank")
    r = kfm("plan", "validate")
    assert r.code == 1
    assert r.out == ("plans/: PLAN_NONE: this repository has no plan yet (hint: write one with `kfm plan new SLUG "
                     "--window START/END --chunking MODE --reason TEXT`)\n"
                     "no plan checked: nothing to validate is a failure\n")
