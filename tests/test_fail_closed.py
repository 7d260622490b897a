"""Ways a backfill could end in a quiet success while something was wrong: each must fail closed, or be routed to
quarantine with a reason, and never leak raw values into committed evidence."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import Runner, git
from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM

SLUG = "ks_storm_reports"


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def version_of(root: Path, plan: str = FIRST_PLAN) -> str:
    return re.search(r'expected_dataset_version_id: "([^"]*)"', (root / plan).read_text()).group(1)  # type: ignore[union-attr]


def plan_over(root: Path, name: str, start: str, end: str, prior: str, **replace: str) -> str:
    text = (root / FIRST_PLAN).read_text()
    text = text.replace('start: "2023-01-01T00:00:00Z"', f'start: "{start}"')
    text = text.replace('end: "2023-07-01T00:00:00Z"', f'end: "{end}"')
    text = text.replace('prior_dataset_version_id: ""', f'prior_dataset_version_id: "{prior}"')
    text = re.sub(r'expected_dataset_version_id: "[^"]*"', 'expected_dataset_version_id: "<to-be-computed>"', text)
    for old, new in replace.items():
        text = text.replace(old.replace("_", " ") if old.startswith("_") else old, new)
    rel = f"plans/{SLUG}/{name}.yml"
    (root / rel).write_text(text)
    return rel


def first_release(root: Path, kfm: Runner) -> str:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    commit_all(root, "first release")
    return version_of(root)


def test_a_window_without_data_does_not_unpublish_the_base(governed: Path, kfm: Runner) -> None:
    v1 = first_release(governed, kfm)
    rel = plan_over(governed, "jan", "2023-01-01T00:00:00Z", "2023-02-01T00:00:00Z", v1)
    shutil.rmtree(governed / UPSTREAM / "2023-01")
    commit_all(governed, "january gone upstream")
    r = kfm("backfill", "run", rel, "--yes")
    assert r.code == 1
    assert "PARTITION_DROPPED: partition(s) 2023-01 of the base version" in r.out
    assert "<to-be-computed>" in (governed / rel).read_text()


def test_a_tighter_label_cannot_carry_the_base(governed: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = first_release(governed, kfm)
    shutil.copytree(governed / REDELIVERY / "2023-03", governed / UPSTREAM / "2023-03")
    text = plan_over(governed, "tight", "2023-03-01T00:00:00Z", "2023-04-01T00:00:00Z", v1)
    path = governed / text
    path.write_text(path.read_text().replace("policy_label: public", "policy_label: restricted"))
    commit_all(governed, "a tighter plan")
    r = kfm("backfill", "run", text, "--yes")  # refused with the plan, before any chunk runs
    assert r.code == 1
    assert f"{text}:24:17: PLAN_BASE_POLICY: the base version {v1} was made under label 'public'" in r.err
    runs = sorted((governed / "releases" / SLUG / "runs").iterdir())
    # and if the plan check were missed, the roll-up still refuses (defence in depth)
    import kfm_gitops.plan

    monkeypatch.setattr(kfm_gitops.plan, "_base_policy", lambda *args: [])
    r = kfm("backfill", "run", text, "--yes")
    assert r.code == 1
    assert "ROLLUP_POLICY_MISMATCH" in r.out
    assert len(sorted((governed / "releases" / SLUG / "runs").iterdir())) == len(runs) + 1


def test_rollup_without_runs_fails(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "rollup", FIRST_PLAN)
    assert r.code == 1
    assert "ROLLUP_INCOMPLETE: not rolled up: chunk(s) 2023-01, 2023-02" in r.out


def test_a_policy_changed_after_the_runs_blocks_the_rollup(governed: Path, kfm: Runner) -> None:
    keys = [a for k in ("2023-01", "2023-02", "2023-03", "2023-04", "2023-05", "2023-06") for a in ("--chunk", k)]
    assert kfm("backfill", "run", FIRST_PLAN, "--yes", *keys).code == 0  # every chunk: a rollup could reuse them
    rego = governed / "policies/processing.rego"
    rego.write_text(rego.read_text() + '\ndeny contains "TIGHTENED" if true\n')
    commit_all(governed, "tighten the policy")
    r = kfm("backfill", "rollup", FIRST_PLAN)
    assert r.code == 1  # the runs were decided under other policies: none is reused
    assert "ROLLUP_INCOMPLETE: not rolled up: chunk(s) 2023-01, 2023-02, 2023-03, 2023-04, 2023-05, 2023-06 have " \
        "no passing run yet" in r.out
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1
    assert "ROLLUP_BLOCKED: no version: the processing policy denies this data (TIGHTENED)" in r.out


def test_a_corrupt_raw_object_is_not_published_and_acquiring_again_heals_it(governed: Path, kfm: Runner) -> None:
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    manifest = json.loads(next((governed / "data/raw" / SLUG).glob("2023-01.*.json")).read_text())
    digest = manifest["objects"][0]["digest"]
    obj = governed / ".kfm/objects/sha256" / digest[7:9] / digest[7:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes().replace(b"Sedgwick", b"Zzzzzzzz"))
    r = kfm("process", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 1
    assert "HASH_MISMATCH" in r.out and "is corrupt in the store" in r.out
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    r = kfm("process", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code == 0, r.out


def rewrite(root: Path, month: str, change: object) -> None:
    for f in sorted((root / UPSTREAM / month).glob("*.csv")):
        f.write_bytes(change(f.read_bytes()))  # type: ignore[operator]


def process(kfm: Runner, key: str) -> tuple[int, str]:
    assert kfm("acquire", FIRST_PLAN, "--chunk", key).code == 0
    r = kfm("process", FIRST_PLAN, "--chunk", key)
    return r.code, r.out


def test_a_missing_column_is_an_error(governed: Path, kfm: Runner) -> None:
    rewrite(governed, "2023-02", lambda b: b.replace(b",source,", b",src,", 1))
    code, out = process(kfm, "2023-02")
    assert code == 1
    for name in sorted(p.name for p in (governed / UPSTREAM / "2023-02").glob("*.csv")):
        assert f"COLUMN_MISSING: chunk 2023-02: 2023-02/{name} has no column source that the contract declares" in out


def test_a_byte_order_mark_changes_nothing(governed: Path, kfm: Runner) -> None:
    code, plain = process(kfm, "2023-02")
    rewrite(governed, "2023-02", lambda b: b"\xef\xbb\xbf" + b)
    code2, bom = process(kfm, "2023-02")
    assert code == code2 == 0
    assert plain.splitlines()[0] == bom.splitlines()[0] == "chunk 2023-02: 120 rows, 120 accepted, 0 quarantined"
    digest = re.compile(r"-> (sha256:\w+)")
    assert digest.findall(plain) == digest.findall(bom)


def test_a_null_partition_time_is_quarantined(governed: Path, kfm: Runner) -> None:
    ds = governed / "datasets" / SLUG / "dataset.yaml"
    ds.write_text(ds.read_text().replace("{name: event_time, type: timestamp, required: true,",
                                         "{name: event_time, type: timestamp,"))
    commit_all(governed, "event_time optional")

    def blank_first_time(b: bytes) -> bytes:
        lines = b.decode().splitlines()
        cells = lines[1].split(",")
        cells[1] = ""
        lines[1] = ",".join(cells)
        return ("\n".join(lines) + "\n").encode()

    rewrite(governed, "2023-02", blank_first_time)
    code, out = process(kfm, "2023-02")
    assert code == 0
    assert "quarantined 4 x SCHEMA_INVALID" in out  # one row per batch file, none silently dropped


def test_parse_errors_never_quote_the_row(governed: Path, kfm: Runner) -> None:
    extra = b"KS-SECRET-9,2023-02-27T00:00:00Z,Reno,hail,1,0,x,-98.123456,38.654321,EXTRA\n"
    rewrite(governed, "2023-02", lambda b: b + extra)
    code, out = process(kfm, "2023-02")
    assert code == 1
    assert "SOURCE_UNREADABLE" in out
    for f in (governed / "releases").rglob("*.json"):
        assert b"KS-SECRET-9" not in f.read_bytes() and b"98.123456" not in f.read_bytes()


def test_a_duplicate_header_is_a_finding_not_a_crash(governed: Path, kfm: Runner) -> None:
    rewrite(governed, "2023-02", lambda b: b.replace(b",source,", b",county,", 1))
    code, out = process(kfm, "2023-02")
    assert code == 1
    assert "SOURCE_UNREADABLE" in out


def test_validity_does_not_depend_on_the_rest_of_the_batch() -> None:
    from kfm_gitops.normalize import convert

    for values in (["0x10", "5"], ["0x10", "x"]):
        _, failed = convert(pa.array(values), "int64")
        assert bool(failed[0]) is True
    _, failed = convert(pa.array(["2023-03-05T10+01", "2023-03-05T10:00:00Z"]), "timestamp")
    assert failed.tolist() == [True, False]
    _, failed = convert(pa.array(["1.5", "1e400"]), "float64")
    assert failed.tolist() == [False, True]


def test_dates_start_at_local_midnight() -> None:
    from datetime import UTC, datetime

    from kfm_gitops.qa import window_mask

    table = pa.table({"d": pa.array([datetime(2023, 3, 1).date(), datetime(2023, 4, 1).date()], pa.date32())})
    start, end = datetime(2023, 3, 1, 6, tzinfo=UTC), datetime(2023, 4, 1, 5, tzinfo=UTC)  # March in Chicago
    mask = window_mask(table, "event_time", {"event_time": {"column": "d"}}, start, end, "America/Chicago")
    assert mask.tolist() == [False, True]


def test_an_obligation_kfm_cannot_apply_is_refused() -> None:
    from kfm_gitops.obligations import Obligations

    _, problems = Obligations.build([{"type": "jitter_points"}], ["a"], "geometry", ("a",))
    assert [p.code for p in problems] == ["OBLIGATION_INAPPLICABLE"]


def test_a_backfill_that_changes_nothing_makes_no_new_version(governed: Path, kfm: Runner) -> None:
    v1 = first_release(governed, kfm)
    rel = plan_over(governed, "same", "2023-02-01T00:00:00Z", "2023-03-01T00:00:00Z", v1)
    commit_all(governed, "a plan over February again")
    r = kfm("backfill", "run", rel, "--yes")
    assert r.code == 0, r.out
    assert f"note: the content equals the base version {v1}: no new version" in r.out
    assert sorted(p.name for p in (governed / "releases" / SLUG).iterdir() if p.name != "runs") == [v1]


def test_an_edited_receipt_is_never_reused(governed: Path, kfm: Runner) -> None:
    first_release(governed, kfm)
    runs = governed / "releases" / SLUG / "runs"
    march = next(p for p in runs.iterdir() if ".2023-03." in p.name) / "receipt.json"
    april = next(p for p in runs.iterdir() if ".2023-04." in p.name) / "receipt.json"
    april_partition = next(o for o in json.loads(april.read_text())["outputs"] if o["role"].startswith("partition:"))
    doc = json.loads(march.read_text())
    doc["outputs"].append({**april_partition, "role": "partition:2023-03"})  # March would serve April's rows
    march.write_text(json.dumps(doc))
    before = version_of(governed)
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1
    rel = march.relative_to(governed).as_posix()
    assert f"{rel}: EVIDENCE_ALTERED: {rel} is committed evidence and differs from HEAD" in r.err
    assert version_of(governed) == before
    march.unlink()  # deleting evidence is no better
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 1 and "EVIDENCE_ALTERED" in r.err
    git(governed, "checkout", "HEAD", "--", rel)
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0


def test_a_chunk_that_fails_says_which_and_why_without_quoting_data(governed: Path, kfm: Runner,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import kfm_gitops.backfill as bf

    def failing(contract: object, manifest: dict[str, object], chunk: Any, *args: object, **kwargs: object) -> None:
        if chunk.key == "2023-01":
            raise PermissionError(13, "Permission denied", "/srv/scratch/2023-01.parquet")
        raise ValueError("could not parse 'KS-1,Jane Doe,555-0100'")

    monkeypatch.setattr(bf, "process_chunk", failing)
    r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01", "--chunk", "2023-02")
    assert r.code == 1
    assert ("CHUNK_FAILED: chunk 2023-01: Permission denied: /srv/scratch/2023-01.parquet while processing"
            in r.out + r.err)
    assert "CHUNK_FAILED: chunk 2023-02: ValueError while processing" in r.out + r.err
    assert "Jane Doe" not in r.out + r.err
