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

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    GIT_ID,
    KFM,
    MIB,
    PLAN_REL,
    SLUG,
    STORE_REL,
    UPSTREAM_REL,
    abort,
    csv_block,
    init_example,
    must,
    options,
    parse,
    print_total,
    pyc_note,
    require_disk,
    require_kfm,
    rounds_note,
    run,
    throughput_table,
    timed,
    tool_env,
    verdict,
    warn_memory,
    write_block_csv,
)

MONTH = "2023-01"

FILES = 8
FILE_MIB, DEFAULT_ROUNDS = 128, 7
QUICK_FILE_MIB, QUICK_ROUNDS = 8, 1
JOBS = (1, 2)
TARGET = 1.6


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
    parser = options(
        __doc__,
        rounds_help=f"timed rounds (default {DEFAULT_ROUNDS})",
        quick_help=f"smoke run: {FILES} files of {QUICK_FILE_MIB} MiB, {QUICK_ROUNDS} round",
    )
    args = parse(parser, argv)
    file_mib, rounds = (QUICK_FILE_MIB, QUICK_ROUNDS) if args.quick else (FILE_MIB, DEFAULT_ROUNDS)
    if args.rounds is not None:
        rounds = args.rounds

    require_kfm()

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-raw-verify-") as tmp_name:
        tmp = Path(tmp_name)
        month_bytes = FILES * file_mib * MIB
        require_disk(tmp, 3 * month_bytes)
        warn_memory(4 * month_bytes, "objects")
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        repo = init_example(tmp, env)

        t0 = time.perf_counter()
        block = csv_block(seed=2023)
        month_dir = repo / UPSTREAM_REL / MONTH
        for i in range(FILES):
            write_block_csv(month_dir / f"bench-{i:02d}.csv", file_mib * MIB, block, f"bench-{MONTH}-{i:02d}")
        t1 = time.perf_counter()
        must("git add", ["git", *GIT_ID, "add", "-A"], repo)
        must("git commit", ["git", *GIT_ID, "commit", "-q", "-m", "bench: large upstream files"], repo)
        t2 = time.perf_counter()
        must("kfm acquire", [str(KFM), "acquire", str(repo / PLAN_REL), "--chunk", MONTH], repo, env)
        t3 = time.perf_counter()

        objects = sorted(p for p in (repo / STORE_REL / "sha256").glob("*/*") if p.is_file())
        total = sum(p.stat().st_size for p in objects)
        files = sorted(month_dir.glob("*.csv"))
        print(f"python {sys.version.split()[0]}; os.cpu_count() = {os.cpu_count()}; repository {repo}")
        print(f"setup: {len(files)} files ({FILES} generated, {len(files) - FILES} of the example) in {MONTH}, "
              f"generated in {t1 - t0:.1f} s, committed in {t2 - t1:.1f} s, acquired in {t3 - t2:.1f} s: "
              f"{len(objects)} objects (with the terms), {total / MIB:.1f} MiB in the store")
        print(pyc_note(args.no_pyc_cache))

        commands = {f"--jobs {jobs}": verify_command(jobs) for jobs in JOBS}
        for command in commands.values():  # warm-up: page cache, bytecode, and a check that it succeeds
            check_verify(run(command, repo, env), len(objects))

        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                elapsed, _, done = timed(command, repo, env)
                times[name].append(elapsed)
                check_verify(done, len(objects))

        print(f"\nkfm raw verify, {total / MIB:.0f} MiB in {len(objects)} objects, page cache warm "
              f"({rounds_note(rounds)})")
        medians = throughput_table("threads", 10, times, total / MIB, digits=3)
        ratio = medians["--jobs 1"] / medians["--jobs 2"]
        cores = os.cpu_count() or 1
        note = "" if cores >= 2 else f"; only {cores} core, so 2 threads cannot run in parallel"
        print(f"ratio 2-thread/1-thread throughput (raw verify): {ratio:.2f} (target >= {TARGET}; "
              f"{cores} cores{note}) {verdict(ratio >= TARGET)}")
    print_total(began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
