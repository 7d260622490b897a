"""Benchmark the gates: `kfm gate run all` on a version of 1,096 daily partitions (gate A's hashing against
`openssl dgst -sha256` over the same objects on 2 cores; the other gates against the catalog validators alone), and
`kfm gate run all --changed BASE..HEAD` in a repository of 2,000 commits and 200 versions against one of 20 commits
and 2 versions.

Setup, all in a temporary directory that is removed at the end (nothing is written into this repository):

- The version: ``kfm init --example`` makes a governed repository whose contract is switched to daily partitions;
  its upstream gets one generated CSV of 8 MiB per month from 2020-01 to 2022-12 (``_common.write_reports_csv``:
  every row valid, times spread through the month, so every day has rows), kept out of git as upstream data is; a
  plan of the window 2020-01-01 .. 2023-01-01 in monthly chunks is committed and ``kfm backfill run`` makes the
  version for real: 36 chunk runs, 1,096 partitions, their catalogs; the evidence is committed. About two minutes.
- The histories: ``kfm init --example``, the example's first release made and committed; then filler commits made
  with ``git fast-import`` (a note each, and every tenth one a version folder: a copy of the first release's files
  under another id) up to 20 or 2,000 commits and 2 or 200 versions on main; the example's March redelivery
  committed; then a plan branch whose one plan fills the March gap on the first release, run by ``kfm backfill run``
  and committed (a new version carrying five partitions). The same change in both repositories.

Timed, each in a process of its own, rounds interleaved, after one untimed warm-up of each (bytecode, page cache):

1. ``kfm gate run all VERSION --format json``: wall time; every gate must pass.
2. In one process, the version read once (``gates.target.load``) and each gate's ``check`` timed on its own; gate
   A re-hashes every object of the version (1,096 artifacts and 36 RAW files) with ``Store.verify_all``.
3. ``openssl dgst -sha256`` over the same object files, in two processes at once (half of the files each): the
   reference for gate A's hashing. Target: gate A's throughput at least 0.8 of openssl's.
4. The catalog validators alone on the version's catalogs (``bench/catalog.py``'s script: pystac validate_all,
   pyshacl with kfm's DCAT profile, a prov load). Reported against gates B to G together (target: at most 1.5x).
5. ``kfm gate run all --changed main..HEAD`` in each history. Target: the large one within 1.2x of the small one.

Run it from the repository root with::

    .venv/bin/python bench/gates.py            # full run: 1,096 partitions, 2,000 commits, 5 rounds
    .venv/bin/python bench/gates.py --quick    # smoke run: 3 months of 1 MiB, 200 commits, 1 round
    .venv/bin/python bench/gates.py --rounds 9
"""

from __future__ import annotations

import json
import shutil
import statistics
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
    SLUG,
    abort,
    init_example,
    must,
    options,
    parse,
    print_total,
    pyc_note,
    require_kfm,
    rounds_note,
    timed,
    tool_env,
    verdict,
    write_reports_csv,
)
from catalog import STANDARDS, VALIDATORS

DEFAULT_ROUNDS, QUICK_ROUNDS = 5, 1
MONTHS, QUICK_MONTHS = 36, 3
MONTH_MIB, QUICK_MONTH_MIB = 8, 1
HISTORIES, QUICK_HISTORIES = ((20, 2), (2000, 200)), ((20, 2), (200, 20))
HASH_TARGET, OTHERS_TARGET, CHANGED_TARGET = 0.8, 1.5, 1.2
FIRST_PLAN = f"plans/{SLUG}/backfill-20230705-0c1d2e.yml"
GAP_PLAN = f"plans/{SLUG}/backfill-20230801-a1b2c3.yml"

GATES_STEP = (
    "import json, sys, time\n"
    "from pathlib import Path\n"
    "from kfm_gitops.config import load_config, store_url\n"
    "from kfm_gitops.store import Store\n"
    "from kfm_gitops.gates import GATES\n"
    "from kfm_gitops.gates.target import load\n"
    "root, folder = Path(sys.argv[1]), Path(sys.argv[2])\n"
    "config = load_config(root)\n"
    "store = Store(store_url(config))\n"
    "t = time.perf_counter()\n"
    "target = load(config, folder, store)\n"
    "times, status = {'load': time.perf_counter() - t}, {}\n"
    "for gate, module in GATES.items():\n"
    "    t = time.perf_counter()\n"
    "    status[gate] = module.check(target).status\n"
    "    times[gate] = time.perf_counter() - t\n"
    "print(json.dumps({'times': times, 'status': status}))\n"
)


def git(repo: Path, *args: str) -> str:
    return must(f"git {args[0]}", ["git", *GIT_ID, *args], repo)


