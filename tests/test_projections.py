"""Projections, gaps and doctor on the example, in real repositories: the first release published (March is
missing), then the gap's version published. Projections go into a real DuckDB file and a real PostgreSQL with
PostGIS (see ``postgis`` below); rebuilds are repeated, broken by an exception and killed with SIGKILL.

The repositories are built once per module (the flow of tests/test_release.py: plan PR, release PR, promote with a
gate runner that passes) and copied for each test."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT_ENV, PROJECT, Result, Runner, git
from kfm_gitops.cli import main

SLUG = "ks_storm_reports"
V1 = "2023-06.69a8eb0e.7df9ce5a"
V2 = "2023-06.69a8eb0e.fbdb57cb"
ROWS_V1, ROWS_V2 = 600, 720  # 120 accepted reports a month; March is missing from the first release
DUCKDB = ".kfm/projections.duckdb"
PG_URL = os.environ.get("KFM_TEST_POSTGRES_URL", "postgresql://kfm:kfm@127.0.0.1:5432/kfm_test")


def _run_kfm(*args: str) -> Result:
    return Result(main(list(args)), "", "")


def _promote(root: Path) -> None:
    from test_release import ACTOR, Gates, cfg, merge_release

    from kfm_gitops.release import promote, propose, trailer_approvals

    merge_release(root, propose(cfg(root), SLUG).branch)
    promote(cfg(root), gates=Gates(), approvals=trailer_approvals, actor=ACTOR)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """``first``: the first release published, the gap's version merged into main; ``gap``: that version published
    too. Built once; tests copy them."""
    from test_release import gap_plan, merge_plan

    from kfm_gitops.example import FIRST_PLAN, repository_files
    from kfm_gitops.receipts import CONTAINER_ENV, ENV_ALLOWLIST
    from kfm_gitops.repository import init

    base = tmp_path_factory.mktemp("projections")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in GIT_ENV.items():
            mp.setenv(k, v)
        mp.setenv("HOME", str(base))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for name in ("KFM_STORE", "KFM_DEBUG", "KFM_ACTOR", CONTAINER_ENV, *ENV_ALLOWLIST):
            mp.delenv(name, raising=False)
        first = base / "first"
        init(first, repository_files())
        mp.chdir(first)
        assert merge_plan(first, _run_kfm, "plan/first", FIRST_PLAN) == V1
        _promote(first)
        assert merge_plan(first, _run_kfm, "plan/gap", gap_plan(first, V1)) == V2
        gap = base / "gap"
        shutil.copytree(first, gap, symlinks=True)
        mp.chdir(gap)
        _promote(gap)
        yield {"first": first, "gap": gap}


def _copy(templates: dict[str, Path], which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / which
    shutil.copytree(templates[which], root, symlinks=True)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def first(templates: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _copy(templates, "first", tmp_path, monkeypatch)


@pytest.fixture
def gap(templates: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _copy(templates, "gap", tmp_path, monkeypatch)


@pytest.fixture
def postgis() -> Iterator[str]:
    """A projection target in a schema of its own on a real PostgreSQL with PostGIS (`.ci/postgres` makes one),
    dropped afterwards. Unreachable is a failure that says what to do; KFM_TEST_POSTGRES=0 declares a machine
    without PostgreSQL, and only then are these tests skipped (saying so)."""
    if os.environ.get("KFM_TEST_POSTGRES") == "0":
        pytest.skip("KFM_TEST_POSTGRES=0: this machine has no PostgreSQL with PostGIS")
    import psycopg

    problem = ""
    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as con:
            con.execute("SELECT 1")
    except psycopg.Error as exc:
        problem = str(exc).strip()
    if problem:
        pytest.fail(f"PostgreSQL with PostGIS is not reachable at {PG_URL}: {problem}\nrun .ci/postgres (as root) "
                    "to install and start it, set KFM_TEST_POSTGRES_URL to a server that has it, or set "
                    "KFM_TEST_POSTGRES=0 on a machine without one", pytrace=False)
    schema = f"kfm_test_{secrets.token_hex(4)}"
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _cfg(root: Path) -> Any:
    from test_release import cfg

    return cfg(root)


def _duck(root: Path, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect(str(root / DUCKDB), read_only=True)
    try:
        return [tuple(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def _pg(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    from kfm_gitops.projections import parse_target

    target = parse_target(_cfg(Path.cwd()), url)
    with psycopg.connect(target.conninfo) as con:
        con.execute(f'SET search_path TO "{target.schema}", public')
        return [tuple(r) for r in con.execute(sql).fetchall()]


def _artifact_rows(root: Path, version: str) -> list[dict[str, Any]]:
    """Every row of a version's PROCESSED artifacts, read with pyarrow from the store."""
    import pyarrow.parquet as pq

    manifest = json.loads((root / "releases" / SLUG / version / "promotion-manifest.json").read_text())
    rows: list[dict[str, Any]] = []
    for p in manifest["partitions"]:
        hexd = p["processed"][7:]
        rows += pq.read_table(root / ".kfm" / "objects" / "sha256" / hexd[:2] / hexd).to_pylist()
    return rows


