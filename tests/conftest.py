"""Shared fixtures: real git repositories with a fixed signature, and the CLI called as a user calls it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kfm_gitops.cli import main
from kfm_gitops.store import Store

PROJECT = Path(__file__).resolve().parent.parent
STANDARDS = PROJECT.parent / "shared" / "standards"
EXAMPLES = Path(__file__).resolve().parent / "examples"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Steward",
    "GIT_AUTHOR_EMAIL": "steward@example.org",
    "GIT_COMMITTER_NAME": "Test Steward",
    "GIT_COMMITTER_EMAIL": "steward@example.org",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
}


@dataclass
class Result:
    code: int
    out: str
    err: str


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """A fixed git identity, no user git config (HOME is ``home``) and no inherited kfm settings; also for fixtures
    wider than one test (a module's shared repository, with ``pytest.MonkeyPatch.context()``)."""
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    from kfm_gitops.receipts import CONTAINER_ENV, ENV_ALLOWLIST

    for name in ("KFM_STORE", "KFM_DEBUG", "KFM_ACTOR", CONTAINER_ENV, *ENV_ALLOWLIST):
        monkeypatch.delenv(name, raising=False)  # CI sets some of them; tests set what they need


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test runs with a fixed git identity, no user git config and no inherited kfm settings."""
    isolate(monkeypatch, tmp_path / "home")
    (tmp_path / "home").mkdir(exist_ok=True)
    # libgit2 reads the global and system git config from where HOME was when it loaded: point it at the test's.
    import pygit2
    from pygit2.enums import ConfigLevel

    levels = (ConfigLevel.GLOBAL, ConfigLevel.XDG, ConfigLevel.SYSTEM)
    saved = {level: pygit2.settings.search_path[level] for level in levels}
    for level in levels:
        pygit2.settings.search_path[level] = str(tmp_path / "home")
    yield
    for level, value in saved.items():
        pygit2.settings.search_path[level] = value


Runner = Callable[..., Result]


@pytest.fixture
def kfm(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run `kfm ARGS...` in-process through the same entry point as the console script."""

    def run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def stored_digests(store: Store) -> list[str]:
    """The objects a store holds, read from its files (sha256/<2 hex>/<64 hex>), sorted."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(store.url)
    base = f"{str(root).rstrip('/')}/sha256"
    names = [str(p).rsplit("/", 1)[-1] for p in fs.find(base)] if fs.exists(base) else []
    return sorted(f"sha256:{n}" for n in names if re.fullmatch(r"[0-9a-f]{64}", n))


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def venv_bin() -> Path:
    return Path(sys.executable).parent


@pytest.fixture
def governed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A governed repository made by `kfm init --example`, as the working directory."""
    from kfm_gitops.example import repository_files
    from kfm_gitops.repository import init

    root = tmp_path / "repo"
    init(root, repository_files())
    monkeypatch.chdir(root)
    return root


# --- the example's story, step by step (helpers for the tests that walk it) -----------------------------------------

SLUG = "ks_storm_reports"


def version_of(root: Path, plan: str | None = None) -> str:
    """The expected_dataset_version_id a plan names (the example's first plan by default)."""
    from kfm_gitops.example import FIRST_PLAN

    text = (root / (plan or FIRST_PLAN)).read_text()
    line = next(ln for ln in text.splitlines() if "expected_dataset_version_id" in ln)
    return line.split('"')[1]


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def gap_plan(root: Path, prior: str) -> str:
    """A plan for March 2023 alone on ``prior``, written next to the example's first plan; its path."""
    from kfm_gitops.example import FIRST_PLAN

    text = (root / FIRST_PLAN).read_text()
    text = text.replace('start: "2023-01-01T00:00:00Z"', 'start: "2023-03-01T00:00:00Z"')
    text = text.replace('end: "2023-07-01T00:00:00Z"', 'end: "2023-04-01T00:00:00Z"')
    text = text.replace('prior_dataset_version_id: ""', f'prior_dataset_version_id: "{prior}"')
    text = text.replace("max_parallelism: 2", "max_parallelism: 1")
    text = re.sub(r'expected_dataset_version_id: "[^"]*"', 'expected_dataset_version_id: "<to-be-computed>"', text)
    rel = f"plans/{SLUG}/backfill-20230801-a1b2c3.yml"
    (root / rel).write_text(text)
    return rel


def two_versions(root: Path, kfm: Runner) -> tuple[str, str, str]:
    """The example's first release, then the gap filled after March is redelivered, each committed: (the first
    version, the second, the gap plan)."""
    import shutil

    from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM

    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    v1 = version_of(root)
    commit_all(root, "first release")
    shutil.copytree(root / REDELIVERY / "2023-03", root / UPSTREAM / "2023-03")
    rel = gap_plan(root, v1)
    commit_all(root, "redelivery and gap plan")
    r = kfm("backfill", "run", rel, "--yes")
    assert r.code == 0, r.out + r.err
    commit_all(root, "gap filled")
    return v1, version_of(root, rel), rel