# The version of 1,096 daily partitions.

def month_keys(n: int) -> list[str]:
    return [f"{2020 + i // 12}-{i % 12 + 1:02d}" for i in range(n)]


def daily_version(tmp: Path, env: dict[str, str], months: int, mib: int) -> Path:
    """The example made daily and backfilled over ``months`` months of generated reports; the version folder."""
    repo = init_example(tmp, env, "daily")
    upstream = repo / "upstream" / SLUG
    for folder in [p for p in upstream.iterdir() if p.is_dir()]:
        shutil.rmtree(folder)
    keys = month_keys(months)
    for key in keys:
        write_reports_csv(upstream / key / f"reports-{key}.csv", mib * MIB, key)
    with open(repo / ".git" / "info" / "exclude", "a", encoding="utf-8") as fh:
        fh.write("/upstream/\n")  # upstream data stays out of git; the terms snapshot is read from the file
    contract = repo / "datasets" / SLUG / "dataset.yaml"
    contract.write_text(contract.read_text(encoding="utf-8").replace("mode: monthly", "mode: daily"), "utf-8")
    last = keys[-1]
    end = f"{int(last[:4]) + int(last[5:]) // 12}-{int(last[5:]) % 12 + 1:02d}-01"
    plan = repo / FIRST_PLAN
    plan.write_text(plan.read_text(encoding="utf-8").replace('"2023-01-01T00:00:00Z"', '"2020-01-01T00:00:00Z"')
                    .replace('"2023-07-01T00:00:00Z"', f'"{end}T00:00:00Z"'), "utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Daily partitions, three years")
    return backfill(repo, env, FIRST_PLAN, "Evidence: three years of daily partitions")


def backfill(repo: Path, env: dict[str, str], plan: str, message: str) -> Path:
    """`kfm backfill run PLAN`, its evidence committed; the version folder."""
    out = must("kfm backfill run", [str(KFM), "backfill", "run", plan, "--yes", "--format", "json"], repo, env)
    version = json.loads(out).get("version")
    if not version:
        abort(f"kfm backfill run made no version: {out[-2000:]}")
    git(repo, "add", "data", "releases", "plans")
    git(repo, "commit", "-qm", message)
    return repo / "releases" / SLUG / str(version)


def object_files(repo: Path, folder: Path) -> tuple[list[Path], int]:
    """The store files of every object the version's partitions name, and their bytes."""
    from kfm_gitops.store import Store
    from kfm_gitops.versions import read_version

    version = read_version(folder)
    if isinstance(version, list):
        abort(f"the version cannot be read: {version[0].text()}")
        raise SystemExit(1)
    store = Store(str(repo / ".kfm" / "objects"))
    paths = [store.local_path(d) for d in sorted(version.digests)]
    files = [p for p in paths if p is not None]
    return files, sum(p.stat().st_size for p in files)


