"""Benchmark `kfm process` of one chunk (CSV -> GeoParquet) against a bare pyarrow CSV -> Parquet conversion of the
same file, and measure kfm's peak memory on a 2 GiB chunk and how busy it keeps the cores.

Setup, all in a temporary directory that is removed at the end (nothing is written into this repository):
``kfm init --example`` makes a governed repository. The example's small CSV files of January and February 2023 are
deleted, and one generated CSV takes their place in each month folder: 1 GiB in ``upstream/ks_storm_reports/2023-01/``
and 2 GiB in ``2023-02/``, so that each chunk is exactly one file and the reference converts the very bytes kfm
processes. The rows look like the example's (``kfm_gitops.example``): unique ids (``KS-202301-00000001``), event times
strictly inside the month with ``Z``, nondecreasing as in a month's batch file; county, event type, source from the
example's vocabularies; magnitudes as the example writes them (3% empty), injuries (30% empty); longitude and latitude
with 4 decimals around the county's centre, inside [-101.9, -94.7] x [37.1, 39.9]. Every row is valid, so kfm
accepts all of them (checked after every run). The rows are built vectorised (numpy draws, pyarrow string
vocabularies joined per row) and written block by block. Nothing is committed: ``kfm acquire`` refuses only an
uncommitted kfm.yaml, dataset contract, plan or policy, not upstream data, and committing 3 GiB would take long.
``kfm acquire PLAN --chunk 2023-01`` and ``--chunk 2023-02`` then copy the files into the store (``.kfm/objects``),
untimed (bench/acquire.py measures acquisition).

1. Throughput, alternating round by round (kfm, reference, kfm, reference, ...), ``sync`` before each timed job:

   - kfm: ``kfm process PLAN --chunk 2023-01`` (read the stored object, normalise, QA, quarantine, write one
     GeoParquet per monthly partition into the store, write a run folder). Every round writes a new run folder and
     puts the same GeoParquet into the content-addressed store again, where it already is (no new object).
   - reference: the same interpreter runs ``pyarrow.csv.open_csv`` on the upstream file with default options (type
     inference, 1 MiB blocks, threads) and writes each record batch as it comes with ``ParquetWriter.write_batch``
     (compression zstd, otherwise defaults): the straightforward streaming conversion a user would write, with no
     geometry, checks or store.

   Page cache: both read warm files (the stored object was just written by acquire, the upstream file just
   generated), and each tool makes one untimed warm-up run first, which also checks that both succeed and count
   every row. Reported: median seconds, throughput in MiB/s of the CSV, the ratio of kfm's throughput to the
   reference's (target at least 0.5, mark 0.7), output sizes, and the peak RSS of both warm-up runs.

2. Peak memory: ``kfm process PLAN --chunk 2023-02`` (the 2 GiB file) runs under a small Python wrapper that reports
   ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after its only child, i.e. the peak RSS of kfm alone; target at
   most 1 GiB. The reference makes the same run on the same file, for comparison.

3. Cores: CPU time (user + system) over wall time of kfm's runs, from ``resource.getrusage(RUSAGE_CHILDREN)`` deltas
   around each subprocess (and in the wrapper for the 2 GiB run); target at least 1.6 for the 1 GiB chunk (median
   of the rounds) and reported for the 2 GiB run too.

Bytecode: as in ``plan_validate.py``, kfm and the reference run with PYTHONDONTWRITEBYTECODE removed and
PYTHONPYCACHEPREFIX pointing into the temporary directory (an installed wheel has its .pyc files);
``--no-pyc-cache`` keeps the environment as inherited. This is a script, not a test: it prints figures and fails only
when a tool does.

Run it from the repository root with::

    .venv/bin/python bench/process.py            # full run: 1 GiB chunk, 2 GiB chunk, 5 rounds
    .venv/bin/python bench/process.py --quick    # smoke run: 64 MiB chunk, 128 MiB chunk, 1 round
    .venv/bin/python bench/process.py --rounds 9
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from _common import (
    KFM,
    MIB,
    PLAN_REL,
    REFERENCE_NOTE,
    STORE_REL,
    UPSTREAM_REL,
    abort,
    check_reference,
    init_example,
    must,
    options,
    parse,
    print_total,
    pyc_note,
    reference_command,
    require_disk,
    require_kfm,
    rounds_note,
    throughput_table,
    timed,
    tool_env,
    verdict,
    warn_memory,
    wrapped,
    write_reports_csv,
)

MONTH, BIG_MONTH = "2023-01", "2023-02"

CHUNK_MIB, BIG_MIB, DEFAULT_ROUNDS = 1024, 2048, 5
QUICK_CHUNK_MIB, QUICK_BIG_MIB, QUICK_ROUNDS = 64, 128, 1
TARGET, MARK = 0.5, 0.7
PEAK_LIMIT_MIB = 1024
CORES_TARGET = 1.6

SUMMARY = re.compile(r"^chunk (\S+): (\d+) rows, (\d+) accepted, (\d+) quarantined$", re.MULTILINE)
PARTITION = re.compile(r"^  partition (\S+): (\d+) rows -> (sha256:[0-9a-f]{64})$", re.MULTILINE)


def process_command(plan: Path, chunk: str) -> list[str]:
    return [str(KFM), "process", str(plan), "--chunk", chunk]


def check_process(done: subprocess.CompletedProcess[str], chunk: str, rows: int, store: Path) -> int:
    """Abort unless kfm processed `rows` rows of `chunk`, accepted all and wrote one partition; its size in bytes."""
    if done.returncode != 0:
        abort(f"kfm process --chunk {chunk} failed", done)
    summary = SUMMARY.search(done.stdout)
    parts = PARTITION.findall(done.stdout)
    if summary is None or summary.group(1) != chunk or len(parts) != 1:
        abort(f"kfm process --chunk {chunk}: unexpected summary", done)
        return 0
    total, accepted, quarantined = (int(summary.group(i)) for i in (2, 3, 4))
    if (total, accepted, quarantined) != (rows, rows, 0) or parts[0] != (chunk, str(rows), parts[0][2]):
        abort(f"kfm process --chunk {chunk}: expected {rows} rows, all accepted, in partition {chunk}", done)
    digest: str = parts[0][2][7:]
    return (store / "sha256" / digest[:2] / digest).stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    parser = options(
        __doc__,
        rounds_help=f"timed rounds (default {DEFAULT_ROUNDS})",
        quick_help=f"smoke run: a {QUICK_CHUNK_MIB} MiB chunk, a {QUICK_BIG_MIB} MiB chunk, {QUICK_ROUNDS} round",
        who="the tools",
    )
    args = parse(parser, argv)
    chunk_mib, big_mib, rounds = (QUICK_CHUNK_MIB, QUICK_BIG_MIB, QUICK_ROUNDS) if args.quick else (
        CHUNK_MIB, BIG_MIB, DEFAULT_ROUNDS)
    if args.rounds is not None:
        rounds = args.rounds

    require_kfm()

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-chunk-") as tmp_name:
        tmp = Path(tmp_name)
        chunk_bytes, big_bytes = chunk_mib * MIB, big_mib * MIB
        # The CSVs, their copies in the store, and Parquet outputs (well under the CSV size).
        require_disk(tmp, 3 * (chunk_bytes + big_bytes))
        warn_memory(2 * (chunk_bytes + big_bytes) + PEAK_LIMIT_MIB * MIB, "files")
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        repo = init_example(tmp, env)
        plan = repo / PLAN_REL
        store = repo / STORE_REL

        t0 = time.perf_counter()
        csvs: dict[str, Path] = {}
        rows: dict[str, int] = {}
        for month, size in ((MONTH, chunk_bytes), (BIG_MONTH, big_bytes)):
            month_dir = repo / UPSTREAM_REL / month
            for small in month_dir.glob("*.csv"):
                small.unlink()
            csvs[month] = month_dir / f"bench-{month}.csv"
            rows[month] = write_reports_csv(csvs[month], size, month)
        t1 = time.perf_counter()
        for month in (MONTH, BIG_MONTH):
            must("kfm acquire", [str(KFM), "acquire", str(plan), "--chunk", month], repo, env)
        t2 = time.perf_counter()

        mib = {month: path.stat().st_size / MIB for month, path in csvs.items()}
        print(f"python {sys.version.split()[0]}; pyarrow {pa.__version__}; {os.cpu_count()} cores; repository {repo}")
        print(f"setup: one generated CSV per chunk in place of the example's small files (not committed): "
              f"{MONTH} {mib[MONTH]:.1f} MiB, {rows[MONTH]} rows; {BIG_MONTH} {mib[BIG_MONTH]:.1f} MiB, "
              f"{rows[BIG_MONTH]} rows; generated in {t1 - t0:.1f} s "
              f"({(mib[MONTH] + mib[BIG_MONTH]) / (t1 - t0):.0f} MiB/s), acquired in {t2 - t1:.1f} s")
        print(pyc_note(args.no_pyc_cache))
        print(f"reference: {REFERENCE_NOTE}")

        # Warm-up: page cache, bytecode, a check that both succeed and count every row; peak RSS of each.
        _, kfm_warm, done = wrapped(process_command(plan, MONTH), repo, env, tmp)
        kfm_out = check_process(done, MONTH, rows[MONTH], store)
        ref_out_path = tmp / "reference.parquet"
        _, ref_warm, done = wrapped(reference_command([(csvs[MONTH], ref_out_path)]), repo, env, tmp)
        check_reference(done, rows[MONTH])
        ref_out = ref_out_path.stat().st_size
        ref_out_path.unlink()

        names = ("kfm process", "pyarrow csv->parquet")
        times: dict[str, list[float]] = {name: [] for name in names}
        busy: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(rounds):
            for name in names:
                command = (process_command(plan, MONTH) if name == "kfm process"
                           else reference_command([(csvs[MONTH], ref_out_path)]))
                elapsed, cpu, done = timed(command, repo, env, sync=True)
                if name == "kfm process":
                    check_process(done, MONTH, rows[MONTH], store)
                else:
                    check_reference(done, rows[MONTH])
                    ref_out_path.unlink()
                times[name].append(elapsed)
                busy[name].append(cpu / elapsed)

        print(f"\nprocess chunk {MONTH}: one {mib[MONTH]:.0f} MiB CSV, {rows[MONTH]} rows, page cache warm "
              f"({rounds_note(rounds)})")
        medians = throughput_table("tool", 22, times, mib[MONTH], busy=busy)
        print(f"  output: kfm GeoParquet {kfm_out / MIB:.1f} MiB, reference Parquet {ref_out / MIB:.1f} MiB; "
              f"peak RSS (warm-up runs): kfm {kfm_warm['maxrss_kib'] / 1024:.0f} MiB, "
              f"reference {ref_warm['maxrss_kib'] / 1024:.0f} MiB")
        ratio = medians["pyarrow csv->parquet"] / medians["kfm process"]
        reached = "met, mark reached" if ratio >= MARK else verdict(ratio >= TARGET)
        print(f"ratio kfm/reference throughput (process {mib[MONTH]:.0f} MiB): {ratio:.2f} "
              f"(target >= {TARGET}, mark {MARK}) {reached}")
        cores = os.cpu_count() or 1
        kfm_busy = statistics.median(busy["kfm process"])
        print(f"CPU/wall of kfm process (chunk {MONTH}, median): {kfm_busy:.2f} (target >= {CORES_TARGET}; "
              f"{cores} cores) {verdict(kfm_busy >= CORES_TARGET)}")

        # Peak memory on the larger chunk, kfm then the reference, each under the wrapper.
        os.sync()
        kfm_s, kfm_big, done = wrapped(process_command(plan, BIG_MONTH), repo, env, tmp)
        check_process(done, BIG_MONTH, rows[BIG_MONTH], store)
        os.sync()
        ref_s, ref_big, done = wrapped(reference_command([(csvs[BIG_MONTH], ref_out_path)]), repo, env, tmp)
        check_reference(done, rows[BIG_MONTH])
        ref_out_path.unlink()
        print(f"\npeak memory, chunk {BIG_MONTH}: one {mib[BIG_MONTH]:.0f} MiB CSV, {rows[BIG_MONTH]} rows "
              f"(ru_maxrss and CPU of the tool's process, one run each)")
        print(f"  {'tool':<22} {'peak MiB':>10} {'s':>10} {'MiB/s':>10} {'CPU/wall':>9}")
        for name, seconds, usage in (("kfm process", kfm_s, kfm_big), ("pyarrow csv->parquet", ref_s, ref_big)):
            print(f"  {name:<22} {usage['maxrss_kib'] / 1024:>10.0f} {seconds:>10.2f} "
                  f"{mib[BIG_MONTH] / seconds:>10.1f} {usage['cpu_s'] / seconds:>9.2f}")
        peak = kfm_big["maxrss_kib"] / 1024
        print(f"peak RSS of kfm process ({mib[BIG_MONTH]:.0f} MiB chunk): {peak:.0f} MiB "
              f"(target <= {PEAK_LIMIT_MIB} MiB) {verdict(peak <= PEAK_LIMIT_MIB)}")
        big_busy = kfm_big["cpu_s"] / kfm_s
        print(f"CPU/wall of kfm process (chunk {BIG_MONTH}): {big_busy:.2f} (target >= {CORES_TARGET}; "
              f"{cores} cores) {verdict(big_busy >= CORES_TARGET)}")
    print_total(began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
