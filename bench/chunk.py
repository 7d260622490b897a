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

    .venv/bin/python bench/chunk.py            # full run: 1 GiB chunk, 2 GiB chunk, 5 rounds
    .venv/bin/python bench/chunk.py --quick    # smoke run: 64 MiB chunk, 128 MiB chunk, 1 round
    .venv/bin/python bench/chunk.py --rounds 9
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kfm_gitops.example import COUNTIES, HEADER, SOURCES

BIN = Path(sys.executable).parent
KFM = BIN / "kfm"
SLUG = "ks_storm_reports"
PLAN_REL = Path("plans") / SLUG / "backfill-20230705-0c1d2e.yml"
UPSTREAM_REL = Path("upstream") / SLUG
STORE_REL = Path(".kfm") / "objects"
MONTH, BIG_MONTH = "2023-01", "2023-02"

MIB = 1024 * 1024
CHUNK_MIB, BIG_MIB, DEFAULT_ROUNDS = 1024, 2048, 5
QUICK_CHUNK_MIB, QUICK_BIG_MIB, QUICK_ROUNDS = 64, 128, 1
TARGET, MARK = 0.5, 0.7
PEAK_LIMIT_MIB = 1024
CORES_TARGET = 1.6

# Rows per generated block (about 23 MiB of CSV).
BLOCK_ROWS = 1 << 18
LON_RANGE = (947_000, 1_019_000)  # |longitude| in 1e-4 degrees: -101.9 .. -94.7
LAT_RANGE = (371_000, 399_000)  # latitude in 1e-4 degrees: 37.1 .. 39.9
HAIL = ("0.75", "1.00", "1.25", "1.50", "1.75", "2.00", "2.75")
# (event type, magnitude as written, probability): hail 40%, wind 40%, tornado 20% with 15% of them unrated.
EVENTS = ([("hail", m, 0.4 / len(HAIL)) for m in HAIL] + [("wind", str(m), 0.4 / 33) for m in range(58, 91)]
          + [("tornado", str(m), 0.2 * 0.85 / 4) for m in range(4)] + [("tornado", "", 0.2 * 0.15)])
INJURIES = (("", 0.3), ("0", 0.7 * 4 / 6), ("1", 0.7 / 6), ("2", 0.7 / 6))

RSS_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:], check=False).returncode\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    json.dump({'maxrss_kib': usage.ru_maxrss, 'cpu_s': usage.ru_utime + usage.ru_stime}, out)\n"
    "sys.exit(code)\n"
)
# The reference: open_csv with default options, each batch written as it comes, zstd. Prints the rows it wrote.
REFERENCE = (
    "import sys\n"
    "import pyarrow.csv as pacsv\n"
    "import pyarrow.parquet as pq\n"
    "reader = pacsv.open_csv(sys.argv[1])\n"
    "rows = 0\n"
    "with pq.ParquetWriter(sys.argv[2], reader.schema, compression='zstd') as writer:\n"
    "    for batch in reader:\n"
    "        writer.write_batch(batch)\n"
    "        rows += batch.num_rows\n"
    "print(rows)\n"
)
SUMMARY = re.compile(r"^chunk (\S+): (\d+) rows, (\d+) accepted, (\d+) quarantined$", re.MULTILINE)
PARTITION = re.compile(r"^  partition (\S+): (\d+) rows -> (sha256:[0-9a-f]{64})$", re.MULTILINE)


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
    """The tools' environment: inherited, or with bytecode cached under `pyc_prefix`."""
    env = dict(os.environ)
    if pyc_prefix is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pyc_prefix)
    return env


