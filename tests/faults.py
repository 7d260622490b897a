"""Fault injection for `kfm backfill run`: a governed repository with a January big enough to be killed in, a run
killed with SIGKILL at a seeded moment, and the checks that what the kill left behind is whole and that running
again gives what an uninterrupted run gives.

The CI suite tries a few seeded points; ``KFM_LONG=1`` tries ``KFM_FAULT_POINTS`` (default 60) of them:

    KFM_LONG=1 pytest -q tests/test_faults.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import GIT_ENV, git
from kfm_gitops.example import FIRST_PLAN, UPSTREAM

SLUG = "ks_storm_reports"
KFM = str(Path(sys.executable).parent / "kfm")
LONG = os.environ.get("KFM_LONG") == "1"
POINTS = int(os.environ.get("KFM_FAULT_POINTS", "60")) if LONG else 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished backfill left: its version id and the bytes that must not depend on the path taken."""

    version: str
    checksums: bytes
    artifacts: tuple[tuple[str, str], ...]
    objects: tuple[str, ...]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KFM_")}
    return {**base, **GIT_ENV, **extra}


def make_template(root: Path, copies: int = 200) -> Path:
    """A governed repository, committed, with January grown ``copies`` times so that a run has a middle."""
    from kfm_gitops.example import repository_files
    from kfm_gitops.repository import init

    init(root, repository_files())
    jan = root / UPSTREAM / "2023-01" / "reports-2023-01-01.csv"
    header, *rows = jan.read_text().splitlines()
    big = [header] + [r.replace("KS-202301-", f"KS-2023{i:05d}-") for i in range(copies) for r in rows]
    jan.write_text("\n".join(big) + "\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bigger January")
    return root


def clone(template: Path, where: Path) -> Path:
    shutil.copytree(template, where, symlinks=True)
    return where


def run(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KFM, "backfill", "run", FIRST_PLAN, "--yes", *args], cwd=root, env=env(**extra),
                          capture_output=True, text=True, timeout=300)