def openssl_round(files: list[Path], tmp: Path) -> float:
    """openssl dgst -sha256 over the files, two processes at once (half of the files each); wall seconds."""
    halves = [files[0::2], files[1::2]]
    start = time.perf_counter()
    procs = [subprocess.Popen(["openssl", "dgst", "-sha256", *map(str, half)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=tmp) for half in halves]
    outputs = [p.communicate() for p in procs]
    elapsed = time.perf_counter() - start
    if any(p.returncode != 0 for p in procs) or sum(o[0].count(b"\n") for o in outputs) != len(files):
        abort(f"openssl failed: {outputs[0][1][-500:]!r}")
    return elapsed


def gates_round(repo: Path, folder: Path, env: dict[str, str]) -> dict[str, float]:
    _, _, done = timed([sys.executable, "-c", GATES_STEP, str(repo), str(folder)], repo, env)
    if done.returncode != 0:
        abort("the gates (in one process) failed", done)
    report = json.loads(done.stdout)
    if set(report["status"].values()) != {"passed"}:
        abort(f"a gate failed: {report['status']}", done)
    times: dict[str, float] = report["times"]
    return times


def cli_round(repo: Path, folder: Path, env: dict[str, str]) -> float:
    elapsed, _, done = timed([str(KFM), "gate", "run", "all", str(folder), "--format", "json"], repo, env)
    if done.returncode != 0 or not json.loads(done.stdout)["ok"]:
        abort("kfm gate run all failed", done)
    return elapsed


def validators_round(repo: Path, folder: Path, env: dict[str, str]) -> float:
    elapsed, _, done = timed([sys.executable, "-c", VALIDATORS, str(folder), str(STANDARDS)], repo, env)
    if done.returncode != 0:
        abort("the validators failed", done)
    return elapsed


def measure_version(tmp: Path, env: dict[str, str], months: int, mib: int, rounds: int) -> bool:
    t0 = time.perf_counter()
    folder = daily_version(tmp, env, months, mib)
    repo = folder.parents[2]
    files, size = object_files(repo, folder)
    partitions = len(json.loads((folder / "promotion-manifest.json").read_text())["partitions"])
    print(f"\nversion {folder.name}: {partitions} partitions, {len(files)} objects, {size / MIB:.0f} MiB; made in "
          f"{time.perf_counter() - t0:.0f} s")
    cli_round(repo, folder, env)  # warm-up: bytecode, page cache, and a check that each runs
    gates_round(repo, folder, env)
    openssl_round(files, tmp)
    validators_round(repo, folder, env)
    cli, per_gate, openssl, validators = [], [], [], []
    for _ in range(rounds):
        cli.append(cli_round(repo, folder, env))
        per_gate.append(gates_round(repo, folder, env))
        openssl.append(openssl_round(files, tmp))
        validators.append(validators_round(repo, folder, env))
    return report_version(cli, per_gate, openssl, validators, size)


def report_version(cli: list[float], per_gate: list[dict[str, float]], openssl: list[float],
                   validators: list[float], size: int) -> bool:
    med = {k: statistics.median(t[k] for t in per_gate) for k in per_gate[0]}
    gate_a, reference = med["A"], statistics.median(openssl)
    others = sum(v for k, v in med.items() if k not in ("A",))
    alone = statistics.median(validators)
    print(f"  `kfm gate run all` (a process)      {statistics.median(cli):8.3f} s   "
          + " ".join(f"{s:.3f}" for s in cli))
    print("  in one process: " + ", ".join(f"{k} {v:.3f} s" for k, v in med.items()))
    hashing = (size / MIB / gate_a) / (size / MIB / reference)
    print(f"  gate A {size / MIB / gate_a:8.0f} MiB/s; openssl dgst -sha256 (2 processes) {size / MIB / reference:8.0f}"
          f" MiB/s; ratio {hashing:.2f} (target >= {HASH_TARGET}) {verdict(hashing >= HASH_TARGET)}")
    ratio = others / alone
    print(f"  load + gates B-G {others:.3f} s; catalog validators alone {alone:.3f} s; ratio {ratio:.2f} "
          f"(target <= {OTHERS_TARGET}) {verdict(ratio <= OTHERS_TARGET)}")
    print(f"ratio gate A hashing/openssl dgst: {hashing:.2f} (target >= {HASH_TARGET}) "
          f"{verdict(hashing >= HASH_TARGET)}")
    print(f"ratio gates B-G/catalog validators: {ratio:.2f} (target <= {OTHERS_TARGET}) "
          f"{verdict(ratio <= OTHERS_TARGET)}")
    return hashing >= HASH_TARGET and ratio <= OTHERS_TARGET


# The histories.

def history(tmp: Path, env: dict[str, str], commits: int, versions: int) -> Path:
    """A repository with ``commits`` commits and ``versions`` versions on main, and a plan branch checked out whose
    change adds one real version (the March gap filled on the first release)."""
    from kfm_gitops.example import REDELIVERY, UPSTREAM

    repo = init_example(tmp, env, f"history-{commits}")
    first = backfill(repo, env, FIRST_PLAN, "Evidence: first release")
    fillers = commits - int(git(repo, "rev-list", "--count", "HEAD")) - 1
    fill(repo, first.name, fillers, versions - 1)
    shutil.copytree(repo / REDELIVERY / "2023-03", repo / UPSTREAM / "2023-03")
    git(repo, "add", UPSTREAM)
    git(repo, "commit", "-qm", "Upstream redelivery of 2023-03")
    git(repo, "switch", "-q", "-c", "plan/gap")
    text = (repo / FIRST_PLAN).read_text(encoding="utf-8")
    text = text.replace('"2023-01-01T00:00:00Z"', '"2023-03-01T00:00:00Z"').replace(
        '"2023-07-01T00:00:00Z"', '"2023-04-01T00:00:00Z"').replace(
        'prior_dataset_version_id: ""', f'prior_dataset_version_id: "{first.name}"')
    text = "\n".join(line if "expected_dataset_version_id" not in line else
                     '  expected_dataset_version_id: "<to-be-computed>"' for line in text.splitlines()) + "\n"
    (repo / GAP_PLAN).write_text(text, encoding="utf-8")
    git(repo, "add", GAP_PLAN)
    git(repo, "commit", "-qm", "Plan: the March gap")
    backfill(repo, env, GAP_PLAN, "Evidence: the March gap")
    return repo


def fill(repo: Path, first: str, commits: int, versions: int) -> None:
    """``commits`` commits on main by git fast-import: a note each; ``versions`` of them also add a version folder
    (the first release's files under another id)."""
    rel = f"releases/{SLUG}/{first}"
    entries = [line.split(None, 3) for line in git(repo, "ls-tree", "-r", "HEAD", rel).splitlines()]
    every = max(1, commits // max(1, versions))
    head = git(repo, "rev-parse", "HEAD").strip()
    stream: list[str] = []
    made = 0
    for i in range(commits):
        message = f"note {i}"
        ops = [f"M 100644 inline docs/notes/{i:05d}.md\ndata {len(message) + 1}\n{message}\n"]
        if made < versions and i % every == every - 1:
            made += 1
            fake = f"{first.rsplit('.', 1)[0]}.{made:08x}"
            ops += [f"M {mode} {sha} releases/{SLUG}/{fake}/{path[len(rel) + 1:]}\n" for mode, _, sha, path in entries]
        stream.append(f"commit refs/heads/main\ncommitter bench <bench@example.org> {1700000000 + i} +0000\n"
                      f"data {len(message)}\n{message}\n" + (f"from {head}\n" if i == 0 else "") + "".join(ops))
    done = subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input="".join(stream), text=True,
                          capture_output=True)
    if done.returncode != 0:
        abort("git fast-import failed", done)
    git(repo, "reset", "-q", "--hard", "main")


def changed_round(repo: Path, env: dict[str, str]) -> float:
    elapsed, _, done = timed([str(KFM), "gate", "run", "all", "--changed", "main..HEAD", "--format", "json"], repo,
                             env)
    if done.returncode != 0 or not json.loads(done.stdout)["ok"]:
        abort("kfm gate run all --changed failed", done)
    return elapsed


def measure_histories(tmp: Path, env: dict[str, str], sizes: Sequence[tuple[int, int]], rounds: int) -> bool:
    repos = {}
    for commits, versions in sizes:
        repo = history(tmp, env, commits, versions)
        count = int(git(repo, "rev-list", "--count", "main"))
        have = sum(1 for p in (repo / "releases" / SLUG).glob("*/promotion-manifest.json"))
        repos[(commits, versions)] = repo
        print(f"\nhistory: {count} commits on main, {have} versions (with the branch's); the change adds one version")
        changed_round(repo, env)  # warm-up
    times: dict[tuple[int, int], list[float]] = {k: [] for k in repos}
    for _ in range(rounds):
        for key, repo in repos.items():
            times[key].append(changed_round(repo, env))
    medians = {k: statistics.median(v) for k, v in times.items()}
    for (commits, versions), seconds in medians.items():
        print(f"  --changed with {commits:>5} commits, {versions:>3} versions {seconds:8.3f} s   "
              + " ".join(f"{s:.3f}" for s in times[(commits, versions)]))
    small, large = medians[sizes[0]], medians[sizes[-1]]
    print(f"  ratio large/small {large / small:.2f} (target <= {CHANGED_TARGET}) "
          f"{verdict(large / small <= CHANGED_TARGET)}")
    print(f"ratio --changed large/small history: {large / small:.2f} (target <= {CHANGED_TARGET}) "
          f"{verdict(large / small <= CHANGED_TARGET)}")
    return large / small <= CHANGED_TARGET


def main(argv: Sequence[str] | None = None) -> int:
    parser = options(__doc__, rounds_help=f"timed rounds (default {DEFAULT_ROUNDS})",
                     quick_help=f"smoke run: {QUICK_MONTHS} months of {QUICK_MONTH_MIB} MiB, histories of "
                     f"{QUICK_HISTORIES[-1][0]} commits, {QUICK_ROUNDS} round")
    args = parse(parser, argv)
    months, mib, histories, rounds = ((QUICK_MONTHS, QUICK_MONTH_MIB, QUICK_HISTORIES, QUICK_ROUNDS) if args.quick
                                      else (MONTHS, MONTH_MIB, HISTORIES, DEFAULT_ROUNDS))
    rounds = args.rounds or rounds
    require_kfm()
    if shutil.which("openssl") is None:
        sys.exit("abort: openssl not found on PATH (the reference for gate A's hashing)")
    began = time.perf_counter()
    print(f"python {sys.version.split()[0]}; kfm {KFM}; {rounds_note(rounds)}")
    with tempfile.TemporaryDirectory(prefix="kfm-bench-gates-") as tmp_name:
        tmp = Path(tmp_name)
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        print(pyc_note(args.no_pyc_cache))
        measure_version(tmp, env, months, mib, rounds)
        measure_histories(tmp, env, histories, rounds)
    print_total(began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