# --- gaps ------------------------------------------------------------------------------------------------------


def test_gaps_finds_the_outage_month_while_the_first_release_is_published(first: Path, kfm: Runner) -> None:
    r = kfm("gaps", SLUG)
    assert (r.code, r.err) == (1, "")
    assert r.out == (f"{SLUG} {V1}: 5 monthly partitions (UTC) from 2023-01 to 2023-06, cadence P1M\n"
                     "missing: 1 interval, 1 partition\n"
                     "  [2023-03-01T00:00:00Z, 2023-04-01T00:00:00Z)  2023-03\n")
    doc = json.loads(kfm("gaps", SLUG, "--format", "json").out)
    assert doc["gaps"] == [{"start": "2023-03-01T00:00:00Z", "end": "2023-04-01T00:00:00Z",
                            "partitions": ["2023-03"]}]
    assert (doc["dataset_version_id"], doc["partitions"], doc["plan"]) == (V1, 5, None)


def test_no_gaps_once_the_gap_version_is_published(gap: Path, kfm: Runner) -> None:
    r = kfm("gaps", SLUG)
    assert r.code == 0, r.out + r.err
    assert r.out == (f"{SLUG} {V2}: 6 monthly partitions (UTC) from 2023-01 to 2023-06, cadence P1M\n"
                     "no gaps: every monthly partition from 2023-01 to 2023-06 is published\n")
    assert json.loads(kfm("gaps", SLUG, "--format", "json").out)["gaps"] == []


def test_until_expects_each_later_partition_once_its_cadence_has_passed(gap: Path, kfm: Runner) -> None:
    # July ends on August 1st; with a cadence of P1M it is due on September 1st, not before.
    assert kfm("gaps", SLUG, "--until", "2023-08-31T23:59:59Z").code == 0
    r = kfm("gaps", SLUG, "--until", "2023-09-01T00:00:00Z")
    assert r.code == 1
    assert r.out.splitlines()[1:] == ["missing: 1 interval, 1 partition",
                                      "  [2023-07-01T00:00:00Z, 2023-08-01T00:00:00Z)  2023-07"]
    r = kfm("gaps", SLUG, "--until", "2023-11-15T00:00:00Z")
    assert r.out.splitlines()[1:] == ["missing: 1 interval, 3 partitions",
                                      "  [2023-07-01T00:00:00Z, 2023-10-01T00:00:00Z)  2023-07 .. 2023-09 "
                                      "(3 partitions)"]
    bad = kfm("gaps", SLUG, "--until", "2023-09-01")
    assert bad.code == 2 and "--until:" in bad.err


def test_gaps_plan_drafts_one_plan_for_the_missing_window(first: Path, kfm: Runner) -> None:
    r = kfm("gaps", SLUG, "--plan", "--reviewer", "steward-kim")
    assert r.code == 1, r.err  # the gap is still there: the plan is only drafted
    wrote = r.out.splitlines()[0]
    assert wrote.startswith(f"wrote plans/{SLUG}/backfill-")
    plan = Path(wrote.removeprefix("wrote "))
    text = plan.read_text()
    for line in ('start: "2023-03-01T00:00:00Z"', 'end: "2023-04-01T00:00:00Z"', "mode: monthly",
                 f'prior_dataset_version_id: "{V1}"', "- \"steward-kim\"",
                 f'reason: "Gap fill: 1 missing monthly partition (2023-03) found by kfm gaps in {V1}"'):
        assert line in text, line
    assert "note: one plan covers the 1 missing partition(s)" in r.out
    assert "to do before review" not in r.out
    assert kfm("plan", "validate", str(plan)).code == 0
    chunks = json.loads(kfm("plan", "chunks", str(plan), "--format", "json").out)["chunks"]
    assert [c["key"] for c in chunks] == ["2023-03"]