def children_cpu() -> float:
    """User + system CPU seconds of all waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Reports:
    """Storm-report CSV lines for one month, block by block: every piece of a line comes from a small vocabulary of
    strings (ids in two 4-digit halves, day, time of day, the middle fields, coordinates in degrees and 4 decimals),
    picked by numpy-drawn indices and joined by pyarrow, so no Python code runs per row."""

    def __init__(self, month: str, seed: int) -> None:
        year, mon = (int(x) for x in month.split("-"))
        self.seconds = calendar.monthrange(year, mon)[1] * 86400
        self.rng = np.random.default_rng(seed)
        self.id_high = pa.array([f"KS-{year}{mon:02d}-{i:04d}" for i in range(10_000)])
        self.id_low = pa.array([f"{i:04d}," for i in range(10_000)])
        self.days = pa.array([f"{month}-{d:02d}T" for d in range(1, 32)])
        self.clock = pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z," for s in range(86400)])
        # county,event_type,magnitude,injuries,source, for every combination
        self.middle = pa.array([f"{county},{kind},{magnitude},{injuries},{source},"
                                for county, _, _ in COUNTIES for kind, magnitude, _ in EVENTS
                                for injuries, _ in INJURIES for source in SOURCES])
        self.lon_degrees = pa.array([f"-{d}" for d in range(LON_RANGE[0] // 10_000, LON_RANGE[1] // 10_000 + 1)])
        self.lat_degrees = pa.array([f"{d}" for d in range(LAT_RANGE[0] // 10_000, LAT_RANGE[1] // 10_000 + 1)])
        self.lon_decimals = pa.array([f".{i:04d}," for i in range(10_000)])
        self.lat_decimals = pa.array([f".{i:04d}\n" for i in range(10_000)])
        self.centres = np.array([(lon, lat) for _, lon, lat in COUNTIES])
        self.event_p = np.array([p for _, _, p in EVENTS]) / sum(p for _, _, p in EVENTS)
        self.injuries_p = np.array([p for _, p in INJURIES]) / sum(p for _, p in INJURIES)

    def block(self, first: int, n: int, expected_rows: int) -> pa.Array:
        """Lines `first` .. `first + n - 1` (1-based) of a file of about `expected_rows` lines, as a string array whose
        values end in a newline; times rise through the month with the line number and stay inside it."""
        rng = self.rng
        line = np.arange(first, first + n, dtype=np.int64)
        step = self.seconds / expected_rows
        secs = np.minimum(((line - 1 + rng.random(n)) * step).astype(np.int64), self.seconds - 1)
        county = rng.integers(0, len(COUNTIES), n)
        event = rng.choice(len(EVENTS), n, p=self.event_p)
        injuries = rng.choice(len(INJURIES), n, p=self.injuries_p)
        source = rng.integers(0, len(SOURCES), n)
        middle = ((county * len(EVENTS) + event) * len(INJURIES) + injuries) * len(SOURCES) + source
        lon = np.clip(np.rint(-(self.centres[county, 0] + rng.uniform(-0.2, 0.2, n)) * 1e4).astype(np.int64),
                      *LON_RANGE)
        lat = np.clip(np.rint((self.centres[county, 1] + rng.uniform(-0.2, 0.2, n)) * 1e4).astype(np.int64),
                      *LAT_RANGE)
        pieces = [
            self.id_high.take(line // 10_000), self.id_low.take(line % 10_000),
            self.days.take(secs // 86400), self.clock.take(secs % 86400), self.middle.take(middle),
            self.lon_degrees.take(lon // 10_000 - LON_RANGE[0] // 10_000), self.lon_decimals.take(lon % 10_000),
            self.lat_degrees.take(lat // 10_000 - LAT_RANGE[0] // 10_000), self.lat_decimals.take(lat % 10_000),
        ]
        return pc.binary_join_element_wise(*pieces, "")


def offsets_of(lines: pa.Array) -> npt.NDArray[np.int32]:
    offsets: npt.NDArray[np.int32] = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    return offsets[lines.offset:lines.offset + len(lines) + 1]


def write_csv(path: Path, size: int, month: str) -> int:
    """A CSV of at least `size` bytes (whole lines, the header first) of the month's reports; the number of rows."""
    head = (HEADER + "\n").encode()
    sample = Reports(month, seed=0).block(1, 1 << 14, 1 << 14)
    per_line = int(offsets_of(sample)[-1]) / len(sample)
    expected = max(1, round((size - len(head)) / per_line))
    reports = Reports(month, seed=int(month.replace("-", "")))
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        written = fh.write(head)
        while written < size:
            lines = reports.block(rows + 1, BLOCK_ROWS, expected)
            offsets = offsets_of(lines)
            # The first line that reaches `size`, or the whole block.
            take = min(int(np.searchsorted(offsets[1:], size - written, side="left")) + 1, len(lines))
            written += fh.write(memoryview(lines.buffers()[2])[int(offsets[0]):int(offsets[take])])
            rows += take
    return rows


