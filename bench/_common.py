"""What the benchmarks in this folder share: paths and constants of the example repository, running a tool (and
aborting when it fails), the tools' environment (bytecode cache), peak RSS and CPU of a child process, the two CSV
generators, the pyarrow reference conversion, option parsing and the printed tables.

The scripts are run as ``python bench/NAME.py``, so this folder is first on ``sys.path`` and ``from _common import
...`` finds this module; mypy, given the ``bench`` folder, puts the folder on its search path likewise.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
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
# core.compression=1: git deflates the large files fast; it only shortens the untimed setup.
GIT_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.org", "-c", "core.compression=1"]

MIB = 1024 * 1024

# Runs the command given after the output path and writes its peak RSS and CPU time as JSON: the wrapper's only
# child is the command, so RUSAGE_CHILDREN is the command's (with its waited-for descendants), not this script's.
USAGE_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:], check=False).returncode\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    json.dump({'maxrss_kib': usage.ru_maxrss, 'cpu_s': usage.ru_utime + usage.ru_stime}, out)\n"
    "sys.exit(code)\n"
)
# The reference conversion: for each (CSV, Parquet) pair of arguments in turn, open_csv with default options (type
# inference, 1 MiB blocks, threads) and each batch written as it comes, zstd. Prints the rows it wrote in all.
REFERENCE = (
    "import sys\n"
    "import pyarrow.csv as pacsv\n"
    "import pyarrow.parquet as pq\n"
    "rows = 0\n"
    "for source, target in zip(sys.argv[1::2], sys.argv[2::2]):\n"
    "    reader = pacsv.open_csv(source)\n"
    "    with pq.ParquetWriter(target, reader.schema, compression='zstd') as writer:\n"
    "        for batch in reader:\n"
    "            writer.write_batch(batch)\n"
    "            rows += batch.num_rows\n"
    "print(rows)\n"
)
REFERENCE_NOTE = ("pyarrow.csv.open_csv (default options, type inference) -> ParquetWriter(compression='zstd')"
                  ".write_batch per batch, in a subprocess of the same interpreter")


# Running tools.

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


def pyc_note(no_pyc_cache: bool, env: dict[str, str] | None = None) -> str:
    """The `pyc:` line; with `env`, an inherited environment names its PYTHONDONTWRITEBYTECODE."""
    if not no_pyc_cache:
        return "pyc: bytecode cached under the temporary directory"
    if env is None:
        return "pyc: environment as inherited"
    return f"pyc: environment as inherited (PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '')!r})"


def children_cpu() -> float:
    """User + system CPU seconds of all waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None, *, sync: bool = False
          ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds, CPU seconds (user + system, of the command and its descendants) and the result; with `sync`,
    dirty pages are flushed first (untimed) so that none from the previous job is written during this one."""
    if sync:
        os.sync()
    cpu = children_cpu()
    start = time.perf_counter()
    done = run(command, cwd, env)
    elapsed = time.perf_counter() - start
    return elapsed, children_cpu() - cpu, done


def wrapped(command: Sequence[str], cwd: Path, env: dict[str, str], tmp: Path
            ) -> tuple[float, dict[str, Any], subprocess.CompletedProcess[str]]:
    """Wall time, {maxrss_kib, cpu_s} of the command and its descendants (not of this script) and the result."""
    out = tmp / "usage.json"
    start = time.perf_counter()
    done = run([sys.executable, "-c", USAGE_WRAPPER, str(out), *command], cwd, env)
    elapsed = time.perf_counter() - start
    usage: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {"maxrss_kib": -1, "cpu_s": -1.0}
    out.unlink(missing_ok=True)
    return elapsed, usage, done


def reference_command(pairs: Sequence[tuple[Path, Path]]) -> list[str]:
    """The reference converting each (CSV, Parquet) pair in turn, in one process."""
    return [sys.executable, "-c", REFERENCE, *(str(p) for pair in pairs for p in pair)]


def check_reference(done: subprocess.CompletedProcess[str], rows: int) -> None:
    if done.returncode != 0:
        abort("the reference conversion failed", done)
    if done.stdout.strip() != str(rows):
        abort(f"the reference converted {done.stdout.strip()!r} rows, expected {rows}", done)


# Setting up.

def options(doc: str | None, *, rounds_help: str, quick_help: str, who: str = "kfm") -> argparse.ArgumentParser:
    """A parser with --rounds, --quick and --no-pyc-cache; `who` names what runs in the tools' environment."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--rounds", type=int, default=None, help=rounds_help)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help=f"run {who} with the environment as inherited (default: bytecode cached in a temporary directory)",
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def require_kfm() -> None:
    """The benchmarks need the project's `kfm` in this venv and git (the example is a git repository)."""
    if not KFM.is_file():
        sys.exit(f"abort: {KFM} not found; install the project in this venv")
    if shutil.which("git") is None:
        sys.exit("abort: git not found on PATH")