def test_one_plan_covers_several_gaps_and_says_what_it_runs_again(first: Path, kfm: Runner) -> None:
    r = kfm("gaps", SLUG, "--until", "2023-09-01T00:00:00Z", "--plan", "--format", "json")
    doc = json.loads(r.out)
    assert [g["partitions"] for g in doc["gaps"]] == [["2023-03"], ["2023-07"]]
    text = Path(doc["plan"]).read_text()
    assert 'start: "2023-03-01T00:00:00Z"' in text and 'end: "2023-08-01T00:00:00Z"' in text
    from kfm_gitops.gaps import backfill_draft, coverage
    from kfm_gitops.periods import parse_timestamp

    cov = coverage(_cfg(first), SLUG, until=parse_timestamp("2023-09-01T00:00:00Z"))
    assert backfill_draft(_cfg(first), cov).notes[-1] == ("one plan covers all 2 gaps: the 3 partition(s) present "
                                                          "between them (2023-04 .. 2023-06) run again")


def test_gaps_of_a_dataset_never_published_is_refused(governed: Path, kfm: Runner) -> None:
    r = kfm("gaps", SLUG)
    assert r.code == 1
    assert f"kfm: nothing is published for {SLUG}: there is no coverage to compare" in r.err


# --- reindex into DuckDB ---------------------------------------------------------------------------------------


def test_reindex_twice_gives_the_same_digest_in_duckdb(first: Path, kfm: Runner) -> None:
    r1 = kfm("reindex", "--format", "json")
    r2 = kfm("reindex", SLUG, "--format", "json")
    assert (r1.code, r2.code) == (0, 0), r1.err + r2.err
    one, two = json.loads(r1.out)[0], json.loads(r2.out)[0]
    assert (one["dataset_version_id"], one["rows"], one["previous"], two["previous"]) == (V1, ROWS_V1, None, V1)
    assert one["digest"] == two["digest"] and one["digest"].startswith(f"duckdb-hash64:{ROWS_V1}:")
    from kfm_gitops.projections import projection_state, recompute

    assert projection_state(_cfg(first), SLUG) == (V1, one["digest"])
    assert recompute(_cfg(first), SLUG) == one["digest"]
    assert _duck(first, f"SELECT count(*) FROM {SLUG}") == [(ROWS_V1,)]
    assert _duck(first, "SELECT dataset_version_id, rows FROM kfm_projections") == [(V1, ROWS_V1)]
    assert not _duck(first, "SELECT * FROM duckdb_tables() WHERE table_name LIKE '%__next'")


def test_the_duckdb_projection_holds_the_artifacts_rows_with_bbox_columns(first: Path, kfm: Runner) -> None:
    assert kfm("reindex").code == 0
    rows = _artifact_rows(first, V1)
    cols = [c[0] for c in _duck(first, f"DESCRIBE {SLUG}")]
    assert cols == ["report_id", "event_time", "county", "event_type", "magnitude", "injuries", "source", "geometry",
                    "bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax"]
    got = _duck(first, f"SELECT report_id, bbox_xmin, bbox_ymax, magnitude FROM {SLUG} ORDER BY report_id")
    assert got == sorted((r["report_id"], r["bbox"]["xmin"], r["bbox"]["ymax"], r["magnitude"]) for r in rows)
    # Spatial filtering on the bbox columns: the reports around Wichita.
    box = (-97.8, 37.4, -97.1, 38.0)
    want = sum(1 for r in rows if box[0] <= r["bbox"]["xmin"] and r["bbox"]["xmax"] <= box[2]
               and box[1] <= r["bbox"]["ymin"] and r["bbox"]["ymax"] <= box[3])
    assert want > 0
    assert _duck(first, f"SELECT count(*) FROM {SLUG} WHERE bbox_xmin >= {box[0]} AND bbox_xmax <= {box[2]} AND "
                        f"bbox_ymin >= {box[1]} AND bbox_ymax <= {box[3]}") == [(want,)]


def test_reindex_moved_rebuilds_only_what_the_alias_moved(first: Path, kfm: Runner) -> None:
    assert kfm("reindex", "--moved").out.startswith(f"{SLUG}: projected {V1} ")  # never built: built
    assert kfm("reindex", "--moved").out == (f"{SLUG}: up to date in {DUCKDB} (built from {V1}; the alias has not "
                                             "moved)\n")
    _promote(first)
    r = kfm("reindex", "--moved")
    assert r.out.splitlines()[0] == f"{SLUG}: projected {V2} into {DUCKDB}: {ROWS_V2} rows (was: {V1})"
    assert _duck(first, f"SELECT count(*) FROM {SLUG} WHERE report_id LIKE 'KS-202303-%'") == [(120,)]


def test_the_projection_is_built_from_the_alias_never_the_working_tree(first: Path, kfm: Runner) -> None:
    # main's working tree holds the gap's version, and release's published.yaml may already name it: neither is
    # what the alias shows.
    from test_release import merge_release

    from kfm_gitops.release import propose

    merge_release(first, propose(_cfg(first), SLUG).branch)
    r = kfm("reindex", "--format", "json")
    assert json.loads(r.out)[0]["dataset_version_id"] == V1


