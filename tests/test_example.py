"""The example dataset: the repository's copy is what the generator makes, and the upstream has its gap and its
bad batch."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from conftest import PROJECT
from kfm_gitops import example


def test_repository_copy_equals_the_generator() -> None:
    files = example.repository_files()
    for rel, data in files.items():
        path = PROJECT / rel
        assert path.is_file(), f"{rel} is missing from the repository: regenerate the example"
        assert path.read_bytes() == data, f"{rel} differs from what the generator makes"
    on_disk = {str(p.relative_to(PROJECT)) for p in (PROJECT / "upstream").rglob("*") if p.is_file()}
    assert on_disk == {rel for rel in files if rel.startswith("upstream/")}


def test_package_copy_equals_the_repository_contract() -> None:
    for rel, data in example.contract_files().items():
        assert (PROJECT / rel).read_bytes() == data


def test_generator_is_deterministic() -> None:
    assert example.upstream_files() == example.upstream_files()
    first = example.month_rows("2023-01")
    assert first == example.month_rows("2023-01")
    assert first != example.month_rows("2023-02")


def test_outage_month_is_missing_until_redelivered() -> None:
    before = example.upstream_files(redelivery=False)
    after = example.upstream_files()
    assert not any("2023-03" in rel for rel in before)
    redelivered = sorted(rel for rel in after if rel not in before)
    assert redelivered and all(rel.startswith(f"{example.REDELIVERY}/2023-03/") for rel in redelivered)
    for month in example.MONTHS:
        if month != example.OUTAGE_MONTH:
            assert any(rel.startswith(f"{example.UPSTREAM}/{month}/") for rel in before)


def read_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_good_rows_are_good_and_bad_rows_are_bad() -> None:
    files = example.upstream_files()
    ids: set[str] = set()
    for rel, data in files.items():
        if not rel.endswith(".csv") or example.REDELIVERY in rel:
            continue
        for row in read_rows(data):
            month = rel.split("/")[-2]
            assert row["event_time"].startswith(month) and row["event_time"].endswith("Z")
            assert -102.06 <= float(row["longitude"]) <= -94.58
            assert 36.99 <= float(row["latitude"]) <= 40.01
            assert row["report_id"] not in ids
            ids.add(row["report_id"])
    march = [row for rel, data in files.items() if example.REDELIVERY in rel and rel.endswith(".csv")
             for row in read_rows(data)]
    bad = [r for r in march if r["report_id"].endswith(tuple(f"-900{i}" for i in range(1, 10)))]
    assert len(bad) == 8
    march_ids = [r["report_id"] for r in march]
    assert len(march_ids) - len(set(march_ids)) == 1  # one duplicate id
    assert any(r["magnitude"] == "heavy" for r in bad)
    assert any(r["longitude"] == "" for r in bad)
    assert any(r["event_time"].startswith("2023-02") for r in bad)
    assert any(not r["event_time"].endswith("Z") for r in bad)


def test_upstream_terms_are_part_of_the_upstream() -> None:
    files = example.upstream_files()
    assert b"CC BY 4.0" in files[f"{example.UPSTREAM}/TERMS.txt"]
    assert Path(example.FIRST_PLAN).name.startswith("backfill-")


def test_repository_policies_are_the_defaults() -> None:
    from kfm_gitops.policy import default_files

    for rel, data in default_files().items():
        assert (PROJECT / rel).read_bytes() == data


def test_repository_runbook_is_the_one_kfm_init_writes() -> None:
    from kfm_gitops.plan import TEMPLATE
    from kfm_gitops.repository import RUNBOOK, RUNBOOK_TEXT, SCAFFOLD

    assert SCAFFOLD[RUNBOOK] == RUNBOOK_TEXT
    assert (PROJECT / RUNBOOK).read_bytes() == RUNBOOK_TEXT
    assert f"runbook: {RUNBOOK}\n" in TEMPLATE, "plans name the runbook kfm init writes"
