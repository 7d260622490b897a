"""Benchmark `kfm raw verify` on one core against two: how well re-hashing the RAW zone spreads over threads.

Setup, all in a temporary directory that is removed at the end (nothing is written into this repository):
``kfm init --example`` makes a governed repository; 8 CSV files of 128 MiB (1 GiB) are added to
``upstream/ks_storm_reports/2023-01/`` next to the example's four small files. Each file repeats a block of realistic
storm-report lines after a header and a line of its own, so no two files are identical (identical files would dedupe
in the content-addressed store). Everything is committed, and ``kfm acquire PLAN --chunk 2023-01`` acquires the month
once into the repository's default store (``.kfm/objects``).

Then, alternating round by round, ``kfm raw verify ks_storm_reports --jobs 1`` and ``... --jobs 2`` re-hash every
object the manifests name (the month's files and the terms snapshot). Page cache: the objects were just written, and
each command makes one untimed warm-up run (which also checks that it succeeds) before anything is timed, so both
read the objects from the page cache; this measures hashing and its spread over threads, not the disk.
Reported: the machine's core count, median seconds, throughput in MiB/s of the stored bytes for each, and the ratio
of the 2-thread throughput to the 1-thread throughput; target at least 1.6 (it needs at least 2 cores).

Bytecode: as in ``plan_validate.py``, kfm runs with PYTHONDONTWRITEBYTECODE removed and PYTHONPYCACHEPREFIX pointing
into the temporary directory (an installed wheel has its .pyc files); ``--no-pyc-cache`` keeps the environment as
inherited. This is a script, not a test: it prints figures and fails only when a tool does.

Run it from the repository root with::

    .venv/bin/python bench/raw_verify.py            # full run: 1 GiB, 7 rounds
    .venv/bin/python bench/raw_verify.py --quick    # smoke run: 64 MiB, 1 round (start-up dominates the ratio)
    .venv/bin/python bench/raw_verify.py --rounds 11
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

BIN = Path(sys.executable).parent
KFM = BIN / "kfm"
SLUG = "ks_storm_reports"
PLAN_REL = Path("plans") / SLUG / "backfill-20230705-0c1d2e.yml"
UPSTREAM_REL = Path("upstream") / SLUG
MONTH = "2023-01"
# core.compression=1: git deflates the large files fast; it only shortens the untimed setup.
GIT_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.org", "-c", "core.compression=1"]

MIB = 1024 * 1024
FILES = 8
FILE_MIB, DEFAULT_ROUNDS = 128, 7
QUICK_FILE_MIB, QUICK_ROUNDS = 8, 1
JOBS = (1, 2)
TARGET = 1.6


def abort(message: str, done: subprocess.CompletedProcess[str] | None = None) -> None:
    if done is not None:
        message += f"\nexit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-2000:]}"
    sys.exit(f"abort: {message}")


def run(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def must(what: str, command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command that has to succeed; its stdout."""
    done = run(command, cwd, env)
    if done.returncode != 0:
        abort(f"{what} failed: {' '.join(command[:6])}", done)
    return done.stdout


def tool_env(pyc_prefix: Path | None) -> dict[str, str]:
    """kfm's environment: inherited, or with bytecode cached under `pyc_prefix`."""
    env = dict(os.environ)
    if pyc_prefix is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pyc_prefix)
    return env


def csv_block(seed: int, target: int = MIB) -> bytes:
    """About `target` bytes of storm-report lines like the example's (no header)."""
    rng = random.Random(seed)
    counties = ["Barton", "Butler", "Sedgwick", "Riley", "Ellis", "Finney", "Ford", "Harvey", "Reno", "Saline"]
    kinds = [("hail", "{:.2f}", 0.75, 3.0), ("wind", "{:.0f}", 50, 90), ("tornado", "EF{:.0f}", 0, 3)]
    lines: list[str] = []
    size = 0
    n = 0
    while size < target:
        n += 1
        kind, fmt, low, high = rng.choice(kinds)
        line = (f"KS-202301-{n:07d},2023-01-{rng.randint(1, 31):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z,{rng.choice(counties)},{kind},"
                f"{fmt.format(rng.uniform(low, high))},{rng.choice('0000001')},public,"
                f"{rng.uniform(-102.05, -94.6):.4f},{rng.uniform(36.99, 40.0):.4f}\n")
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()


def write_csv(path: Path, size: int, block: bytes, tag: str) -> int:
    """A file of about `size` bytes (whole lines): header, a line naming `tag`, then `block` repeated."""
    head = ("report_id,event_time,county,event_type,magnitude,injuries,source,longitude,latitude\n"
            f"KS-{tag},2023-01-01T00:00:00Z,Barton,hail,1.00,0,public,-98.7271,38.6613\n").encode()
    written = 0
    with open(path, "wb") as fh:
        written += fh.write(head)
        while size - written >= len(block):
            written += fh.write(block)
        written += fh.write(block[:block.rfind(b"\n", 0, size - written) + 1])
    return written