def test_a_digest_does_not_depend_on_row_order_and_duplicates_do_not_cancel(tmp_path: Path) -> None:
    import duckdb

    from kfm_gitops.projections._duckdb import _digest

    con = duckdb.connect(str(tmp_path / "d.duckdb"))
    rows = {"a": (1, "x"), "b": (2, "y"), "c": (3, "z")}
    for name, keys in (("t1", "abc"), ("t2", "cba"), ("t3", "aac"), ("t4", "bbc")):
        con.execute(f"CREATE TABLE {name} (n INTEGER, s VARCHAR)")
        con.executemany(f"INSERT INTO {name} VALUES (?, ?)", [list(rows[k]) for k in keys])
    d = {name: _digest(con, name)[0] for name in ("t1", "t2", "t3", "t4")}
    assert d["t1"] == d["t2"]  # the same rows in another order
    assert d["t3"] != d["t4"]  # a XOR of row hashes would give both the hash of c: a sum does not
    con.close()


def test_reindex_reads_a_remote_store_verifying_what_it_copies(first: Path) -> None:
    from kfm_gitops.projections import reindex
    from kfm_gitops.store import Store

    local = Store(str(first / ".kfm" / "objects"))
    remote = Store(f"memory://kfm-test-{secrets.token_hex(4)}")
    manifest = json.loads((first / "releases" / SLUG / V1 / "promotion-manifest.json").read_text())
    local.copy_to(remote, [p["processed"] for p in manifest["partitions"]])
    [a] = reindex(_cfg(first), [SLUG], store=remote)
    [b] = reindex(_cfg(first), [SLUG], store=local)
    assert (a.digest, a.rows) == (b.digest, ROWS_V1)


# --- failures: the previous projection stays -------------------------------------------------------------------


def _assert_still_v1(root: Path, digest: str) -> None:
    from kfm_gitops.projections import projection_state, recompute

    assert projection_state(_cfg(root), SLUG) == (V1, digest)
    assert recompute(_cfg(root), SLUG) == digest
    assert _duck(root, f"SELECT count(*) FROM {SLUG}") == [(ROWS_V1,)]
    assert not _duck(root, "SELECT * FROM duckdb_tables() WHERE table_name LIKE '%__next'")


def test_a_rebuild_that_raises_leaves_the_previous_projection(first: Path, kfm: Runner) -> None:
    from kfm_gitops.projections import _duckdb, reindex

    digest = json.loads(kfm("reindex", "--format", "json").out)[0]["digest"]
    _promote(first)

    def broken(con: Any, table: str) -> tuple[str, int]:
        assert _duck_count(con, table) == ROWS_V2  # built aside, complete, not swapped in yet
        raise RuntimeError("the disk went away")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_duckdb, "_digest", broken)
        with pytest.raises(RuntimeError, match="the disk went away"):
            reindex(_cfg(first), [SLUG])
    _assert_still_v1(first, digest)


def _duck_count(con: Any, table: str) -> int:
    return int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def _killed(root: Path, marker: Path, patch: str, args: list[str]) -> None:
    """Run `kfm ARGS` in a subprocess with ``patch`` applied, wait until it writes ``marker``, SIGKILL it."""
    script = (f"import sys, time\nsys.path.insert(0, {str(PROJECT)!r})\nMARKER = {str(marker)!r}\n{patch}\n"
              f"from kfm_gitops.cli import main\nsys.exit(main({args!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, env={**os.environ, **GIT_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the rebuild never reached its marker (exit {proc.returncode}): {out!r} {err!r}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def test_a_rebuild_killed_half_way_leaves_the_previous_projection_in_duckdb(first: Path, kfm: Runner,
                                                                           tmp_path: Path) -> None:
    digest = json.loads(kfm("reindex", "--format", "json").out)[0]["digest"]
    _promote(first)
    patch = ("from kfm_gitops.projections import _duckdb\nreal = _duckdb._digest\n"
             "def held(con, table):\n    out = real(con, table)\n    open(MARKER, 'w').close()\n"
             "    time.sleep(600)\n    return out\n_duckdb._digest = held\n")
    _killed(first, tmp_path / "built-aside", patch, ["reindex"])
    _assert_still_v1(first, digest)
    r = kfm("reindex", "--format", "json")  # the next rebuild goes through
    assert json.loads(r.out)[0]["dataset_version_id"] == V2, r.err


# --- reindex into PostGIS --------------------------------------------------------------------------------------


