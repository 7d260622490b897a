"""Run every benchmark in this folder against its reference, in one go, and write one Markdown table of the ratios
with a description of the machine (cores, memory, CPU, Python, the packages that matter), to stdout and to a file.

Each benchmark is a script of its own (``bench/NAME.py``) that prints its ratios as lines
``ratio WHAT: VALUE (GOAL) met|MISSED``; this runner starts each in a process of its own, one after the other (never
two at once: they measure throughput), collects those lines and says which benchmark failed, if one did.

Usage (from the repository's root):

    .venv/bin/python bench/all.py --quick                   # smoke run of every benchmark (a few minutes)
    .venv/bin/python bench/all.py                           # the full benchmarks (long: tens of minutes)
    .venv/bin/python bench/all.py --only acquire --only process --out /tmp/bench.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("plan_validate", "acquire", "raw_verify", "process", "backfill", "catalog", "gates", "projections")
PACKAGES = ("kfm-gitops", "pyarrow", "numpy", "shapely", "pygit2", "fsspec", "jsonschema", "pystac", "pyshacl",
            "rdflib", "check-jsonschema")
RATIO = re.compile(r"^ratio (?P<what>.+?): (?P<value>-?\d+(?:\.\d+)?) \((?P<goal>[^)]*)\)\s*(?P<rest>.*)$")


@dataclass(frozen=True, slots=True)
class Ratio:
    bench: str
    what: str
    value: str
    goal: str
    verdict: str


@dataclass(frozen=True, slots=True)
class Outcome:
    bench: str
    code: int
    seconds: float
    ratios: tuple[Ratio, ...]
    tail: str  # the last lines of output, shown when the benchmark failed


def parse_ratios(bench: str, output: str) -> tuple[Ratio, ...]:
    """The ratio lines a benchmark printed."""
    found = []
    for line in output.splitlines():
        m = RATIO.match(line.strip())
        if m:
            verdict = m["rest"].split(";", 1)[0].strip() or "-"
            found.append(Ratio(bench, m["what"], m["value"], m["goal"], verdict))
    return tuple(found)


def run_one(bench: str, quick: bool) -> Outcome:
    cmd = [sys.executable, str(HERE / f"{bench}.py"), *(["--quick"] if quick else [])]
    print(f"running {' '.join(cmd[1:])} ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    return Outcome(bench, done.returncode, seconds, parse_ratios(bench, done.stdout),
                   "\n".join(output.splitlines()[-8:]))


def _meminfo() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    """The machine, as Markdown list items."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return [
        f"- cores: {os.cpu_count()} ({usable} usable by this process); load average at the start: {load}",
        f"- memory: {_meminfo()}; CPU: {_cpu_model()}",
        f"- {platform.system()} {platform.release()} ({platform.machine()}); Python {platform.python_version()} "
        f"({platform.python_implementation()})",
        "- packages: " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
    ]


def table(outcomes: Sequence[Outcome], quick: bool) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### Benchmarks ({'--quick smoke run' if quick else 'full run'}, {when})", "", *machine(), "",
             "| benchmark | ratio | value | goal | verdict |", "|---|---|---|---|---|"]
    for o in outcomes:
        for r in o.ratios:
            lines.append(f"| {r.bench} | {r.what} | {r.value} | {r.goal} | {r.verdict} |")
        if o.code != 0:
            lines.append(f"| {o.bench} | (failed: exit {o.code}) | - | - | FAILED |")
        elif not o.ratios:
            lines.append(f"| {o.bench} | (printed no ratio) | - | - | - |")
    lines += ["", "Time per benchmark: " + ", ".join(f"{o.bench} {o.seconds:.0f} s" for o in outcomes) + "."]
    if quick:
        lines.append("A `--quick` run uses small inputs and one round: start-up dominates, so its ratios show that "
                     "every benchmark runs, not how fast kfm is.")
    failed = [o for o in outcomes if o.code != 0]
    for o in failed:
        lines += ["", f"{o.bench} failed (exit {o.code}); its last lines:", "", "```", o.tail, "```"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of each benchmark (small inputs, 1 round)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("bench-results.md"),
                        help="where to write the Markdown table too (default: ./bench-results.md)")
    args = parser.parse_args(argv)
    outcomes = [run_one(b, args.quick) for b in (args.only or BENCHMARKS)]
    text = table(outcomes, args.quick)
    print(text, end="")
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, args.out)
    print(f"written to {args.out}", file=sys.stderr)
    return 1 if any(o.code != 0 for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