def killed_at(root: Path, delay: float, *args: str) -> int | None:
    """Start a run and SIGKILL it ``delay`` seconds in; the exit status (negative: killed), or None if it ended
    first."""
    proc = subprocess.Popen([KFM, "backfill", "run", FIRST_PLAN, "--yes", *args], cwd=root, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return None
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        return proc.wait()


def delays(seed: int, count: int, span: float) -> list[float]:
    """``count`` seeded kill moments spread over the run: one per slice of ``span``, at a random place in it."""
    rng = random.Random(seed)
    return [span * (i + rng.random()) / count for i in range(count)]


def outcome(root: Path) -> Outcome:
    from conftest import stored_digests
    from kfm_gitops.store import Store

    text = (root / FIRST_PLAN).read_text()
    version = next(ln for ln in text.splitlines() if "expected_dataset_version_id" in ln).split('"')[1]
    folder = root / "releases" / SLUG / version
    doc = json.loads((folder / "promotion-manifest.json").read_text())
    objects = tuple(stored_digests(Store(str(root / ".kfm" / "objects"))))
    return Outcome(version, (folder / "checksums.json").read_bytes(),
                   tuple((a["path"], a["digest"]) for a in doc["artifacts"]), objects)


def whole(root: Path) -> list[str]:
    """Everything a killed run left in view is whole: problems found, [] when none."""
    import pyarrow.parquet as pq

    from conftest import stored_digests
    from kfm_gitops.store import Store

    problems: list[str] = []
    store = Store(str(root / ".kfm" / "objects"))
    for digest in stored_digests(store):
        if (why := store.verify(digest)) is not None:
            problems.append(f"{digest}: {why}")
            continue
        path = store.local_path(digest)
        if path is not None and path.read_bytes()[:4] == b"PAR1":
            try:
                pq.ParquetFile(path).metadata  # noqa: B018  # opening reads the footer
            except Exception as exc:  # any failure to open is the finding
                problems.append(f"{digest}: parquet does not open: {exc}")
    for base in (root / "releases", root / "data"):
        for path in base.rglob("*.json*") if base.is_dir() else []:
            problems.extend(_json_problems(path))
    for path in root.rglob("*.parquet"):
        if ".kfm" not in path.parts:
            problems.append(f"{path}: a parquet file outside the store")
    for folder in (root / "releases" / SLUG / "runs").glob("*"):
        if not (folder / "receipt.json").is_file():
            problems.append(f"{folder}: a run folder without its receipt")
    for folder in (root / "releases" / SLUG).glob("2023-*"):
        if not (folder / "promotion-manifest.json").is_file():
            problems.append(f"{folder}: a version folder without its manifest")
    problems.extend(_plan_problems(root))
    return problems


def _json_problems(path: Path) -> list[str]:
    text = path.read_text()
    try:
        if path.suffix == ".jsonl":
            for line in text.splitlines():
                json.loads(line)
        else:
            json.loads(text)
    except ValueError as exc:
        return [f"{path}: half-written JSON ({exc})"]
    return []


def _plan_problems(root: Path) -> list[str]:
    from kfm_gitops._yaml import Document, load

    loaded = load(root / FIRST_PLAN)
    return [] if isinstance(loaded, Document) else [f"{FIRST_PLAN}: {f.message}" for f in loaded]


def trial(template: Path, where: Path, delay: float, reference: Outcome,
          check: Callable[[Path], list[str]] = whole) -> tuple[bool, list[str]]:
    """One seeded point: (was the run killed, problems). A killed run leaves only whole things; running again
    converges on the reference."""
    root = clone(template, where)
    status = killed_at(root, delay)
    problems = check(root)
    again = run(root)
    if again.returncode != 0:
        problems.append(f"the re-run failed ({again.returncode}): {again.stdout[-400:]} {again.stderr[-400:]}")
        return status is not None, problems
    got = outcome(root)
    for name in ("version", "checksums", "artifacts"):
        if getattr(got, name) != getattr(reference, name):
            problems.append(f"after a kill at {delay:.2f}s the re-run's {name} differs from an uninterrupted run's")
    if not set(reference.objects) <= set(got.objects):
        problems.append("the re-run's store lacks objects an uninterrupted run has")
    problems.extend(f"after the re-run: {p}" for p in whole(root))
    return status is not None, problems


def fsize_limit(limit: int) -> Callable[[], Any]:
    """For Popen's preexec_fn: files may grow to ``limit`` bytes; beyond it a write fails with EFBIG (the signal
    that would kill the process is ignored)."""

    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def timed(fn: Callable[[], Any]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def killed_when(root: Path, seen: Callable[[Path], bool], timeout: float = 120.0) -> int | None:
    """Start a run and SIGKILL it as soon as ``seen(root)`` holds (polled every few milliseconds): a stage
    boundary such as the first RAW manifest or the version folder. None if the run ended first."""
    proc = subprocess.Popen([KFM, "backfill", "run", FIRST_PLAN, "--yes"], cwd=root, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if seen(root):
            proc.send_signal(signal.SIGKILL)
            return proc.wait()
        time.sleep(0.002)
    proc.wait()
    return None


def count_of(pattern: str, n: int) -> Callable[[Path], bool]:
    """True once at least ``n`` paths match ``pattern`` under the repository."""
    return lambda root: len(list(root.glob(pattern))) >= n


STAGES: dict[str, Callable[[Path], bool]] = {
    "first RAW manifest": count_of(f"data/raw/{SLUG}/*.json", 1),
    "first store object": count_of(".kfm/objects/sha256/*/*", 1),
    "a chunk being processed": count_of(".kfm/staging/*", 1),
    "third run folder": count_of(f"releases/{SLUG}/runs/*", 3),
    "version folder": count_of(f"releases/{SLUG}/2023-*", 1),
}