def test_reindex_twice_gives_the_same_digest_in_postgis(first: Path, kfm: Runner, postgis: str) -> None:
    r1 = kfm("reindex", SLUG, "--target", postgis, "--format", "json")
    r2 = kfm("reindex", SLUG, "--target", postgis, "--format", "json")
    assert (r1.code, r2.code) == (0, 0), r1.err + r2.err
    one, two = json.loads(r1.out)[0], json.loads(r2.out)[0]
    assert one["digest"] == two["digest"] and one["digest"].startswith(f"postgres-hash_record_extended:{ROWS_V1}:")
    assert ":***@" in one["target"] and "kfm:kfm@" not in r1.out
    from kfm_gitops.projections import projection_state, recompute

    assert projection_state(_cfg(first), SLUG, postgis) == (V1, one["digest"])
    assert recompute(_cfg(first), SLUG, postgis) == one["digest"]
    assert projection_state(_cfg(first), SLUG) is None  # the DuckDB default holds nothing


def test_the_postgis_projection_has_a_spatial_index_and_agrees_with_the_bbox(first: Path, kfm: Runner,
                                                                            postgis: str) -> None:
    assert kfm("reindex", "--target", postgis).code == 0
    [(indexdef,)] = _pg(postgis, f"SELECT indexdef FROM pg_indexes WHERE tablename = '{SLUG}' "
                              "AND schemaname = current_schema()")
    assert "USING gist (geometry)" in indexdef
    assert _pg(postgis, f"SELECT DISTINCT ST_SRID(geometry), GeometryType(geometry) FROM {SLUG}") == [(4326, "POINT")]
    rows = _artifact_rows(first, V1)
    got = _pg(postgis, f"SELECT report_id, event_time, ST_X(geometry), bbox_ymax, injuries FROM {SLUG} "
                       "ORDER BY report_id")
    assert got == sorted((r["report_id"], r["event_time"], r["bbox"]["xmin"], r["bbox"]["ymax"], r["injuries"])
                         for r in rows)
    box = "ST_MakeEnvelope(-97.8, 37.4, -97.1, 38.0, 4326)"
    [(by_index,)] = _pg(postgis, f"SELECT count(*) FROM {SLUG} WHERE geometry && {box}")
    [(by_columns,)] = _pg(postgis, f"SELECT count(*) FROM {SLUG} WHERE bbox_xmin >= -97.8 AND bbox_xmax <= -97.1 "
                                   "AND bbox_ymin >= 37.4 AND bbox_ymax <= 38.0")
    assert by_index == by_columns > 0


def test_a_postgres_digest_does_not_depend_on_row_order_and_duplicates_do_not_cancel(postgis: str) -> None:
    import psycopg

    from kfm_gitops.projections import parse_target
    from kfm_gitops.projections._pgcopy import PgColumn
    from kfm_gitops.projections._postgis import _digest

    target = parse_target(_cfg(PROJECT), postgis)
    cols = [PgColumn("n", "integer", ">i4"), PgColumn("s", "text", "var")]
    rows = {"a": (1, "x"), "b": (2, "y"), "c": (3, "z")}
    with psycopg.connect(target.conninfo) as con:
        cur = con.cursor()
        cur.execute(f'CREATE SCHEMA "{target.schema}"')
        cur.execute(f'SET search_path TO "{target.schema}"')
        d = {}
        for name, keys in (("t1", "abc"), ("t2", "cba"), ("t3", "aac"), ("t4", "bbc")):
            cur.execute(f"CREATE TABLE {name} (n integer, s text)")
            cur.executemany(f"INSERT INTO {name} VALUES (%s, %s)", [rows[k] for k in keys])
            d[name] = _digest(cur, name, cols)[0]
    assert d["t1"] == d["t2"]
    assert d["t3"] != d["t4"]


def test_a_postgis_rebuild_that_raises_or_is_killed_leaves_the_previous_projection(
        first: Path, kfm: Runner, postgis: str, tmp_path: Path) -> None:
    from kfm_gitops.projections import _postgis, projection_state, recompute, reindex

    digest = json.loads(kfm("reindex", "--target", postgis, "--format", "json").out)[0]["digest"]
    _promote(first)

    def still_v1() -> None:
        assert projection_state(_cfg(first), SLUG, postgis) == (V1, digest)
        assert recompute(_cfg(first), SLUG, postgis) == digest
        assert _pg(postgis, f"SELECT count(*) FROM {SLUG}") == [(ROWS_V1,)]
        assert _pg(postgis, "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%__next' "
                   "AND schemaname = current_schema()") == [(0,)]

    def broken(cur: Any, table: str, columns: Any) -> tuple[str, int]:
        raise RuntimeError("the server said no")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_postgis, "_digest", broken)
        with pytest.raises(RuntimeError, match="the server said no"):
            reindex(_cfg(first), [SLUG], postgis)
    still_v1()
    # Killed in the middle of its COPY: the server rolls the transaction back when the connection drops.
    patch = ("from kfm_gitops.projections import _pgcopy\nreal = _pgcopy.encode\ncalls = []\n"
             "def held(batch, columns):\n    calls.append(1)\n    if len(calls) == 3:\n"
             "        open(MARKER, 'w').close()\n        time.sleep(600)\n    return real(batch, columns)\n"
             "_pgcopy.encode = held\n")
    _killed(first, tmp_path / "copying", patch, ["reindex", "--target", postgis])
    still_v1()
    r = kfm("reindex", "--target", postgis, "--format", "json")  # its lock was released with its connection
    assert json.loads(r.out)[0]["dataset_version_id"] == V2, r.err