def require_disk(tmp: Path, need: int) -> None:
    free = shutil.disk_usage(tmp).free
    if free < need:
        sys.exit(f"abort: {free // MIB} MiB free under {tmp}; this run needs about {need // MIB} MiB")


def warn_memory(need: int, what: str) -> None:
    """Warn when the machine's memory is below `need` bytes, which the run wants to keep `what` cached."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > memory:
        print(f"warning: {memory // MIB} MiB of memory may not keep the {what} in the page cache")


def read_all(paths: Sequence[Path]) -> None:
    """Read files once so that they are in the page cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(8 * MIB):
                pass


def init_example(tmp: Path, env: dict[str, str], name: str = "repo") -> Path:
    """`kfm init --example` in tmp/name: a governed repository with the example's dataset, plan and upstream."""
    repo = tmp / name
    must("kfm init --example", [str(KFM), "init", "--example", str(repo)], tmp, env)
    return repo


# Printing.

def rounds_note(rounds: int) -> str:
    return f"{rounds} round{'' if rounds == 1 else 's'} each, interleaved"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def throughput_table(label: str, width: int, times: dict[str, list[float]], mib: float, *, digits: int = 2,
                     busy: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Print median seconds, MiB/s of `mib` (and the median CPU/wall) and every round of each tool; the medians."""
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    cpu_head = f" {'CPU/wall':>9}" if busy is not None else ""
    print(f"  {label:<{width}} {'median s':>10} {'MiB/s':>10}{cpu_head}   all rounds (s)")
    for name, seconds in medians.items():
        samples = " ".join(f"{s:.{digits}f}" for s in times[name])
        cpu = f" {statistics.median(busy[name]):>9.2f}" if busy is not None else ""
        print(f"  {name:<{width}} {seconds:>10.3f} {mib / seconds:>10.1f}{cpu}   {samples}")
    return medians


def print_total(began: float) -> None:
    print(f"\ntotal {time.perf_counter() - began:.1f} s")


# CSV generators.

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


def write_block_csv(path: Path, size: int, block: bytes, tag: str) -> int:
    """A file of about `size` bytes (whole lines): header, a line naming `tag`, then `block` repeated; its size.
    Byte-oriented (acquisition and hashing): the rows need not be valid for kfm's contract."""
    head = ("report_id,event_time,county,event_type,magnitude,injuries,source,longitude,latitude\n"
            f"KS-{tag},2023-01-01T00:00:00Z,Barton,hail,1.00,0,public,-98.7271,38.6613\n").encode()
    written = 0
    with open(path, "wb") as fh:
        written += fh.write(head)
        while size - written >= len(block):
            written += fh.write(block)
        written += fh.write(block[:block.rfind(b"\n", 0, size - written) + 1])
    return written


# Rows per generated block (about 23 MiB of CSV).
BLOCK_ROWS = 1 << 18
LON_RANGE = (947_000, 1_019_000)  # |longitude| in 1e-4 degrees: -101.9 .. -94.7
LAT_RANGE = (371_000, 399_000)  # latitude in 1e-4 degrees: 37.1 .. 39.9
HAIL = ("0.75", "1.00", "1.25", "1.50", "1.75", "2.00", "2.75")
# (event type, magnitude as written, probability): hail 40%, wind 40%, tornado 20% with 15% of them unrated.
EVENTS = ([("hail", m, 0.4 / len(HAIL)) for m in HAIL] + [("wind", str(m), 0.4 / 33) for m in range(58, 91)]
          + [("tornado", str(m), 0.2 * 0.85 / 4) for m in range(4)] + [("tornado", "", 0.2 * 0.15)])
INJURIES = (("", 0.3), ("0", 0.7 * 4 / 6), ("1", 0.7 / 6), ("2", 0.7 / 6))


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


def write_reports_csv(path: Path, size: int, month: str) -> int:
    """A CSV of at least `size` bytes (whole lines, the header first) of the month's reports, every row valid for the
    example's contract; the number of rows."""
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
