"""QA statistics that are true: every figure of qa.json is checked against an independent count, DuckDB over the
same rows (the upstream files, the published partitions and the quarantined rows in the store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from upstreams import COLUMNS, backfill, dataset_yaml, feature, make_repository, pipeline_yaml, run_folders

from conftest import Runner
from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM
from kfm_gitops.store import Store


def duck(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect()
    try:
        rows: list[tuple[Any, ...]] = con.execute(sql, list(params)).fetchall()
        return rows
    finally:
        con.close()


def folder_of(root: Path, slug: str, key: str) -> Path:
    return [f for f in sorted((root / "releases" / slug / "runs").iterdir())
            if f".{key}." in f.name and (f / "qa.json").exists()][-1]


def test_qa_of_the_redelivered_month_matches_duckdb(governed: Path, kfm: Runner) -> None:
    shutil.copytree(governed / REDELIVERY / "2023-03", governed / UPSTREAM / "2023-03")
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-03").code == 0
    assert kfm("process", FIRST_PLAN, "--chunk", "2023-03").code == 0
    folder = folder_of(governed, "ks_storm_reports", "2023-03")
    qa = json.loads((folder / "qa.json").read_text())
    q = json.loads((folder / "quarantine.json").read_text())
    receipt = json.loads((folder / "receipt.json").read_text())
    store = Store(str(governed / ".kfm/objects"))
    csvs = sorted(str(p) for p in (governed / UPSTREAM / "2023-03").glob("*.csv"))
    source = "read_csv(?, all_varchar = true, header = true, allow_quoted_nulls = false)"
    (total,) = duck(f"SELECT count(*) FROM {source}", csvs)[0]
    parts = [store.local_path(o["digest"]) for o in receipt["outputs"] if o["role"].startswith("partition:")]
    (accepted,) = duck("SELECT count(*) FROM read_parquet(?)", [str(p) for p in parts])[0]
    rows_object = str(store.local_path(q["rows_object"]))
    by_cause = duck('SELECT "$kfm.reason", "$kfm.column", count(*) FROM read_parquet(?) GROUP BY ALL', rows_object)
    duplicates = [r for r in q["records"] if r["reason"] == "DUPLICATE_ID"]
    assert qa["rows"] == {"total": total, "accepted": accepted, "quarantined": total - accepted, "other_chunks": 0}
    assert qa["rows"]["quarantined"] == sum(n for _, _, n in by_cause) + len(duplicates)
    counted: dict[str, dict[str, int]] = {}
    for reason, column, n in by_cause:
        counted.setdefault(reason, {})[column] = n
    for d in duplicates:
        counted.setdefault("DUPLICATE_ID", {}).setdefault(d["column"], 0)
        counted["DUPLICATE_ID"][d["column"]] += 1
    assert {c["reason"]: c["columns"] for c in qa["checks"] if c["failed"]} == counted
    assert {c["reason"]: c["failed"] for c in qa["checks"] if c["failed"]} == {
        r: sum(v.values()) for r, v in counted.items()}
    assert qa["invalid_ratio"] == round((total - accepted) / total, 6)
    for column, ratio in qa["null_ratio"].items():
        (nulls,) = duck(f'SELECT count(*) FILTER (WHERE "{column}" IS NULL) FROM {source}', csvs)[0]
        assert ratio == round(nulls / total, 6), column


EPOCH_COLUMNS = COLUMNS.replace("{name: time, type: timestamp, required: true}",
                                "{name: time, type: timestamp, required: true, encoding: epoch_ms}") + \
    "    - {name: felt, type: int64}\n    - {name: tz, type: int32}\n"


def test_null_ratios_of_a_chunk_quarantined_whole_match_duckdb(tmp_path: Path, kfm: Runner,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row is refused (ISO times where epoch_ms is declared), yet felt is mostly null and tz missing."""
    features = [feature(None, [-117.5, 35.7, 1.0], event_id=f"e{i}", time=f"2023-07-0{i % 9 + 1}T00:00:00Z",
                        mag=1.0 if i % 4 else None, place="p", felt=3 if i == 0 else None) for i in range(12)]
    path = tmp_path / "week.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    root = tmp_path / "repo"
    plan = make_repository(root, "quakes", dataset_yaml(columns=EPOCH_COLUMNS), pipeline_yaml(),
                           {"2023-07/week.geojson": path.read_bytes()})
    monkeypatch.chdir(root)
    code, _ = backfill(kfm, plan)
    assert code == 1
    qa = json.loads((run_folders(root, "quakes")[-1] / "qa.json").read_text())
    source = "read_json(?)"  # DuckDB reads a FeatureCollection as rows, properties as columns
    (total,) = duck(f"SELECT count(*) FROM {source}", str(path))[0]
    assert qa["rows"]["total"] == total == qa["rows"]["quarantined"] and qa["invalid_ratio"] == 1.0
    for column in ("event_id", "time", "mag", "place", "felt"):
        (nulls,) = duck(f'SELECT count(*) FILTER (WHERE "{column}" IS NULL) FROM {source}', str(path))[0]
        assert qa["null_ratio"][column] == round(nulls / total, 6), column
    assert qa["null_ratio"]["felt"] == round(11 / 12, 6) and qa["null_ratio"]["mag"] == 0.25
    assert qa["null_ratio"]["tz"] == 1.0  # missing from the source: all null