def test_a_database_without_postgis_is_refused_and_nothing_changes(first: Path, kfm: Runner, postgis: str) -> None:
    from kfm_gitops.projections import _postgis, projection_state

    assert kfm("reindex", "--target", postgis).code == 0
    before = projection_state(_cfg(first), SLUG, postgis)
    _promote(first)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_postgis, "EXTENSION", "postgis_not_installed")
        r = kfm("reindex", "--target", postgis)
    assert r.code == 1
    assert "has no PostGIS (extension 'postgis_not_installed') and it cannot be created here" in r.err
    assert "never builds a PostGIS projection without its spatial index" in r.err
    assert projection_state(_cfg(first), SLUG, postgis) == before


def test_unreachable_or_unknown_targets_are_refused(first: Path, kfm: Runner) -> None:
    r = kfm("reindex", "--target", "postgresql://kfm:secret@127.0.0.1:1/nothing")
    assert r.code == 1 and "cannot connect to postgresql://kfm:***@127.0.0.1:1/nothing" in r.err
    assert "secret" not in r.err
    r = kfm("reindex", "--target", "ftp://example.org/x")
    assert r.code == 2 and "not a kind of target kfm knows" in r.err
    r = kfm("reindex", "no_such_dataset")
    assert r.code == 1 and "nothing is published for no_such_dataset" in r.err
    for name in ("kfm_projections", "storms__next"):
        r = kfm("reindex", name)
        assert r.code == 1 and f"a dataset named {name} cannot have a projection" in r.err


# --- doctor ----------------------------------------------------------------------------------------------------


def _doctor(kfm: Runner, *args: str) -> dict[str, Any]:
    r = kfm("doctor", SLUG, "--format", "json", *args)
    doc: dict[str, Any] = json.loads(r.out)
    assert r.code == (0 if doc["answer"] == "nothing" else 1)
    return doc


def _status(doc: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in doc["checks"]}


def test_doctor_nothing_to_do_then_reindex_when_only_the_projection_lags(gap: Path, kfm: Runner) -> None:
    doc = _doctor(kfm)
    assert doc["answer"] == "reindex"  # never built
    assert _status(doc) == {"PROCESSED": "ok", "catalogs": "ok", "history": "ok", "projection": "failed"}
    assert kfm("reindex").code == 0
    r = kfm("doctor", SLUG)
    assert r.code == 0, r.out
    lines = r.out.splitlines()
    assert lines[0].startswith(f"{SLUG}: {V2} (published/{SLUG} at ")
    assert [ln.split()[:2] for ln in lines[1:5]] == [["ok", "PROCESSED"], ["ok", "catalogs"], ["ok", "history"],
                                                     ["ok", "projection"]]
    assert lines[-1] == ("answer: nothing to do: the artifacts, catalogs, history and projection of what is "
                         "published are sound")


def test_doctor_says_reindex_for_a_projection_of_an_older_version(first: Path, kfm: Runner) -> None:
    assert kfm("reindex").code == 0
    _promote(first)
    r = kfm("doctor", SLUG)
    assert r.code == 1
    assert f"  FAILED  projection  {DUCKDB}: built from {V1} (alias commit " in r.out
    assert f"but the alias publishes {V2} (alias commit " in r.out
    assert r.out.splitlines()[-1] == (f"answer: reindex: only the projection is stale; the canonical artifacts are "
                                      f"fine (`kfm reindex {SLUG}`)")


def test_doctor_says_reindex_for_a_projection_changed_since_it_was_built(gap: Path, kfm: Runner) -> None:
    import duckdb

    assert kfm("reindex").code == 0
    con = duckdb.connect(str(gap / DUCKDB))
    con.execute(f"UPDATE {SLUG} SET injuries = 99 WHERE report_id = 'KS-202301-0001'")
    con.close()
    doc = _doctor(kfm)
    assert doc["answer"] == "reindex"
    [projection] = [c for c in doc["checks"] if c["check"] == "projection"]
    assert "it was changed since it was built" in projection["evidence"][0]