def verify_command(jobs: int) -> list[str]:
    return [str(KFM), "raw", "verify", SLUG, "--jobs", str(jobs)]


def check_verify(done: subprocess.CompletedProcess[str], objects: int) -> None:
    """Abort unless kfm verified every object of the store and found nothing wrong."""
    if done.returncode != 0:
        abort("kfm raw verify failed", done)
    found = re.search(r"\((\d+) object\(s\) re-hashed", done.stdout)
    if found is None or int(found.group(1)) != objects:
        abort(f"kfm raw verify did not report {objects} objects re-hashed", done)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=None, help=f"timed rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {FILES} files of {QUICK_FILE_MIB} MiB, {QUICK_ROUNDS} round"
    )
    parser.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="run kfm with the environment as inherited (default: bytecode cached in a temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    file_mib, rounds = (QUICK_FILE_MIB, QUICK_ROUNDS) if args.quick else (FILE_MIB, DEFAULT_ROUNDS)
    if args.rounds is not None:
        rounds = args.rounds

    if not KFM.is_file():
        sys.exit(f"abort: {KFM} not found; install the project in this venv")
    if shutil.which("git") is None:
        sys.exit("abort: git not found on PATH")

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-raw-verify-") as tmp_name:
        tmp = Path(tmp_name)
        month_bytes = FILES * file_mib * MIB
        free = shutil.disk_usage(tmp).free
        if free < 3 * month_bytes:
            sys.exit(f"abort: {free // MIB} MiB free under {tmp}; this run needs about {3 * month_bytes // MIB} MiB")
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if 2 * month_bytes > memory // 2:
            print(f"warning: {memory // MIB} MiB of memory may not keep the objects in the page cache")
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        repo = tmp / "repo"
        must("kfm init --example", [str(KFM), "init", "--example", str(repo)], tmp, env)

        t0 = time.perf_counter()
        block = csv_block(seed=2023)
        month_dir = repo / UPSTREAM_REL / MONTH
        for i in range(FILES):
            write_csv(month_dir / f"bench-{i:02d}.csv", file_mib * MIB, block, f"bench-{MONTH}-{i:02d}")
        t1 = time.perf_counter()
        must("git add", ["git", *GIT_ID, "add", "-A"], repo)
        must("git commit", ["git", *GIT_ID, "commit", "-q", "-m", "bench: large upstream files"], repo)
        t2 = time.perf_counter()
        must("kfm acquire", [str(KFM), "acquire", str(repo / PLAN_REL), "--chunk", MONTH], repo, env)
        t3 = time.perf_counter()

        objects = sorted(p for p in (repo / ".kfm" / "objects" / "sha256").glob("*/*") if p.is_file())
        total = sum(p.stat().st_size for p in objects)
        files = sorted(month_dir.glob("*.csv"))
        print(f"python {sys.version.split()[0]}; os.cpu_count() = {os.cpu_count()}; repository {repo}")
        print(f"setup: {len(files)} files ({FILES} generated, {len(files) - FILES} of the example) in {MONTH}, "
              f"generated in {t1 - t0:.1f} s, committed in {t2 - t1:.1f} s, acquired in {t3 - t2:.1f} s: "
              f"{len(objects)} objects (with the terms), {total / MIB:.1f} MiB in the store")
        print("pyc: " + ("environment as inherited" if args.no_pyc_cache else
                         "bytecode cached under the temporary directory"))

        commands = {f"--jobs {jobs}": verify_command(jobs) for jobs in JOBS}
        for command in commands.values():  # warm-up: page cache, bytecode, and a check that it succeeds
            check_verify(run(command, repo, env), len(objects))

        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                start = time.perf_counter()
                done = run(command, repo, env)
                times[name].append(time.perf_counter() - start)
                check_verify(done, len(objects))

        medians = {name: statistics.median(samples) for name, samples in times.items()}
        print(f"\nkfm raw verify, {total / MIB:.0f} MiB in {len(objects)} objects, page cache warm "
              f"({rounds} round{'' if rounds == 1 else 's'} each, interleaved)")
        print(f"  {'threads':<10} {'median s':>10} {'MiB/s':>10}   all rounds (s)")
        for name, seconds in medians.items():
            samples = " ".join(f"{s:.3f}" for s in times[name])
            print(f"  {name:<10} {seconds:>10.3f} {total / MIB / seconds:>10.1f}   {samples}")
        ratio = medians["--jobs 1"] / medians["--jobs 2"]
        verdict = "met" if ratio >= TARGET else "MISSED"
        cores = os.cpu_count() or 1
        note = "" if cores >= 2 else f"; only {cores} core, so 2 threads cannot run in parallel"
        print(f"ratio 2-thread/1-thread throughput (raw verify): {ratio:.2f} (target >= {TARGET}; "
              f"{cores} cores{note}) {verdict}")
    print(f"\ntotal {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
