"""Benchmark `kfm acquire` of one month of upstream CSV against `dd conv=fsync` + `openssl dgst -sha256`, and
measure kfm's peak memory while it acquires a single large file.

Setup, all in a temporary directory that is removed at the end (nothing is written into this repository):
``kfm init --example`` makes a governed repository; 8 CSV files of 128 MiB (1 GiB) are added to
``upstream/ks_storm_reports/2023-01/`` next to the example's four small files, and one 2 GiB file to ``2023-02/``.
Each file repeats a block of realistic storm-report lines after a header and a line of its own, so no two files are
identical (identical files would dedupe in the content-addressed store). Everything is committed.

1. Throughput, alternating round by round (kfm, reference, kfm, reference, ...):

   - kfm: ``kfm acquire PLAN --chunk 2023-01 --store <fresh empty dir>`` (hash, write, fsync, rename each file; write
     a manifest and a receipt). The store is write-once, so every round gets a new store, deleted afterwards; the
     manifest for the same bytes is reused, which costs nothing measurable.
   - reference: for each file of the month folder in turn, ``dd if=FILE of=<fresh dir>/FILE bs=1M conv=fsync`` and
     then ``openssl dgst -sha256 FILE``, timed together as one sequential job (as kfm works file by file).

   Page cache: both tools read the upstream files from the page cache. The files are read once before anything is
   timed (and each tool makes one untimed warm-up run, which also checks that both succeed and that openssl's
   digests equal the ones in kfm's manifest); ``sync`` runs before every timed job so that no dirty pages from the
   previous job are flushed during the next. The machine needs free memory for the files plus one copy.
   Reported: median seconds, throughput in MiB/s of the month's bytes, and the ratio of kfm's throughput to the
   reference's; target at least 0.8.

2. Peak memory: ``kfm acquire PLAN --chunk 2023-02`` (the 2 GiB file) runs under a small Python wrapper that reports
   ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, i.e. the peak RSS of kfm alone; for comparison the same is
   measured for chunk 2023-04 (the example's four small files). The peak should stay flat, far below the file size:
   this script calls it flat when the large file adds at most 32 MiB over the small chunk.

Bytecode: as in ``plan_validate.py``, kfm runs with PYTHONDONTWRITEBYTECODE removed and PYTHONPYCACHEPREFIX pointing
into the temporary directory (an installed wheel has its .pyc files); ``--no-pyc-cache`` keeps the environment as
inherited. This is a script, not a test: it prints figures and fails only when a tool does.

Run it from the repository root with::

    .venv/bin/python bench/acquire.py            # full run: 1 GiB month, 2 GiB file, 5 rounds
    .venv/bin/python bench/acquire.py --quick    # smoke run: 64 MiB month, 128 MiB file, 1 round
    .venv/bin/python bench/acquire.py --rounds 9
"""

from __future__ import annotations

import json
import os
import shutil
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
    UPSTREAM_REL,
    abort,
    csv_block,
    init_example,
    must,
    options,
    parse,
    print_total,
    pyc_note,
    read_all,
    require_disk,
    require_kfm,
    rounds_note,
    run,
    throughput_table,
    timed,
    tool_env,
    verdict,
    warn_memory,
    wrapped,
    write_block_csv,
)

MONTH, BIG_MONTH, SMALL_MONTH = "2023-01", "2023-02", "2023-04"

FILES = 8
FILE_MIB, BIG_MIB, DEFAULT_ROUNDS = 128, 2048, 5
QUICK_FILE_MIB, QUICK_BIG_MIB, QUICK_ROUNDS = 8, 128, 1
TARGET = 0.8
FLAT_MIB = 32


def kfm_acquire(plan: Path, chunk: str, store: Path) -> list[str]:
    return [str(KFM), "acquire", str(plan), "--chunk", chunk, "--store", str(store), "--format", "json"]


