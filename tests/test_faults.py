"""Fault injection: `kfm backfill run` killed (SIGKILL) at seeded moments and at stage boundaries, a store that
fails every Nth write, and a full disk. After each: every object verifies, nothing visible is half-written, and a
run again gives the version an uninterrupted run gives. CI tries a few points; ``KFM_LONG=1`` runs the long suite
(``KFM_FAULT_POINTS``, default 60):

    KFM_LONG=1 pytest -q tests/test_faults.py
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import faults
import pytest

from conftest import GIT_ENV, Runner, stored_digests
from kfm_gitops.example import FIRST_PLAN
from kfm_gitops.store import Store


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, faults.Outcome, float]]:
    """The repository every trial starts from, and what an uninterrupted run of it gives (made once)."""
    base = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in GIT_ENV.items():
            mp.setenv(k, v)
        (base / "home").mkdir()
        mp.setenv("HOME", str(base / "home"))
        template = faults.make_template(base / "template")
        root = faults.clone(template, base / "reference")
        seconds = faults.timed(lambda: faults.run(root))
    yield template, faults.outcome(root), seconds


@pytest.fixture
def template(world: tuple[Path, faults.Outcome, float]) -> Path:
    return world[0]


@pytest.fixture
def reference(world: tuple[Path, faults.Outcome, float]) -> tuple[faults.Outcome, float]:
    return world[1], world[2]


def test_killed_at_seeded_moments_the_run_recovers(template: Path, tmp_path: Path,
                                                  reference: tuple[faults.Outcome, float]) -> None:
    expected, seconds = reference
    killed = 0
    for i, delay in enumerate(faults.delays(18, faults.POINTS, seconds)):
        was_killed, problems = faults.trial(template, tmp_path / f"t{i}", delay, expected)
        assert problems == [], f"killed at {delay:.2f}s (point {i})"
        killed += was_killed
    assert killed >= max(1, faults.POINTS // 2), f"only {killed} of {faults.POINTS} runs were killed before the end"
    print(f"fault points: {faults.POINTS} tried, {killed} killed mid-run, all recovered")  # shown with pytest -s


@pytest.mark.parametrize("stage", sorted(faults.STAGES))
def test_killed_at_a_stage_boundary_the_run_recovers(template: Path, tmp_path: Path, stage: str,
                                                     reference: tuple[faults.Outcome, float]) -> None:
    expected, _ = reference
    root = faults.clone(template, tmp_path / "killed")
    assert faults.killed_when(root, faults.STAGES[stage]) is not None, f"the run ended before {stage}"
    assert faults.whole(root) == []
    again = faults.run(root)
    assert again.returncode == 0, again.stdout + again.stderr
    got = faults.outcome(root)
    assert (got.version, got.checksums, got.artifacts) == (expected.version, expected.checksums, expected.artifacts)


def converges(root: Path, expected: faults.Outcome, **extra: str) -> None:
    """Running again (without the fault) gives what an uninterrupted run gives."""
    again = faults.run(root, **extra)
    assert again.returncode == 0, again.stdout + again.stderr
    got = faults.outcome(root)
    assert (got.version, got.checksums, got.artifacts) == (expected.version, expected.checksums, expected.artifacts)


@pytest.mark.parametrize("every", [2, 7])
def test_a_store_that_fails_every_nth_write(template: Path, tmp_path: Path, kfm: Runner, every: int,
                                            reference: tuple[faults.Outcome, float],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from kfm_gitops import store as store_module

    expected, _ = reference
    root = faults.clone(template, tmp_path / "repo")
    monkeypatch.chdir(root)
    real = store_module._Local.commit
    lock, calls = threading.Lock(), [0]

    def flaky(self: store_module._Local, tmp: str, key: str) -> bool:
        with lock:
            calls[0] += 1
            fail = calls[0] % every == 0
        if fail:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, tmp, key)

    with monkeypatch.context() as mp:
        mp.setattr(store_module._Local, "commit", flaky)
        r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1, r.out + r.err
    assert "Traceback" not in r.out + r.err
    assert f"cannot write to the store {root / '.kfm' / 'objects'}: Input/output error" in r.out + r.err
    assert faults.whole(root) == []
    assert list((root / ".kfm" / "objects" / "tmp").iterdir()) == []  # a failed write removes its temp object
    converges(root, expected)


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` at ``where`` (True), or nothing where mounting is not permitted (False)."""
    where.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                 capture_output=True, check=False).returncode == 0
    except FileNotFoundError:  # no mount command
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_fails_with_its_cause_and_recovers(template: Path, tmp_path: Path,
                                                       reference: tuple[faults.Outcome, float]) -> None:
    expected, _ = reference
    root = faults.clone(template, tmp_path / "repo")
    store = tmp_path / "disk"
    with small_disk(store, "384k") as mounted:
        if mounted:
            r = faults.run(root, KFM_STORE=str(store))
        else:  # no permission to mount: a file-size limit makes the same refusal
            store.mkdir(exist_ok=True)
            r = subprocess.run([faults.KFM, "backfill", "run", FIRST_PLAN, "--yes"], cwd=root,
                               env=faults.env(KFM_STORE=str(store)), capture_output=True, text=True,
                               preexec_fn=faults.fsize_limit(256 * 1024), check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr
        cause = "No space left on device" if mounted else "File too large"
        assert f"cannot write to the store {store}: {cause}" in r.stdout + r.stderr
        assert faults.whole(root) == []
        s = Store(str(store))
        assert all(s.verify(d) is None for d in stored_digests(s))
        assert not (store / "tmp").exists() or list((store / "tmp").iterdir()) == []
        if mounted:  # the disk grows: the same store now takes the rest
            subprocess.run(["mount", "-o", "remount,size=64m", str(store)], check=True)
        converges(root, expected, KFM_STORE=str(store))