def _object(root: Path, version: str, key: str) -> Path:
    manifest = json.loads((root / "releases" / SLUG / version / "promotion-manifest.json").read_text())
    hexd = str(next(p["processed"] for p in manifest["partitions"] if p["partition"] == key))[7:]
    return root / ".kfm" / "objects" / "sha256" / hexd[:2] / hexd


def test_doctor_says_backfill_for_a_corrupt_or_missing_artifact(gap: Path, kfm: Runner) -> None:
    assert kfm("reindex").code == 0
    corrupt = _object(gap, V2, "2023-03")
    corrupt.chmod(0o644)
    corrupt.write_bytes(corrupt.read_bytes()[:-10] + bytes(10))
    doc = _doctor(kfm)
    assert doc["answer"] == "backfill"
    [processed] = [c for c in doc["checks"] if c["check"] == "PROCESSED"]
    assert processed["status"] == "failed"
    assert processed["evidence"][0].startswith("2023-03: sha256:")
    assert processed["evidence"][0].endswith("does not match its digest (corrupt)")
    _object(gap, V2, "2023-05").unlink()
    evidence = next(c for c in _doctor(kfm)["checks"] if c["check"] == "PROCESSED")["evidence"]
    assert evidence[1].startswith("2023-05: sha256:") and evidence[1].endswith("is missing from the store")
    # and a reindex refuses to build from them
    r = kfm("reindex")
    assert r.code == 1 and "PROCESSED artifacts unusable" in r.err and "nothing was rebuilt" in r.err


def test_doctor_says_backfill_for_invalid_catalogs(first: Path, kfm: Runner) -> None:
    """The gap's version published with its STAC collection broken (its plan PR committed it so, and promote's gate
    runner here passes anything): the catalogs as the evidence commit holds them are what doctor validates."""
    from test_release import merge_plan

    git(first, "checkout", "-q", "main")
    git(first, "branch", "-D", "plan/gap")
    git(first, "reset", "-q", "--hard", "HEAD~1")  # main before the gap's merge; its plan commit stays

    def tampering(*args: str) -> Result:
        r = _run_kfm(*args)
        collection = first / "releases" / SLUG / V2 / "catalog" / "stac" / "collection.json"
        doc = json.loads(collection.read_text())
        del doc["description"]
        collection.write_text(json.dumps(doc, indent=2))
        return r

    plan = next(p for p in (first / "plans" / SLUG).glob("*.yml") if "a1b2c3" in p.name)
    assert merge_plan(first, tampering, "plan/gap", str(plan.relative_to(first))) == V2
    _promote(first)
    assert kfm("reindex").code == 0
    doc = _doctor(kfm)
    assert (doc["dataset_version_id"], doc["answer"]) == (V2, "backfill")
    assert _status(doc) == {"PROCESSED": "ok", "catalogs": "failed", "history": "ok", "projection": "ok"}
    [catalogs] = [c for c in doc["checks"] if c["check"] == "catalogs"]
    assert any("collection.json:1:1: STAC_INVALID: #: 'description' is a required property" in e
               for e in catalogs["evidence"]), catalogs


def test_doctor_says_backfill_for_missing_history_and_when_nothing_is_published(first: Path, kfm: Runner) -> None:
    assert kfm("reindex").code == 0
    doc = _doctor(kfm)
    assert (doc["answer"], _status(doc)["history"], _status(doc)["projection"]) == ("backfill", "failed", "ok")
    [history] = [c for c in doc["checks"] if c["check"] == "history"]
    assert history["evidence"][0] == "missing [2023-03-01T00:00:00Z, 2023-04-01T00:00:00Z): 2023-03"
    git(first, "branch", "-D", f"published/{SLUG}")
    doc = _doctor(kfm)
    assert (doc["answer"], doc["dataset_version_id"], _status(doc)) == ("backfill", None, {"published": "failed"})


def test_doctor_answers_unknown_when_the_projection_target_cannot_be_reached(gap: Path, kfm: Runner) -> None:
    doc = _doctor(kfm, "--target", "postgresql://kfm:x@127.0.0.1:1/nothing")
    assert doc["answer"] == "unknown"
    assert _status(doc)["projection"] == "error"


# --- the binary COPY encoder and the artifacts' columns --------------------------------------------------------