def check_acquire(done: subprocess.CompletedProcess[str], files: Sequence[Path]) -> dict[str, object]:
    """Abort unless kfm acquired exactly `files`; the chunk's entry of its JSON report."""
    if done.returncode != 0:
        abort("kfm acquire failed", done)
    chunk: dict[str, object] = json.loads(done.stdout)["chunks"][0]
    expected = sum(p.stat().st_size for p in files)
    if chunk["objects"] != len(files) or chunk["bytes"] != expected:
        abort(f"kfm acquired {chunk['objects']} objects / {chunk['bytes']} bytes, expected {len(files)} / {expected}",
              done)
    return chunk


def reference(files: Sequence[Path], out_dir: Path, cwd: Path) -> dict[str, str]:
    """dd with fsync, then openssl sha256, file by file. Returns {file name: sha256 digest}."""
    digests: dict[str, str] = {}
    for path in files:
        dd = ["dd", f"if={path}", f"of={out_dir / path.name}", "bs=1M", "conv=fsync", "status=none"]
        done = run(dd, cwd)
        if done.returncode != 0:
            abort(f"dd failed on {path.name}", done)
        done = run(["openssl", "dgst", "-sha256", "-r", str(path)], cwd)
        if done.returncode != 0:
            abort(f"openssl failed on {path.name}", done)
        digests[path.name] = "sha256:" + done.stdout.split()[0]
    return digests


def peak_rss_kib(command: Sequence[str], cwd: Path, env: dict[str, str], tmp: Path
                 ) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """Wall time, peak RSS (KiB, of the command and its descendants, not of this script) and the result."""
    elapsed, usage, done = wrapped(command, cwd, env, tmp)
    return elapsed, int(usage["maxrss_kib"]), done


