"""`kfm plan new` and `kfm plan chunks`: a contributor's first two commands."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Runner, git
from kfm_gitops.plan import set_expected_version


def test_plan_new_writes_a_valid_commented_plan(governed: Path, kfm: Runner) -> None:
    r = kfm("plan", "new", "ks_storm_reports", "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z",
            "--chunking", "monthly", "--reason", "Gap fill after upstream outage", "--reviewer", "steward-kim",
            "--requested-by", "ops-ana")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("wrote plans/ks_storm_reports/backfill-")
    rel = lines[0].removeprefix("wrote ")
    assert lines[1] == f"next: edit it, then `kfm plan validate {rel}` and `kfm plan chunks {rel}`"
    text = (governed / rel).read_text()
    assert text.startswith("# Backfill plan for ks_storm_reports.")
    assert 'expected_dataset_version_id: "<to-be-computed>"' in text
    assert "timezone: UTC" in text and "time_axis: event_time" in text
    assert '"type": "require_attribution"' in text  # the contract's obligations are carried over
    assert kfm("plan", "validate", rel).out == "1 plan valid\n"
    name = Path(rel).name
    assert len(name) == len("backfill-YYYYMMDD-abcdef.yml")


def test_plan_new_without_reviewers_says_what_to_do(governed: Path, kfm: Runner) -> None:
    r = kfm("plan", "new", "ks_storm_reports", "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z", "--chunking",
            "monthly", "--reason", "Gap fill")
    assert r.code == 0
    assert "to do before review:" in r.out
    assert "SCHEMA_VALUE: reviewers is empty" in r.out


def test_plan_new_refuses_bad_input(governed: Path, kfm: Runner) -> None:
    r = kfm("plan", "new", "ks_storm_reports", "--window", "2023-03-01T00:00:00", "--chunking", "monthly",
            "--reason", "x")
    assert r.code == 2
    assert "is not START/END" in r.err
    r = kfm("plan", "new", "ks_storm_reports", "--window", "2023-03-01T00:00:00/2023-04-01T00:00:00Z",
            "--chunking", "monthly", "--reason", "x")
    assert r.code == 2
    assert "has no UTC offset" in r.err
    r = kfm("plan", "new", "no_such_dataset", "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z", "--chunking",
            "monthly", "--reason", "x")
    assert r.code == 1
    assert "DATASET_NOT_FOUND" in r.err
    r = kfm("plan", "new", "../etc", "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z", "--chunking", "monthly",
            "--reason", "x")
    assert r.code == 1
    assert "is not a slug" in r.err
    assert sorted(p.name for p in (governed / "plans/ks_storm_reports").iterdir()) == [
        "backfill-20230705-0c1d2e.yml"]


def test_plan_new_defaults_to_the_committer(governed: Path, kfm: Runner) -> None:
    r = kfm("plan", "new", "ks_storm_reports", "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z", "--chunking",
            "quarterly", "--reason", "Reprocess Q1", "--reviewer", "steward-kim")
    rel = r.out.splitlines()[0].removeprefix("wrote ")
    text = (governed / rel).read_text()
    assert 'requested_by: "steward@example.org"' in text
    assert "mode: quarterly" in text


def test_expected_version_is_written_in_round_trip(governed: Path, kfm: Runner) -> None:
    rel = "plans/ks_storm_reports/backfill-20230705-0c1d2e.yml"
    before = (governed / rel).read_text()
    set_expected_version(governed / rel, "2023-06.0123abcd.4567ef01")
    after = (governed / rel).read_text()
    assert after == before.replace('"<to-be-computed>"', '"2023-06.0123abcd.4567ef01"')
    assert kfm("plan", "validate", rel).out == "1 plan valid\n"
    assert git(governed, "diff", "--numstat").split()[:2] == ["1", "1"]


def test_plan_chunks_text_and_json(governed: Path, kfm: Runner) -> None:
    rel = "plans/ks_storm_reports/backfill-20230705-0c1d2e.yml"
    r = kfm("plan", "chunks", rel)
    assert r.code == 0
    assert r.out.splitlines()[:3] == [
        f"{rel}: 6 monthly chunks of ks_storm_reports in UTC",
        "  2023-01      [2023-01-01T00:00:00Z, 2023-02-01T00:00:00Z)",
        "  2023-02      [2023-02-01T00:00:00Z, 2023-03-01T00:00:00Z)",
    ]
    doc = json.loads(kfm("plan", "chunks", rel, "--format", "json").out)
    assert doc["mode"] == "monthly" and doc["timezone"] == "UTC"
    assert [c["key"] for c in doc["chunks"]] == ["2023-01", "2023-02", "2023-03", "2023-04", "2023-05", "2023-06"]
    assert doc["chunks"][-1] == {"key": "2023-06", "mode": "monthly", "start": "2023-06-01T00:00:00Z",
                                 "end": "2023-07-01T00:00:00Z"}


def test_plan_chunks_of_an_invalid_plan_fails(governed: Path, kfm: Runner) -> None:
    bad = governed / "plans/ks_storm_reports/bad.yml"
    bad.write_text("dataset_slug: ks_storm_reports\n")
    r = kfm("plan", "chunks", "plans/ks_storm_reports/bad.yml")
    assert r.code == 1
    assert r.out == ""
    assert "SCHEMA_MISSING_KEY" in r.err


def test_chunks_in_a_dst_timezone(tmp_path: Path, kfm: Runner) -> None:
    from conftest import EXAMPLES

    r = kfm("plan", "chunks", "--standalone", str(EXAMPLES / "valid" / "full.yml"))
    assert r.code == 0, r.err
    assert r.out.splitlines()[1:] == [
        "  2023-W10     [2023-03-06T06:00:00Z, 2023-03-13T05:00:00Z)",  # 167 hours: DST starts on the 12th
        "  2023-W11     [2023-03-13T05:00:00Z, 2023-03-20T05:00:00Z)",
    ]


def test_expected_version_changes_that_value_and_not_one_other_byte(governed: Path) -> None:
    import os
    import stat

    rel = "plans/ks_storm_reports/backfill-20230705-0c1d2e.yml"
    lines = (governed / rel).read_text().splitlines()
    # a hand-edited plan: document marker, flush-left lists, odd spacing, comments everywhere, CRLF, a BOM
    text = "---\r\n" + "\r\n".join(lines).replace("reviewers:\n  - ", "reviewers:\n- ") \
        .replace("max_parallelism: 2", "max_parallelism:    2   # two at once") + "\r\n"
    path = governed / rel
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    os.chmod(path, 0o444)
    set_expected_version(path, "2023-06.0123abcd.4567ef01")
    assert path.read_bytes() == b"\xef\xbb\xbf" + text.replace(
        'expected_dataset_version_id: "<to-be-computed>"',
        'expected_dataset_version_id: "2023-06.0123abcd.4567ef01"').encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    set_expected_version(path, "2023-06.0123abcd.89abcdef")  # and again, over an id
    assert b'expected_dataset_version_id: "2023-06.0123abcd.89abcdef"\r\n' in path.read_bytes()
