"""Benchmark `kfm reindex` (a projection rebuilt from the published version's PROCESSED artifacts, digest included)
into DuckDB and into PostgreSQL with PostGIS, against the bare loads of the same files in the same run.

Setup, all in a temporary directory that is removed at the end (nothing is written into this repository):
``kfm init --example`` makes a governed repository; the example's small CSV files of January and February 2023 are
replaced by one generated CSV each (``_common.write_reports_csv``: the example's columns, every row valid), half of
``--rows`` each, not committed. ``kfm backfill run`` on the example plan makes the first release (2023-01 to
2023-06, March missing as in the example), its evidence is merged into main with an Approved-by trailer, and
``kfm release propose`` + a merge into release + ``kfm_gitops.release.promote`` (in this process, with a gate runner
that passes every gate: the gates are not what is measured) publish it, so that ``published/ks_storm_reports``
shows it. Untimed.

Timed, alternating round by round, ``sync`` before each job, every job a subprocess of the same interpreter:

1. DuckDB
   - kfm: ``kfm reindex ks_storm_reports`` into the default ``.kfm/projections.duckdb``: read the alias and the
     manifest from git, verify every artifact's sha256, ``CREATE TABLE <slug>__next AS SELECT`` the columns with the
     bbox struct flattened from ``read_parquet`` of the store's files, the digest (count and the HUGEINT sum of
     ``hash()`` over every column), drop the old table, rename, record; one transaction (the table it replaces is the
     previous round's).
   - reference: ``CREATE OR REPLACE TABLE t AS SELECT * FROM read_parquet([...])`` over the same files into a DuckDB
     file of its own (replacing the previous round's table likewise).
   Target: kfm at most 1.3 times the reference's time (median of the rounds).
2. PostgreSQL + PostGIS (unless ``--no-postgis``), in the schema ``kfm_bench`` of ``KFM_BENCH_POSTGRES_URL`` (default
   ``KFM_TEST_POSTGRES_URL``, else ``postgresql://kfm:kfm@127.0.0.1:5432/kfm_test``, the database ``.ci/postgres``
   makes):
   - kfm: ``kfm reindex ks_storm_reports --target URL?schema=kfm_bench``: the same reads and checks, then in one
     transaction CREATE TABLE, binary COPY through psycopg 3 (the record batches encoded by kfm's vectorised encoder,
     sent by psycopg's queued writer while the next batch is encoded), CREATE INDEX USING GIST on the geometry, the
     digest (count and the numeric sum of ``hash_record_extended`` over every column), drop, rename, ANALYZE,
     record.
   - reference "COPY": a fresh table (dropped and created, autocommit), then the same rows by the same binary COPY
     (the same encoder and writer: the rows have to be encoded for any binary COPY), committed. Nothing else.
   - reference "COPY + GiST": the same, then ``CREATE INDEX ... USING GIST`` on the geometry: what the spatial index
     alone costs.
   Target: kfm at most 1.3 times the "COPY" reference (median of the rounds); the ratio to "COPY + GiST" is shown.

Each job's row count is checked. This is a script, not a test: it prints figures and fails only when a tool does.

Run it from the repository root with::

    .venv/bin/python bench/projections.py                  # full run: 10 million rows, 3 rounds
    .venv/bin/python bench/projections.py --quick          # smoke run: 200 000 rows, 1 round
    .venv/bin/python bench/projections.py --rows 2000000 --no-postgis
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    GIT_ID,
    KFM,
    MIB,
    PLAN_REL,
    SLUG,
    STORE_REL,
    UPSTREAM_REL,
    Reports,
    abort,
    init_example,
    must,
    offsets_of,
    options,
    parse,
    print_total,
    pyc_note,
    read_all,
    require_disk,
    require_kfm,
    rounds_note,
    throughput_table,
    timed,
    tool_env,
    verdict,
    write_reports_csv,
)

DEFAULT_ROWS, DEFAULT_ROUNDS = 10_000_000, 3
QUICK_ROWS, QUICK_ROUNDS = 200_000, 1
TARGET = 1.3
MONTHS = ("2023-01", "2023-02")
PG_SCHEMA = "kfm_bench"
PG_DEFAULT = "postgresql://kfm:kfm@127.0.0.1:5432/kfm_test"

# The DuckDB reference: CREATE OR REPLACE TABLE ... AS SELECT * FROM read_parquet over the files; prints the rows.
DUCK_REF = (
    "import sys, duckdb\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "con.execute('SET enable_progress_bar = false')\n"
    "con.execute('CREATE OR REPLACE TABLE t AS SELECT * FROM read_parquet($files)', {'files': sys.argv[2:]})\n"
    "print(con.execute('SELECT count(*) FROM t').fetchone()[0])\n"
    "con.close()\n"
)
# The PostgreSQL reference: a fresh table, the rows by binary COPY (kfm's encoder and psycopg's queued writer), with
# the GiST index when argv[2] says so; prints the rows.
PG_REF = (
    "import sys, psycopg\n"
    "from pathlib import Path\n"
    "from psycopg.copy import QueuedLibpqWriter\n"
    "from kfm_gitops.projections._pgcopy import HEADER, TRAILER, encode\n"
    "from kfm_gitops.projections._postgis import _batches, projection_schema\n"
    "from kfm_gitops.projections._source import geometry_column\n"
    "conninfo, mode, files = sys.argv[1], sys.argv[2], [Path(f) for f in sys.argv[3:]]\n"
    "geometry = geometry_column(files[0])\n"
    "schema, columns = projection_schema(files, geometry)\n"
    "with psycopg.connect(conninfo, autocommit=True) as con:\n"
    f"    con.execute('CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}')\n"
    f"    con.execute('DROP TABLE IF EXISTS {PG_SCHEMA}.bench_reference')\n"
    f"    con.execute('CREATE TABLE {PG_SCHEMA}.bench_reference (' + ', '.join("
    "f'\"{c.name}\" {c.sql_type}' for c in columns) + ')')\n"
    "    cur = con.cursor()\n"
    "    with con.transaction():\n"
    f"        with cur.copy('COPY {PG_SCHEMA}.bench_reference FROM STDIN (FORMAT BINARY)', "
    "writer=QueuedLibpqWriter(cur)) as copy:\n"
    "            copy.write(HEADER)\n"
    "            for batch in _batches(files, schema):\n"
    "                copy.write(encode(batch, columns))\n"
    "            copy.write(TRAILER)\n"
    "    if mode == 'gist':\n"
    f"        con.execute(f'CREATE INDEX ON {PG_SCHEMA}.bench_reference USING GIST (\"{{geometry}}\")')\n"
    f"    print(con.execute('SELECT count(*) FROM {PG_SCHEMA}.bench_reference').fetchone()[0])\n"
)

KFM_DUCK, REF_DUCK = "kfm reindex (DuckDB)", "DuckDB CTAS read_parquet"
KFM_PG, REF_PG, REF_GIST = "kfm reindex (PostGIS)", "binary COPY", "binary COPY + GiST"


def generate(repo: Path, rows: int) -> int:
    """Replace the small CSVs of MONTHS by one generated file each, ``rows`` // 2 rows apiece; rows written."""
    sample = Reports(MONTHS[0], seed=0).block(1, 1 << 14, 1 << 14)
    per_line = int(offsets_of(sample)[-1]) / len(sample)
    written = 0
    for month in MONTHS:
        folder = repo / UPSTREAM_REL / month
        for small in folder.glob("*.csv"):
            small.unlink()
        written += write_reports_csv(folder / f"bench-{month}.csv", int(rows // 2 * per_line), month)
    return written


def publish(repo: Path, env: dict[str, str]) -> tuple[str, list[Path]]:
    """The backfill, its plan PR merged into main, its release PR merged and promoted; the version and its
    artifacts' files in the store."""
    must("kfm backfill run", [str(KFM), "backfill", "run", str(PLAN_REL), "--yes"], repo, env)
    git = ["git", *GIT_ID]
    must("git checkout", [*git, "checkout", "-q", "-b", "plan/bench"], repo)
    must("git add", [*git, "add", "data", "releases", "plans"], repo)
    must("git commit", [*git, "commit", "-q", "-m", "evidence of the bench's backfill"], repo)
    must("git checkout", [*git, "checkout", "-q", "main"], repo)
    must("git merge", [*git, "merge", "-q", "--no-ff", "plan/bench", "-m",
                       "Merge plan/bench\n\nApproved-by: steward bench"], repo)
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        os.environ.setdefault(key, "bench")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        os.environ.setdefault(key, "bench@example.org")
    from kfm_gitops import _git
    from kfm_gitops.config import Config, load_config
    from kfm_gitops.gates.model import GATE_NAMES, GateResult, ReleaseContext
    from kfm_gitops.release import Actor, promote, propose, trailer_approvals

    config = load_config(repo)
    assert isinstance(config, Config)
    proposal = propose(config, SLUG)
    found = _git.discover(repo)
    assert found is not None
    _git.merge_branch(found, "release", proposal.branch, f"Merge {proposal.branch}\n\nApproved-by: release_manager b")

    def passing(config: Config, ctx: ReleaseContext) -> list[GateResult]:
        return [GateResult(g, "passed", ("bench",), ()) for g in GATE_NAMES]

    [done] = promote(config, gates=passing, approvals=trailer_approvals, actor=Actor("bench"))
    manifest = json.loads((repo / "releases" / SLUG / done.version_id / "promotion-manifest.json").read_text())
    store = repo / STORE_REL / "sha256"
    return done.version_id, [store / p["processed"][7:9] / p["processed"][7:] for p in manifest["partitions"]]


def kfm_reindex(target: str | None) -> list[str]:
    return [str(KFM), "reindex", SLUG, "--format", "json", *(["--target", target] if target else [])]


def check_kfm(done: subprocess.CompletedProcess[str], rows: int, version: str) -> str:
    """Abort unless kfm rebuilt the version's projection with every row; its digest."""
    if done.returncode != 0:
        abort("kfm reindex failed", done)
    [result] = json.loads(done.stdout)
    if (result["dataset_version_id"], result["rows"], result["rebuilt"]) != (version, rows, True):
        abort(f"kfm reindex: expected {version} rebuilt with {rows} rows", done)
    return str(result["digest"])


def check_count(done: subprocess.CompletedProcess[str], rows: int, what: str) -> None:
    if done.returncode != 0:
        abort(f"{what} failed", done)
    if done.stdout.strip() != str(rows):
        abort(f"{what} loaded {done.stdout.strip()!r} rows, expected {rows}", done)


def masked(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def pg_url() -> str:
    return os.environ.get("KFM_BENCH_POSTGRES_URL") or os.environ.get("KFM_TEST_POSTGRES_URL") or PG_DEFAULT


def round_robin(jobs: dict[str, tuple[list[str], Any]], rounds: int, repo: Path, env: dict[str, str]
                ) -> dict[str, list[float]]:
    """Each job once per round, in turn, ``sync`` first; each result checked by its function."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, (command, check) in jobs.items():
            elapsed, _, done = timed(command, repo, env, sync=True)
            check(done)
            times[name].append(elapsed)
    return times


def report(title: str, times: dict[str, list[float]], mib: float, kfm: str, ref: str, extra: str | None = None
           ) -> None:
    print(f"\n{title}")
    medians = throughput_table("job", 26, times, mib)
    ratio = medians[kfm] / medians[ref]
    print(f"ratio {kfm} / {ref} (time): {ratio:.2f} (target <= {TARGET}) {verdict(ratio <= TARGET)}")
    if extra is not None:
        print(f"ratio {kfm} / {extra} (time): {medians[kfm] / medians[extra]:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = options(__doc__, rounds_help=f"timed rounds (default {DEFAULT_ROUNDS})",
                     quick_help=f"smoke run: {QUICK_ROWS} rows, {QUICK_ROUNDS} round", who="the tools")
    parser.add_argument("--rows", type=int, default=None, help=f"rows to project (default {DEFAULT_ROWS})")
    parser.add_argument("--no-postgis", action="store_true", help="measure DuckDB only")
    args = parse(parser, argv)
    rows_wanted, rounds = (QUICK_ROWS, QUICK_ROUNDS) if args.quick else (DEFAULT_ROWS, DEFAULT_ROUNDS)
    rows_wanted = args.rows or rows_wanted
    rounds = args.rounds or rounds
    require_kfm()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfm-bench-projections-") as tmp_name:
        tmp = Path(tmp_name)
        require_disk(tmp, rows_wanted * 400)  # CSV, RAW copy, GeoParquet, two DuckDB files
        env = tool_env(None if args.no_pyc_cache else tmp / "pycache")
        repo = init_example(tmp, env)
        t0 = time.perf_counter()
        generate(repo, rows_wanted)
        version, files = publish(repo, env)
        import pyarrow.parquet as pq

        rows = sum(pq.read_metadata(f).num_rows for f in files)
        mib = sum(f.stat().st_size for f in files) / MIB
        print(f"python {sys.version.split()[0]}; {os.cpu_count()} cores; repository {repo}")
        print(f"setup: {version} published: {len(files)} GeoParquet partitions, {rows} rows, {mib:.1f} MiB, in "
              f"{time.perf_counter() - t0:.1f} s (generate, backfill, merge, propose, promote)")
        print(pyc_note(args.no_pyc_cache))
        read_all(files)
        duck_ref = [sys.executable, "-c", DUCK_REF, str(tmp / "reference.duckdb"), *map(str, files)]
        # Warm-up (untimed): bytecode, page cache, and the first build of each table.
        check_kfm(timed(kfm_reindex(None), repo, env)[2], rows, version)
        check_count(timed(duck_ref, repo, env)[2], rows, "the DuckDB reference")
        times = round_robin({KFM_DUCK: (kfm_reindex(None), lambda d: check_kfm(d, rows, version)),
                             REF_DUCK: (duck_ref, lambda d: check_count(d, rows, REF_DUCK))}, rounds, repo, env)
        report(f"DuckDB: {rows} rows from {len(files)} files ({rounds_note(rounds)})", times, mib, KFM_DUCK,
               REF_DUCK)
        if not args.no_postgis:
            postgis(repo, env, files, rows, version, mib, rounds)
    print_total(began)
    return 0


def postgis(repo: Path, env: dict[str, str], files: list[Path], rows: int, version: str, mib: float,
            rounds: int) -> None:
    import psycopg

    url = pg_url()
    target = f"{url}{'&' if '?' in url else '?'}schema={PG_SCHEMA}"
    conninfo = url.split("?", 1)[0]
    with psycopg.connect(conninfo, autocommit=True) as con:
        server = con.execute("SELECT version()").fetchone()
        con.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    print(f"\nPostgreSQL: {server[0] if server else '?'}; target {masked(target)}")
    ref = [sys.executable, "-c", PG_REF, conninfo]
    check_kfm(timed(kfm_reindex(target), repo, env)[2], rows, version)
    check_count(timed([*ref, "copy", *map(str, files)], repo, env)[2], rows, "the COPY reference")
    jobs = {KFM_PG: (kfm_reindex(target), lambda d: check_kfm(d, rows, version)),
            REF_PG: ([*ref, "copy", *map(str, files)], lambda d: check_count(d, rows, REF_PG)),
            REF_GIST: ([*ref, "gist", *map(str, files)], lambda d: check_count(d, rows, REF_GIST))}
    times = round_robin(jobs, rounds, repo, env)
    report(f"PostGIS: {rows} rows from {len(files)} files ({rounds_note(rounds)})", times, mib, KFM_PG, REF_PG,
           REF_GIST)
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")


if __name__ == "__main__":
    sys.exit(main())
