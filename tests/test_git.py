"""The typed pygit2 layer (_git): commits built without a working tree, branches moved only by compare-and-swap,
in real repositories that the git CLI reads back. Only _git imports pygit2."""

from __future__ import annotations

import ast
from pathlib import Path

import pygit2
import pytest

from conftest import Runner, git
from kfm_gitops import _git
from kfm_gitops.errors import EXIT_CONFLICT, ConflictError, KfmError

PACKAGE = Path(_git.__file__).resolve().parent


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return _git.init(tmp_path / "repo", "main")


def test_only_git_imports_pygit2() -> None:
    importers = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "pygit2" or n.startswith("pygit2.") for n in names):
                importers.add(path.relative_to(PACKAGE).as_posix())
    assert importers == {"_git.py"}


def test_a_commit_is_built_without_the_working_tree_and_read_back(repo: pygit2.Repository) -> None:
    root = _git.workdir(repo)
    assert _git.current_branch(repo) == "main"  # unborn, and still named
    assert _git.branch_head(repo, "main") is None and _git.head_commit(repo) is None
    first = _git.commit_files(repo, "main", {"a.txt": b"one\n", "d/e/f.txt": b"deep\n"}, "first")
    assert isinstance(first, pygit2.Oid)
    assert _git.branch_head(repo, "main") == first and _git.head_commit(repo) == str(first)
    assert not (root / "a.txt").exists()  # the working tree is not touched
    second = _git.commit_files(repo, "main", {"d/g.txt": b"more\n"}, "second", expected_head=first)
    assert git(root, "log", "--format=%s", "main").split() == ["second", "first"]
    assert git(root, "show", "main:d/e/f.txt") == "deep\n"
    assert _git.list_tree(repo, second) == {"a.txt": b"one\n", "d/e/f.txt": b"deep\n", "d/g.txt": b"more\n"}
    assert _git.read_blob(repo, second, "d/g.txt") == b"more\n"
    assert _git.read_blob(repo, str(second), "a.txt") == b"one\n"  # a commit named by its hex digits
    assert _git.read_blob(repo, second, "d") is None  # a folder is no blob
    assert _git.read_blob(repo, first, "d/g.txt") is None
    orphan = _git.commit_files(repo, "release", {"r.txt": b"r\n"}, "release", orphan=True)
    assert _git.list_tree(repo, orphan) == {"r.txt": b"r\n"}
    assert git(root, "rev-list", "--count", "release").strip() == "1"


def test_a_branch_moves_only_from_where_the_writer_saw_it(repo: pygit2.Repository) -> None:
    first = _git.commit_files(repo, "main", {"a.txt": b"1\n"}, "first")
    second = _git.commit_files(repo, "main", {"a.txt": b"2\n"}, "second")
    with pytest.raises(ConflictError) as info:
        _git.commit_files(repo, "main", {"a.txt": b"3\n"}, "third", expected_head=first)
    assert info.value.exit_code == EXIT_CONFLICT
    assert info.value.message == "branch main moved while kfm was writing to it"
    with pytest.raises(ConflictError, match="moved while kfm was writing"):
        _git.move_branch(repo, "main", first, old=first)  # it points at second now
    with pytest.raises(ConflictError, match="was created while kfm was writing"):
        _git.move_branch(repo, "main", first, old=None)
    assert _git.branch_head(repo, "main") == second  # nothing moved it
    _git.move_branch(repo, "main", first, old=second)
    assert _git.branch_head(repo, "main") == first
    assert git(_git.workdir(repo), "rev-parse", "main").strip() == str(first)


def test_a_tree_refuses_paths_that_leave_it_or_collide(repo: pygit2.Repository) -> None:
    for bad in ("../x", "a//b", ".git/config", "./a"):
        with pytest.raises(KfmError, match="refusing to write"):
            _git.build_tree(repo, {bad: b"x"})
    with pytest.raises(KfmError, match="a file is in the way"):
        _git.build_tree(repo, {"a": b"file", "a/b": b"below a file"})


def test_a_symbolic_branch_is_refused_not_followed(repo: pygit2.Repository) -> None:
    head = _git.commit_files(repo, "main", {"a.txt": b"1\n"}, "first")
    git(_git.workdir(repo), "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    with pytest.raises(KfmError) as info:
        _git.branch_head(repo, "alias")
    assert info.value.message == "branch alias is a symbolic reference to refs/heads/main"
    assert _git.branch_head(repo, "main") == head


def test_the_signature_comes_from_the_environment(repo: pygit2.Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    sig = _git.signature(repo)  # conftest's fixed identity and date
    assert (sig.name, sig.email, sig.time, sig.offset) == ("Test Steward", "steward@example.org", 1700000000, 0)
    assert _git.committer_email(repo) == "steward@example.org"
    monkeypatch.setenv("GIT_COMMITTER_DATE", "1700000000 -0130")
    assert _git.signature(repo).offset == -90
    git(_git.workdir(repo), "config", "user.name", "Repo Config")
    git(_git.workdir(repo), "config", "user.email", "config@example.org")
    for name in ("GIT_COMMITTER_NAME", "GIT_AUTHOR_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(name)
    sig = _git.signature(repo)  # without GIT_* names, git config's
    assert (sig.name, sig.email) == ("Repo Config", "config@example.org")


def test_without_an_identity_kfm_refuses_as_git_does(tmp_path: Path, kfm: Runner,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GIT_COMMITTER_NAME", "GIT_AUTHOR_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    r = kfm("init", str(tmp_path / "gov"))
    assert r.code == 1
    assert r.err.startswith("kfm: git does not know who you are, and kfm commits in your name\n  hint: tell git who "
                            'you are: `git config --global user.name "Your Name"`')
    assert not (tmp_path / "gov" / "kfm.yaml").exists(), "refused before anything was written"
    monkeypatch.setenv("EMAIL", "ana@example.org")
    git(tmp_path / "gov", "config", "user.name", "Ana")
    assert kfm("init", str(tmp_path / "gov")).code == 0
    assert git(tmp_path / "gov", "log", "-1", "--format=%an <%ae>", "main").strip() == "Ana <ana@example.org>"
    r = kfm("quickstart", str(tmp_path / "q"))
    assert r.code == 0, r.err
    assert "this demo repository commits as kfm quickstart <quickstart@example.invalid>" in r.out
