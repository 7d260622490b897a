"""What a user gets wrong on the command line: each is a clear message and an exit code from the contract, never an
internal error; and the outputs a user reads say what happened."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import Runner, git
from kfm_gitops.example import FIRST_PLAN

SLUG = "ks_storm_reports"


def test_a_store_backend_that_is_not_installed_is_a_finding(governed: Path, kfm: Runner) -> None:
    import importlib.util

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here")
    r = kfm("store", "push", "--to", "s3://bucket/kfm")
    assert r.code == 1
    assert r.err == ("kfm: the store s3://bucket/kfm needs fsspec's 's3' backend, which is not installed\n"
                     "  hint: pip install 'kfm-gitops[s3]'\n")


def test_an_unknown_store_protocol_is_a_finding(governed: Path, kfm: Runner) -> None:
    r = kfm("raw", "verify", "--store", "nosuchproto://x/y")
    assert r.code == 1
    assert r.err.startswith("kfm: the store nosuchproto://x/y: ")
    assert "internal error" not in r.err


def test_an_error_of_the_machine_is_exit_1_not_an_internal_error(governed: Path, kfm: Runner,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import kfm_gitops.acquire

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(kfm_gitops.acquire, "verify_raw", unreachable)
    r = kfm("raw", "verify")
    assert r.code == 1
    assert r.err.startswith("kfm: Connection refused\n  hint: check the path, its permissions")
    assert "Traceback" not in r.err


def test_init_and_quickstart_on_a_file_are_refused(tmp_path: Path, kfm: Runner) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    r = kfm("init", str(afile))
    assert r.code == 1
    assert r.err == f"kfm: {afile} exists and is not a folder\n  hint: name a new or existing folder\n"
    r = kfm("quickstart", str(afile))
    assert r.code == 1
    assert "internal error" not in r.err and str(afile) in r.err
    assert afile.read_text() == "keep me\n"


def test_store_commands_name_what_does_not_exist(governed: Path, kfm: Runner, tmp_path: Path) -> None:
    r = kfm("store", "push", "nosuch", "--to", str(tmp_path / "shared"))
    assert r.code == 1
    assert r.err.startswith("kfm: nosuch is neither a dataset slug nor a version folder\n"
                            f"  hint: datasets here: {SLUG};")
    assert not (tmp_path / "shared").exists()
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    r = kfm("store", "pull", "--from", str(tmp_path / "nonexistent"))
    assert r.code == 1
    assert r.err.startswith(f"kfm: there is no store at {tmp_path / 'nonexistent'}\n")


def test_raw_verify_names_an_unknown_dataset_and_counts_missing_objects(governed: Path, kfm: Runner,
                                                                        tmp_path: Path) -> None:
    r = kfm("raw", "verify", "nosuch")
    assert r.code == 1
    assert r.err == f"kfm: no dataset nosuch in {governed}/datasets\n  hint: datasets here: {SLUG}\n"
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    r = kfm("raw", "verify", "--store", str(tmp_path / "empty"))
    assert r.code == 1
    # four CSV batches and the terms snapshot, each named once however many manifests name it
    assert r.out.rstrip().endswith(f"(5 object(s) named: 0 re-hashed, 5 missing from {tmp_path / 'empty'})")


def test_a_symlinked_manifest_is_refused(governed: Path, kfm: Runner, tmp_path: Path) -> None:
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    (manifest,) = (governed / "data" / "raw" / SLUG).glob("2023-01.*.json")
    target = tmp_path / "elsewhere.json"
    target.write_bytes(manifest.read_bytes())
    manifest.unlink()
    manifest.symlink_to(target)
    r = kfm("raw", "verify")
    assert r.code == 1
    assert f"{manifest.relative_to(governed)}: MANIFEST_INVALID: is a symbolic link" in r.out


def test_an_unknown_chunk_stops_before_anything_is_said_or_written(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "run", FIRST_PLAN, "--chunk", "2023-99", "--yes")
    assert r.code == 2
    assert r.out == ""
    assert r.err.startswith("kfm: no chunk 2023-99 in this plan\n")
    assert not (governed / "releases" / SLUG / "runs").exists()


def test_a_chunk_run_says_which_chunks_it_runs(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "run", FIRST_PLAN, "--chunk", "2023-02", "--yes")
    assert r.code == 0, r.err
    assert r.out.startswith(f"backfill {SLUG}: chunk(s) 2023-02 of 6, up to ")


def test_dry_run_prints_json_when_asked(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "run", FIRST_PLAN, "--dry-run", "--format", "json")
    assert r.code == 0
    doc = json.loads(r.out)
    assert doc["plan"] == FIRST_PLAN
    assert [c["chunk"] for c in doc["chunks"]] == [f"2023-0{m}" for m in range(1, 7)]
    assert doc["chunks"][0]["partitions"] == ["2023-01"] and doc["chunks"][0]["reuse"] is None
    assert not (governed / "releases" / SLUG / "runs").exists()


def test_dataset_validate_takes_the_datasets_folder(governed: Path, kfm: Runner) -> None:
    r = kfm("dataset", "validate", "datasets")
    assert (r.code, r.out) == (0, "2 contract files valid\n")
    (governed / "datasets" / SLUG / "pipeline.yaml").write_text("connector: {}\n")
    r = kfm("dataset", "validate", "datasets/")
    assert r.code == 1
    assert f"datasets/{SLUG}/pipeline.yaml:" in r.out


def test_a_new_plan_builds_on_the_newest_version_when_nothing_is_published(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    (version,) = [p.name for p in (governed / "releases" / SLUG).iterdir() if p.name not in ("runs", ".gitkeep")]
    git(governed, "add", "-A")
    git(governed, "commit", "-qm", "evidence")
    r = kfm("plan", "new", SLUG, "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z", "--chunking", "monthly",
            "--reason", "gap fill", "--reviewer", "steward-kim")
    assert r.code == 0, r.err
    assert f"note: nothing is published on release yet: the plan builds on {version}" in r.out
    assert "PLAN_PRIOR_VERSION" not in r.out
    (path,) = [p for p in (governed / "plans" / SLUG).glob("backfill-*.yml") if p.name != os.path.basename(FIRST_PLAN)]
    assert f'prior_dataset_version_id: "{version}"' in path.read_text()
    # the first-release plan that made the version is not told it drops that version's partitions
    r = kfm("plan", "validate", FIRST_PLAN)
    assert (r.code, r.out) == (0, "1 plan valid\n")


def test_a_slug_is_never_a_path(governed: Path, kfm: Runner, tmp_path: Path) -> None:
    outside = governed.parent / "etc"
    outside.mkdir()
    for name in ("dataset.yaml", "pipeline.yaml"):
        (outside / name).write_bytes((governed / "datasets" / SLUG / name).read_bytes())
    r = kfm("dataset", "hash", "../../etc")  # datasets/../../etc is the folder made above
    assert r.code == 1
    assert "DATASET_NOT_FOUND: '../../etc' is not a slug" in r.err
    assert "sha256:" not in r.out


def test_a_manifest_that_is_not_json_is_located(governed: Path, kfm: Runner) -> None:
    assert kfm("acquire", FIRST_PLAN, "--chunk", "2023-01").code == 0
    (manifest,) = (governed / "data" / "raw" / SLUG).glob("2023-01.*.json")
    manifest.write_text('{\n  "acquisition_id": oops\n}\n')
    r = kfm("raw", "verify")
    assert r.code == 1
    assert f"{manifest.relative_to(governed)}:2:21: MANIFEST_INVALID: not JSON: Expecting value" in r.out


def test_credentials_never_reach_evidence(governed: Path, kfm: Runner) -> None:
    from kfm_gitops._urls import redact

    assert redact("https://u:pw@h.example/x.csv?a=1&api_key=s3cr3t#token=t0k") == \
        "https://***@h.example/x.csv?a=1&api_key=***#token=***"
    pipeline = governed / "datasets" / SLUG / "pipeline.yaml"
    text = pipeline.read_text()
    start = text.index("connector:")
    end = text.index("\n", text.index("terms:", start))
    pipeline.write_text(text[:start] + 'connector:\n  type: http\n  params:\n'
                        '    url: "https://user:hunter2@upstream.example/{year}-{month}.csv"\n'
                        "    timeout: true\n" + text[end + 1:])
    r = kfm("dataset", "validate", SLUG)  # the hook refuses it before anything is committed
    assert r.code == 1
    assert "carries credentials" in r.out and "hunter2" not in r.out
    assert "timeout must be a positive number of seconds, not True" in r.out
    plan = governed / FIRST_PLAN
    plan.write_text(plan.read_text().replace('upstream_terms_snapshot: "upstream/ks_storm_reports/TERMS.txt"',
                                             "upstream_terms_snapshot: https://up.example/terms?token=hunter2"))
    r = kfm("plan", "validate", "--standalone", FIRST_PLAN)
    assert r.code == 1
    assert "PLAN_TERMS_URL: the url's query has token" in r.out and "hunter2" not in r.out


def test_a_command_that_stops_early_still_answers_in_its_format(governed: Path, kfm: Runner) -> None:
    r = kfm("backfill", "run", "plans/nosuch.yml", "--format", "json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["ok"] is False
    assert [(f["code"], f["path"]) for f in doc["findings"]] == [("FILE_NOT_FOUND", "plans/nosuch.yml")]
    r = kfm("raw", "verify", "nosuch", "--format=github")
    assert r.code == 1
    assert r.out == (f"::error title=KFM_ERROR::no dataset nosuch in {governed}/datasets "
                     f"(hint: datasets here: {SLUG})\n")
    r = kfm("raw", "verify", "nosuch")  # text: nothing on stdout, the message on stderr
    assert (r.code, r.out) == (1, "")


def test_a_plan_that_changes_the_label_must_cover_the_base(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    (version,) = [p.name for p in (governed / "releases" / SLUG).iterdir() if p.name not in ("runs", ".gitkeep")]
    git(governed, "add", "-A")
    git(governed, "commit", "-qm", "first release")
    text = (governed / FIRST_PLAN).read_text()
    tightened = text.replace("policy_label: public", "policy_label: public_generalized").replace(
        "  obligations:\n", '  obligations:\n    - {"type": "generalize_geometry", "params": {"method": '
        '"round_1_decimals"}}\n').replace('prior_dataset_version_id: ""', f'prior_dataset_version_id: "{version}"')
    tightened = tightened.replace(text[text.index("expected_dataset_version_id"):].split("\n", 1)[0],
                                  'expected_dataset_version_id: "<to-be-computed>"')
    narrow = tightened.replace('end: "2023-07-01T00:00:00Z"', 'end: "2023-02-01T00:00:00Z"')
    (governed / "plans" / SLUG / "backfill-20230801-aaaaaa.yml").write_text(narrow)
    r = kfm("plan", "validate", f"plans/{SLUG}/backfill-20230801-aaaaaa.yml")
    assert r.code == 1
    assert (f"PLAN_BASE_POLICY: the base version {version} was made under label 'public' and its obligations; this "
            "plan's label or obligations differ, so its partitions 2023-02, 2023-04, 2023-05, 2023-06 cannot be "
            "carried") in r.out, r.out
    # over the whole window the tightened plan is valid, runs, and a plan made after it inherits its label
    (governed / "plans" / SLUG / "backfill-20230801-aaaaaa.yml").write_text(tightened)
    assert kfm("plan", "validate", f"plans/{SLUG}/backfill-20230801-aaaaaa.yml").code == 0
    git(governed, "add", "-A")
    git(governed, "commit", "-qm", "tightened plan")
    r = kfm("backfill", "run", f"plans/{SLUG}/backfill-20230801-aaaaaa.yml", "--yes")
    assert r.code == 0, r.out + r.err
    git(governed, "add", "-A")
    git(governed, "commit", "-qm", "tightened version")
    before = set((governed / "plans" / SLUG).glob("*.yml"))
    r = kfm("plan", "new", SLUG, "--window", "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z", "--chunking", "monthly",
            "--reason", "gap fill", "--reviewer", "steward-kim")
    assert r.code == 0, r.err
    assert "label 'public_generalized' and obligations are the base version's" in r.out
    (new,) = set((governed / "plans" / SLUG).glob("*.yml")) - before
    assert "policy_label: public_generalized" in new.read_text()
    assert '- {"type": "generalize_geometry", "params": {"method": "round_1_decimals"}}' in new.read_text()
    assert kfm("plan", "validate", str(new.relative_to(governed))).out.endswith("1 plan valid\n")
