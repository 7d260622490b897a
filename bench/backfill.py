"""Benchmark `kfm backfill run` end to end (acquire, normalise, QA, materialise, receipts, roll-up) on the example
plan scaled up to about 1 GiB of CSV, against a bare pyarrow CSV -> Parquet conversion of the same files; the re-run
of the completed backfill; kfm's peak memory and CPU/wall.

Setup, all in a temporary directory that is removed at the end (nothing is written into this repository):
``kfm init --example`` makes a governed repository, the source. The example plan
(``plans/ks_storm_reports/backfill-20230705-0c1d2e.yml``) has six monthly chunks, 2023-01 to 2023-06, at most two
at once (``chunking.max_parallelism``). The example's small CSV files of those months are deleted in the source and
the deletion committed; one generated CSV of 180 MiB per month (1080 MiB in all) is written outside the repository,
with the generator of ``bench/process.py`` (``_common.write_reports_csv``: the example's columns and vocabularies,
every row valid, so kfm accepts all of them). 2023-03, a gap in the example's folder (its reports come as a
redelivery in another folder, which the plan's connector does not read), gets a file too.

Every round starts from a fresh state: a ``git clone`` of the source (no runs, no store, no version), with the
generated files hard-linked into ``upstream/ks_storm_reports/YYYY-MM/`` (not committed: ``kfm backfill run``
refuses uncommitted kfm.yaml, contract, plan or policies, not upstream data; the same inodes, so the page cache is
shared). Untimed, and the clone is deleted after the round. Then, ``sync`` before each timed job:

1. kfm, first run: ``kfm backfill run PLAN --yes --format json`` in the clone (default store ``.kfm/objects``):
   every chunk acquired (hashed, copied with fsync), processed into one GeoParquet partition, with its receipt,
   then the roll-up writes the version and its id into the plan. Checked: every chunk done, every row accepted, one
   partition per chunk, a version.
2. kfm, re-run: the same command again in the same clone. Checked: every chunk reused, the same partitions and
   version. Target: at most 10% of the first run's time.
3. reference: one process converts the six CSVs in turn, the loop of ``bench/process.py``'s reference (open_csv with
   default options, ``ParquetWriter.write_batch`` per batch, zstd) over all files, sequentially, into a fresh folder.
   Target: kfm's throughput (first run) at least 0.5 of the reference's.

Each of the three runs under a small Python wrapper that reports ``resource.getrusage(RUSAGE_CHILDREN)`` after its
only child: peak RSS (ru_maxrss) and CPU time of the tool's process alone; the wall times include the wrapper's start
(tens of milliseconds, alike for all three). Peak memory target: at most 1 GiB per chunk running at once, i.e.
1 GiB x max_parallelism for the kfm process. CPU/wall (user + system over wall) is reported for the first run.

Page cache: the generated files are read once before anything is timed; an untimed warm-up runs ``kfm backfill
run`` on an unchanged example repository and the reference on one of its files (bytecode, and a check that both
run). Bytecode: as in ``plan_validate.py``, the tools run with PYTHONDONTWRITEBYTECODE removed and
PYTHONPYCACHEPREFIX pointing into the temporary directory; ``--no-pyc-cache`` keeps the environment as inherited.
This is a script, not a test: it prints figures and fails only when a tool does.

Run it from the repository root with::

    .venv/bin/python bench/backfill.py            # full run: 6 chunks of 180 MiB, 3 rounds
    .venv/bin/python bench/backfill.py --quick    # smoke run: 6 chunks of 16 MiB, 1 round
    .venv/bin/python bench/backfill.py --rounds 5
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from _common import (
    GIT_ID,
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
    read_all,
    reference_command,
    require_disk,
    require_kfm,
    rounds_note,
    run,
    throughput_table,
    tool_env,
    verdict,
    warn_memory,
    wrapped,
    write_reports_csv,
)

CHUNK_MIB, DEFAULT_ROUNDS = 180, 3
QUICK_CHUNK_MIB, QUICK_ROUNDS = 16, 1
TARGET = 0.5
RERUN_TARGET = 0.10
PEAK_PER_CHUNK_MIB = 1024

KFM_NAME, REF_NAME = "kfm backfill run", "pyarrow csv->parquet"


def backfill_command(plan: Path) -> list[str]:
    return [str(KFM), "backfill", "run", str(plan), "--yes", "--format", "json"]


def check_backfill(done: subprocess.CompletedProcess[str], state: str, rows: dict[str, int]) -> dict[str, Any]:
    """Abort unless every chunk of `rows` is in `state` with all its rows accepted in one partition of its own and a
    version was rolled up; the JSON report."""
    if done.returncode != 0:
        abort(f"kfm backfill run failed (expected every chunk {state})", done)
    report: dict[str, Any] = json.loads(done.stdout)
    chunks = {c["chunk"]: c for c in report["chunks"]}
    if sorted(chunks) != sorted(rows) or not report["ok"] or not report["version"]:
        abort(f"kfm backfill run: expected chunks {sorted(rows)} and a version", done)
    for key, n in rows.items():
        c = chunks[key]
        parts = [p["partition"] for p in c["partitions"]]
        if c["state"] != state or c["rows"] != [n, n, 0] or parts != [key]:
            abort(f"kfm backfill run: chunk {key} is {c['state']} with rows {c['rows']} in {parts}, expected "
                  f"{state} with {n} rows, all accepted, in partition {key}", done)
    return report


def partitions_of(report: dict[str, Any]) -> dict[str, str]:
    return {p["partition"]: p["digest"] for c in report["chunks"] for p in c["partitions"]}


def fresh_clone(source: Path, dest: Path, csvs: dict[str, Path]) -> Path:
    """A clone of the source with the generated files linked into its upstream folders; its plan."""
    must("git clone", ["git", *GIT_ID, "clone", "-q", str(source), str(dest)], source.parent)
    for month, csv in csvs.items():
        folder = dest / UPSTREAM_REL / month
        folder.mkdir(parents=True, exist_ok=True)
        os.link(csv, folder / csv.name)
    return dest / PLAN_REL


def main(argv: Sequence[str] | None = None) -> int:
    parser = options(
        __doc__,
        rounds_help=f"timed rounds (default {DEFAULT_ROUNDS})",
        quick_help=f"smoke run: 6 chunks of {QUICK_CHUNK_MIB} MiB, {QUICK_ROUNDS} round",
        who="the tools",
    )
    args = parse(parser, argv)
    chunk_mib, rounds = (QUICK_CHUNK_MIB, QUICK_ROUNDS) if args.quick else (CHUNK_MIB, DEFAULT_ROUNDS)
    if args.rounds is not None:
        rounds = args.rounds

    require_kfm()

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-backfill-") as tmp_name:
        tmp = Path(tmp_name)
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        source = init_example(tmp, env, "source")
        plan_doc = yaml.safe_load((source / PLAN_REL).read_text(encoding="utf-8"))
        parallel = int(plan_doc["chunking"]["max_parallelism"])
        limit_mib = PEAK_PER_CHUNK_MIB * parallel
        listed = json.loads(must("kfm backfill matrix", [str(KFM), "backfill", "matrix", str(source / PLAN_REL)],
                                 source, env))
        months = [key for item in listed["include"] for key in item["chunks"].split()]
        csv_bytes = len(months) * chunk_mib * MIB
        # The CSVs, their copies in one clone's store, the Parquet outputs of kfm and the reference (well under).
        require_disk(tmp, 3 * csv_bytes)
        warn_memory(2 * csv_bytes + limit_mib * MIB, "files")

        for month in months:
            for small in (source / UPSTREAM_REL / month).glob("*.csv"):
                small.unlink()
        must("git add", ["git", *GIT_ID, "add", "-A", str(UPSTREAM_REL)], source)
        must("git commit", ["git", *GIT_ID, "commit", "-q", "-m", "bench: without the small files"], source)
        t0 = time.perf_counter()
        csvs: dict[str, Path] = {}
        rows: dict[str, int] = {}
        for month in months:
            csvs[month] = tmp / "csv" / month / f"bench-{month}.csv"
            rows[month] = write_reports_csv(csvs[month], chunk_mib * MIB, month)
        t1 = time.perf_counter()
        mib = sum(p.stat().st_size for p in csvs.values()) / MIB
        total_rows = sum(rows.values())

        print(f"python {sys.version.split()[0]}; pyarrow {pa.__version__}; {os.cpu_count()} cores; "
              f"source repository {source}")
        print(f"setup: one generated CSV per chunk ({months[0]} .. {months[-1]}) in place of the example's small "
              f"files (not committed): {len(months)} files, {mib:.1f} MiB, {total_rows} rows; "
              f"generated in {t1 - t0:.1f} s ({mib / (t1 - t0):.0f} MiB/s)")
        print(f"plan: {PLAN_REL.as_posix()}, {len(months)} {plan_doc['chunking']['mode']} chunks, "
              f"max_parallelism {parallel}; a fresh clone of the source per round")
        print(pyc_note(args.no_pyc_cache))
        print(f"reference: {REFERENCE_NOTE}; the {len(months)} files in turn in one process")

        # Warm-up: bytecode and a check that both tools run, on the unchanged example; the files into the cache.
        warm = init_example(tmp, env, "warm")
        warm_plan = warm / PLAN_REL
        done = run(backfill_command(warm_plan), warm, env)
        if done.returncode != 0:
            abort("kfm backfill run (warm-up on the example) failed", done)
        warm_csv = sorted((warm / UPSTREAM_REL / months[0]).glob("*.csv"))[0]
        done = run(reference_command([(warm_csv, tmp / "warm.parquet")]), warm, env)
        if done.returncode != 0:
            abort("the reference conversion (warm-up on the example) failed", done)
        shutil.rmtree(warm)
        read_all(list(csvs.values()))

        times: dict[str, list[float]] = {KFM_NAME: [], REF_NAME: []}
        busy: dict[str, list[float]] = {KFM_NAME: [], REF_NAME: []}
        rerun: list[float] = []
        peaks: dict[str, list[float]] = {"first": [], "re-run": [], "reference": []}
        kfm_out = ref_out = 0
        for n in range(rounds):
            clone = tmp / f"clone-{n}"
            plan = fresh_clone(source, clone, csvs)

            os.sync()
            elapsed, usage, done = wrapped(backfill_command(plan), clone, env, tmp)
            first = check_backfill(done, "done", rows)
            times[KFM_NAME].append(elapsed)
            busy[KFM_NAME].append(usage["cpu_s"] / elapsed)
            peaks["first"].append(usage["maxrss_kib"] / 1024)

            os.sync()
            elapsed, usage, done = wrapped(backfill_command(plan), clone, env, tmp)
            second = check_backfill(done, "reused", rows)
            if second["version"] != first["version"] or partitions_of(second) != partitions_of(first):
                abort(f"the re-run rolled up {second['version']}, the first run {first['version']}", done)
            rerun.append(elapsed)
            peaks["re-run"].append(usage["maxrss_kib"] / 1024)
            store = clone / STORE_REL / "sha256"
            kfm_out = sum((store / d[7:9] / d[7:]).stat().st_size for d in partitions_of(first).values())

            out_dir = tmp / f"ref-{n}"
            out_dir.mkdir()
            pairs = [(csvs[m], out_dir / f"{m}.parquet") for m in months]
            os.sync()
            elapsed, usage, done = wrapped(reference_command(pairs), tmp, env, tmp)
            check_reference(done, total_rows)
            times[REF_NAME].append(elapsed)
            busy[REF_NAME].append(usage["cpu_s"] / elapsed)
            peaks["reference"].append(usage["maxrss_kib"] / 1024)
            ref_out = sum(p.stat().st_size for _, p in pairs)
            shutil.rmtree(out_dir)
            shutil.rmtree(clone)

        print(f"\nbackfill {mib:.0f} MiB of CSV in {len(months)} chunks, {total_rows} rows, page cache warm "
              f"({rounds_note(rounds)}; kfm: first run of a fresh clone)")
        medians = throughput_table("tool", 22, times, mib, busy=busy)
        print(f"  output: kfm GeoParquet {kfm_out / MIB:.1f} MiB in {len(months)} partitions, "
              f"reference Parquet {ref_out / MIB:.1f} MiB in {len(months)} files")
        ratio = medians[REF_NAME] / medians[KFM_NAME]
        print(f"ratio kfm/reference throughput (backfill {mib:.0f} MiB): {ratio:.2f} (target >= {TARGET}) "
              f"{verdict(ratio >= TARGET)}")
        cores = os.cpu_count() or 1
        print(f"CPU/wall of kfm backfill run (first run, median): {statistics.median(busy[KFM_NAME]):.2f} "
              f"({cores} cores, up to {parallel} chunks at once)")

        first_s, rerun_s = medians[KFM_NAME], statistics.median(rerun)
        print("\nre-run of the completed backfill in the same clone, every chunk reused (the same rounds)")
        print(f"  {'run':<22} {'median s':>10}   all rounds (s)")
        for name, seconds, samples in (("first run", first_s, times[KFM_NAME]), ("re-run", rerun_s, rerun)):
            print(f"  {name:<22} {seconds:>10.3f}   {' '.join(f'{s:.3f}' for s in samples)}")
        rerun_ratio = rerun_s / first_s
        print(f"ratio re-run/first run time: {rerun_ratio:.3f} (target <= {RERUN_TARGET}) "
              f"{verdict(rerun_ratio <= RERUN_TARGET)}")

        print("\npeak memory (ru_maxrss of the tool's process): the largest of the rounds, and every round")
        print(f"  {'run':<22} {'peak MiB':>10}   all rounds (MiB)")
        labels = {"first": "kfm, first run", "re-run": "kfm, re-run", "reference": REF_NAME}
        for key, label in labels.items():
            print(f"  {label:<22} {max(peaks[key]):>10.0f}   {' '.join(f'{p:.0f}' for p in peaks[key])}")
        peak = max(peaks["first"])
        print(f"peak RSS of kfm backfill run: {peak:.0f} MiB, {peak / limit_mib:.2f} of the limit {limit_mib} MiB "
              f"({PEAK_PER_CHUNK_MIB} MiB x max_parallelism {parallel}) {verdict(peak <= limit_mib)}")
    print_total(began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