def test_the_binary_copy_encoder_round_trips_every_column_type(postgis: str) -> None:
    """Arrow values of each type the contracts use (and a few more), NULLs among them, through binary COPY into
    PostgreSQL and back, as PostgreSQL reads them."""
    from datetime import UTC, date, datetime

    import psycopg
    import pyarrow as pa

    from kfm_gitops.projections import parse_target
    from kfm_gitops.projections._pgcopy import HEADER, TRAILER, encode, pg_column

    point = bytes.fromhex("0101000000000000000000f03f0000000000000040")  # POINT(1 2), little-endian WKB
    batch = pa.RecordBatch.from_pydict({
        "s": pa.array(["a", None, "ünï", ""]),
        "ls": pa.array(["x", "y", None, "z"], pa.large_string()),
        "i16": pa.array([1, -2, None, 32767], pa.int16()),
        "i32": pa.array([None, -2147483648, 7, 0], pa.int32()),
        "i64": pa.array([2**62, None, -1, 0], pa.int64()),
        "f32": pa.array([1.5, None, -0.25, 0.0], pa.float32()),
        "f64": pa.array([None, 3.25, -1e300, 0.1], pa.float64()),
        "b": pa.array([True, False, None, True]),
        "d": pa.array([date(2023, 3, 1), None, date(1999, 12, 31), date(2000, 1, 1)]),
        "ts_s": pa.array([0, None, 946684800, -1], pa.timestamp("s", "UTC")),
        "ts_ns": pa.array([1_700_000_000_123_456_789, None, 0, 5], pa.timestamp("ns", "UTC")),
        "naive": pa.array([1_000_000, None, 0, 1], pa.timestamp("us")),
        "raw": pa.array([b"\x00\x01", None, b"", b"\xff"], pa.binary()),
        "geometry": pa.array([point, point, None, point], pa.binary()),
    })
    columns = [pg_column(f.name, f.type, f.name == "geometry") for f in batch.schema]
    target = parse_target(_cfg(PROJECT), postgis)
    with psycopg.connect(target.conninfo) as con:
        cur = con.cursor()
        cur.execute(f'CREATE SCHEMA "{target.schema}"')
        cur.execute(f'SET search_path TO "{target.schema}", public')
        cur.execute("CREATE TABLE t (" + ", ".join(f'"{c.name}" {c.sql_type}' for c in columns) + ")")
        with cur.copy("COPY t FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(HEADER + bytes(encode(batch, columns)) + bytes(encode(batch.slice(1, 2), columns)) + TRAILER)
        got = cur.execute("SELECT s, ls, i16, i32, i64, f32, f64, b, d, ts_s, ts_ns, naive, raw, "
                          "ST_AsText(geometry), ST_SRID(geometry) FROM t").fetchall()
    utc = UTC
    assert got[0] == ("a", "x", 1, None, 2**62, 1.5, None, True, date(2023, 3, 1), datetime(1970, 1, 1, tzinfo=utc),
                      datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=utc), datetime(1970, 1, 1, 0, 0, 1),
                      b"\x00\x01", "POINT(1 2)", 4326)
    assert got[1] == (None, "y", -2, -2147483648, None, None, 3.25, False, None, None, None, None, None,
                      "POINT(1 2)", 4326)
    assert got[2] == ("ünï", None, None, 7, -1, -0.25, -1e300, None, date(1999, 12, 31),
                      datetime(2000, 1, 1, tzinfo=utc), datetime(1970, 1, 1, tzinfo=utc), datetime(1970, 1, 1),
                      b"", None, None)
    assert got[3][:4] == ("", "z", 32767, 0) and got[3][9] == datetime(1969, 12, 31, 23, 59, 59, tzinfo=utc)
    assert got[4:] == got[1:3]  # a sliced batch (an offset into its buffers) encodes the same rows


def test_artifacts_that_disagree_on_a_column_type_are_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kfm_gitops.projections._model import ProjectionError
    from kfm_gitops.projections._source import artifact_schema

    pq.write_table(pa.table({"a": pa.array([1], pa.int32()), "b": ["x"]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": pa.array([1], pa.int32())}), tmp_path / "2.parquet")
    pq.write_table(pa.table({"a": ["1"]}), tmp_path / "3.parquet")
    assert artifact_schema([tmp_path / "1.parquet", tmp_path / "2.parquet"]).names == ["a", "b"]
    with pytest.raises(ProjectionError, match="do not agree on their columns"):
        artifact_schema([tmp_path / "1.parquet", tmp_path / "3.parquet"])


def test_a_column_type_without_a_postgresql_type_is_refused() -> None:
    import pyarrow as pa

    from kfm_gitops.projections._pgcopy import UnsupportedType, pg_column

    assert pg_column("g", pa.binary(), geometry=True).sql_type == "geometry(Geometry, 4326)"
    with pytest.raises(UnsupportedType, match="column 'tags' is list<item: string>") as caught:
        pg_column("tags", pa.list_(pa.string()))
    assert (caught.value.code, caught.value.exit_code) == ("PROJECTION_COLUMN_TYPE", 1)