def main(argv: Sequence[str] | None = None) -> int:
    parser = options(
        __doc__,
        rounds_help=f"timed rounds (default {DEFAULT_ROUNDS})",
        quick_help=f"smoke run: {FILES} files of {QUICK_FILE_MIB} MiB, a {QUICK_BIG_MIB} MiB file, "
        f"{QUICK_ROUNDS} round",
    )
    args = parse(parser, argv)
    file_mib, big_mib, rounds = (QUICK_FILE_MIB, QUICK_BIG_MIB, QUICK_ROUNDS) if args.quick else (
        FILE_MIB, BIG_MIB, DEFAULT_ROUNDS)
    if args.rounds is not None:
        rounds = args.rounds

    require_kfm()
    for tool in ("git", "dd", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"abort: {tool} not found on PATH; the reference needs it")

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-acquire-") as tmp_name:
        tmp = Path(tmp_name)
        month_bytes, big_bytes = FILES * file_mib * MIB, big_mib * MIB
        require_disk(tmp, 3 * month_bytes + 2 * big_bytes)
        warn_memory(4 * month_bytes, "files")
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        repo = init_example(tmp, env)
        plan = repo / PLAN_REL

        t0 = time.perf_counter()
        block = csv_block(seed=2023)
        month_dir = repo / UPSTREAM_REL / MONTH
        for i in range(FILES):
            write_block_csv(month_dir / f"bench-{i:02d}.csv", file_mib * MIB, block, f"bench-{MONTH}-{i:02d}")
        big = repo / UPSTREAM_REL / BIG_MONTH / "bench-big.csv"
        write_block_csv(big, big_bytes, block, f"bench-{BIG_MONTH}-big")
        t1 = time.perf_counter()
        must("git add", ["git", *GIT_ID, "add", "-A"], repo)
        must("git commit", ["git", *GIT_ID, "commit", "-q", "-m", "bench: large upstream files"], repo)
        t2 = time.perf_counter()

        files = sorted(p for p in month_dir.iterdir() if p.suffix == ".csv")
        total = sum(p.stat().st_size for p in files)
        print(f"python {sys.version.split()[0]}; {os.cpu_count()} cores; repository {repo}")
        print(f"setup: {len(files)} files ({FILES} generated, {len(files) - FILES} of the example), "
              f"{total / MIB:.1f} MiB in {MONTH} and {big.stat().st_size / MIB:.0f} MiB "
              f"in {BIG_MONTH}, generated in {t1 - t0:.1f} s, committed in {t2 - t1:.1f} s")
        print(pyc_note(args.no_pyc_cache))

        # Warm-up: cache the files, check both tools and that they agree on every digest.
        read_all(files)
        chunk = check_acquire(run(kfm_acquire(plan, MONTH, tmp / "store-warm"), repo, env), files)
        shutil.rmtree(tmp / "store-warm")
        manifest = json.loads((repo / str(chunk["manifest"])).read_text(encoding="utf-8"))
        kfm_digests = {Path(o["name"]).name: o["digest"] for o in manifest["objects"]}
        (tmp / "ref-warm").mkdir()
        ref_digests = reference(files, tmp / "ref-warm", repo)
        shutil.rmtree(tmp / "ref-warm")
        if kfm_digests != ref_digests:
            sys.exit(f"abort: kfm and openssl disagree on digests\nkfm: {kfm_digests}\nopenssl: {ref_digests}")

        times: dict[str, list[float]] = {"kfm acquire": [], "dd + openssl": []}
        for n in range(rounds):
            store = tmp / f"store-{n}"
            elapsed, _, done = timed(kfm_acquire(plan, MONTH, store), repo, env, sync=True)
            times["kfm acquire"].append(elapsed)
            check_acquire(done, files)
            shutil.rmtree(store)

            out_dir = tmp / f"ref-{n}"
            out_dir.mkdir()
            os.sync()
            start = time.perf_counter()
            reference(files, out_dir, repo)
            times["dd + openssl"].append(time.perf_counter() - start)
            shutil.rmtree(out_dir)

        print(f"\nacquire {total / MIB:.0f} MiB, {len(files)} files, page cache warm ({rounds_note(rounds)})")
        medians = throughput_table("tool", 16, times, total / MIB)
        ratio = medians["dd + openssl"] / medians["kfm acquire"]
        print(f"ratio kfm/reference throughput (acquire): {ratio:.2f} (target >= {TARGET}) {verdict(ratio >= TARGET)}")

        # Peak memory: a chunk of small files, then the one large file.
        small_files = sorted((repo / UPSTREAM_REL / SMALL_MONTH).glob("*.csv"))
        _, base_kib, done = peak_rss_kib(kfm_acquire(plan, SMALL_MONTH, tmp / "store-mem-small"), repo, env, tmp)
        check_acquire(done, small_files)
        big_files = sorted((repo / UPSTREAM_REL / BIG_MONTH).glob("*.csv"))
        os.sync()
        elapsed, big_kib, done = peak_rss_kib(kfm_acquire(plan, BIG_MONTH, tmp / "store-mem-big"), repo, env, tmp)
        check_acquire(done, big_files)
        big_mib_real = big.stat().st_size / MIB
        growth = (big_kib - base_kib) / 1024
        print("\npeak memory of kfm acquire (ru_maxrss of the kfm process)")
        print(f"  chunk {SMALL_MONTH}, {len(small_files)} small files:{base_kib / 1024:>12.1f} MiB")
        print(f"  chunk {BIG_MONTH}, one {big_mib_real:.0f} MiB file:{big_kib / 1024:>12.1f} MiB "
              f"(acquired in {elapsed:.1f} s, {big_mib_real / elapsed:.0f} MiB/s, page cache not controlled)")
        flat = "flat" if growth <= FLAT_MIB else "NOT FLAT"
        print(f"peak RSS growth for the {big_mib_real:.0f} MiB file: {growth:+.1f} MiB "
              f"(target: at most {FLAT_MIB} MiB, far below the file size) {flat}")
    print_total(began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