def process_command(plan: Path, chunk: str) -> list[str]:
    return [str(KFM), "process", str(plan), "--chunk", chunk]


def reference_command(csv: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", REFERENCE, str(csv), str(out)]


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


def check_reference(done: subprocess.CompletedProcess[str], rows: int) -> None:
    if done.returncode != 0:
        abort("the reference conversion failed", done)
    if done.stdout.strip() != str(rows):
        abort(f"the reference converted {done.stdout.strip()!r} rows, expected {rows}", done)


def wrapped(command: Sequence[str], cwd: Path, env: dict[str, str], tmp: Path
            ) -> tuple[float, dict[str, Any], subprocess.CompletedProcess[str]]:
    """Wall time, {maxrss_kib, cpu_s} of the command and its descendants (not of this script) and the result."""
    out = tmp / "usage.json"
    start = time.perf_counter()
    done = run([sys.executable, "-c", RSS_WRAPPER, str(out), *command], cwd, env)
    elapsed = time.perf_counter() - start
    usage: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {"maxrss_kib": -1, "cpu_s": -1.0}
    out.unlink(missing_ok=True)
    return elapsed, usage, done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=None, help=f"timed rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: a {QUICK_CHUNK_MIB} MiB chunk, a {QUICK_BIG_MIB} MiB chunk, {QUICK_ROUNDS} round",
    )
    parser.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="run the tools with the environment as inherited (default: bytecode cached in a temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    chunk_mib, big_mib, rounds = (QUICK_CHUNK_MIB, QUICK_BIG_MIB, QUICK_ROUNDS) if args.quick else (
        CHUNK_MIB, BIG_MIB, DEFAULT_ROUNDS)
    if args.rounds is not None:
        rounds = args.rounds

    if not KFM.is_file():
        sys.exit(f"abort: {KFM} not found; install the project in this venv")

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-chunk-") as tmp_name:
        tmp = Path(tmp_name)
        chunk_bytes, big_bytes = chunk_mib * MIB, big_mib * MIB
        # The CSVs, their copies in the store, and Parquet outputs (well under the CSV size).
        need = 3 * (chunk_bytes + big_bytes)
        free = shutil.disk_usage(tmp).free
        if free < need:
            sys.exit(f"abort: {free // MIB} MiB free under {tmp}; this run needs about {need // MIB} MiB")
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if 2 * (chunk_bytes + big_bytes) + PEAK_LIMIT_MIB * MIB > memory:
            print(f"warning: {memory // MIB} MiB of memory may not keep the files in the page cache")
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        repo = tmp / "repo"
        must("kfm init --example", [str(KFM), "init", "--example", str(repo)], tmp, env)
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
            rows[month] = write_csv(csvs[month], size, month)
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
        print("pyc: " + ("environment as inherited" if args.no_pyc_cache else
                         "bytecode cached under the temporary directory"))
        print("reference: pyarrow.csv.open_csv (default options, type inference) -> ParquetWriter(compression='zstd')"
              ".write_batch per batch, in a subprocess of the same interpreter")

        # Warm-up: page cache, bytecode, a check that both succeed and count every row; peak RSS of each.
        _, kfm_warm, done = wrapped(process_command(plan, MONTH), repo, env, tmp)
        kfm_out = check_process(done, MONTH, rows[MONTH], store)
        ref_out_path = tmp / "reference.parquet"
        _, ref_warm, done = wrapped(reference_command(csvs[MONTH], ref_out_path), repo, env, tmp)
        check_reference(done, rows[MONTH])
        ref_out = ref_out_path.stat().st_size
        ref_out_path.unlink()

        names = ("kfm process", "pyarrow csv->parquet")
        times: dict[str, list[float]] = {name: [] for name in names}
        busy: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(rounds):
            for name in names:
                command = (process_command(plan, MONTH) if name == "kfm process"
                           else reference_command(csvs[MONTH], ref_out_path))
                os.sync()
                cpu = children_cpu()
                start = time.perf_counter()
                done = run(command, repo, env)
                elapsed = time.perf_counter() - start
                cpu = children_cpu() - cpu
                if name == "kfm process":
                    check_process(done, MONTH, rows[MONTH], store)
                else:
                    check_reference(done, rows[MONTH])
                    ref_out_path.unlink()
                times[name].append(elapsed)
                busy[name].append(cpu / elapsed)

        medians = {name: statistics.median(samples) for name, samples in times.items()}
        print(f"\nprocess chunk {MONTH}: one {mib[MONTH]:.0f} MiB CSV, {rows[MONTH]} rows, page cache warm "
              f"({rounds} round{'' if rounds == 1 else 's'} each, interleaved)")
        print(f"  {'tool':<22} {'median s':>10} {'MiB/s':>10} {'CPU/wall':>9}   all rounds (s)")
        for name, seconds in medians.items():
            samples = " ".join(f"{s:.2f}" for s in times[name])
            print(f"  {name:<22} {seconds:>10.3f} {mib[MONTH] / seconds:>10.1f} "
                  f"{statistics.median(busy[name]):>9.2f}   {samples}")
        print(f"  output: kfm GeoParquet {kfm_out / MIB:.1f} MiB, reference Parquet {ref_out / MIB:.1f} MiB; "
              f"peak RSS (warm-up runs): kfm {kfm_warm['maxrss_kib'] / 1024:.0f} MiB, "
              f"reference {ref_warm['maxrss_kib'] / 1024:.0f} MiB")
        ratio = medians["pyarrow csv->parquet"] / medians["kfm process"]
        verdict = "met, mark reached" if ratio >= MARK else "met" if ratio >= TARGET else "MISSED"
        print(f"ratio kfm/reference throughput (process {mib[MONTH]:.0f} MiB): {ratio:.2f} "
              f"(target >= {TARGET}, mark {MARK}) {verdict}")
        cores = os.cpu_count() or 1
        kfm_busy = statistics.median(busy["kfm process"])
        verdict = "met" if kfm_busy >= CORES_TARGET else "MISSED"
        print(f"CPU/wall of kfm process (chunk {MONTH}, median): {kfm_busy:.2f} (target >= {CORES_TARGET}; "
              f"{cores} cores) {verdict}")

        # Peak memory on the larger chunk, kfm then the reference, each under the wrapper.
        os.sync()
        kfm_s, kfm_big, done = wrapped(process_command(plan, BIG_MONTH), repo, env, tmp)
        check_process(done, BIG_MONTH, rows[BIG_MONTH], store)
        os.sync()
        ref_s, ref_big, done = wrapped(reference_command(csvs[BIG_MONTH], ref_out_path), repo, env, tmp)
        check_reference(done, rows[BIG_MONTH])
        ref_out_path.unlink()
        print(f"\npeak memory, chunk {BIG_MONTH}: one {mib[BIG_MONTH]:.0f} MiB CSV, {rows[BIG_MONTH]} rows "
              f"(ru_maxrss and CPU of the tool's process, one run each)")
        print(f"  {'tool':<22} {'peak MiB':>10} {'s':>10} {'MiB/s':>10} {'CPU/wall':>9}")
        for name, seconds, usage in (("kfm process", kfm_s, kfm_big), ("pyarrow csv->parquet", ref_s, ref_big)):
            print(f"  {name:<22} {usage['maxrss_kib'] / 1024:>10.0f} {seconds:>10.2f} "
                  f"{mib[BIG_MONTH] / seconds:>10.1f} {usage['cpu_s'] / seconds:>9.2f}")
        peak = kfm_big["maxrss_kib"] / 1024
        verdict = "met" if peak <= PEAK_LIMIT_MIB else "MISSED"
        print(f"peak RSS of kfm process ({mib[BIG_MONTH]:.0f} MiB chunk): {peak:.0f} MiB "
              f"(target <= {PEAK_LIMIT_MIB} MiB) {verdict}")
        big_busy = kfm_big["cpu_s"] / kfm_s
        verdict = "met" if big_busy >= CORES_TARGET else "MISSED"
        print(f"CPU/wall of kfm process (chunk {BIG_MONTH}): {big_busy:.2f} (target >= {CORES_TARGET}; "
              f"{cores} cores) {verdict}")
    print(f"\ntotal {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
