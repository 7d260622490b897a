"""`kfm verify` as a user meets it: with no argument on the example it checks the RAW and the PROCESSED zones step
by step; a tampered PROCESSED artifact is named with a hint that fits the zone (re-run its chunk, or pull it), never
"acquire again"; an edited checksums.json is caught; missing objects are one finding with what to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SLUG, Runner, commit_all, git, two_versions
from kfm_gitops.example import FIRST_PLAN


def objects(root: Path) -> Path:
    return root / ".kfm/objects"


def artifact(root: Path, version: str, partition: str) -> tuple[str, Path]:
    manifest = json.loads((root / "releases" / SLUG / version / "promotion-manifest.json").read_text())
    digest = next(p["processed"] for p in manifest["partitions"] if p["partition"] == partition)
    return digest, objects(root) / "sha256" / digest[7:9] / digest[7:]


def test_verify_with_no_slug_checks_raw_and_processed(governed: Path, kfm: Runner) -> None:
    two_versions(governed, kfm)
    r = kfm("verify")
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines() == [
        f"7 acquisition manifests valid (25 object(s) re-hashed in {objects(governed)})",
        f"2 versions valid (6 object(s) re-hashed in {objects(governed)})", "no published dataset to check yet",
        "no projection to check yet"]
    processed = kfm("verify", SLUG, "--processed").out
    assert processed == f"2 versions valid (6 object(s) re-hashed in {objects(governed)})\n"
    doc = json.loads(kfm("verify", "--format", "json").out)
    assert doc["ok"] is True and len(doc["checked"]) == 9 and doc["findings"] == []
    r = kfm("verify", "nope")
    assert r.code == 1 and "no dataset nope" in r.err


def test_a_tampered_processed_artifact_is_named_with_a_hint_for_its_zone(governed: Path, kfm: Runner) -> None:
    _, v2, rel = two_versions(governed, kfm)
    digest, path = artifact(governed, v2, "2023-03")
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"junk appended")
    assert kfm("raw", "verify").code == 0  # RAW is intact: raw verify alone cannot see it
    assert kfm("verify", "--raw").code == 0
    r = kfm("verify")
    assert r.code == 1
    lines = r.out.splitlines()
    assert lines[0].startswith("7 acquisition manifests valid")
    assert lines[1] == (
        f"releases/{SLUG}/{v2}/checksums.json: SIZE_MISMATCH: partition 2023-03 ({digest}) is corrupt in the store "
        f"{objects(governed)} (hint: re-run the chunk that made it: `kfm backfill run {rel} --chunk 2023-03 "
        "--force`, or pull it from the team's store (`kfm store pull --from <its URL>`))")
    assert "acquire" not in lines[1]
    assert lines[2] == f"2 versions checked, 1 error (6 object(s) re-hashed in {objects(governed)})"
    # The hint's own command makes the artifact again, and heals the store.
    assert kfm("backfill", "run", rel, "--chunk", "2023-03", "--force", "--yes").code == 0
    assert kfm("verify").code == 0


def test_a_flipped_bit_is_a_hash_mismatch_and_an_edited_checksums_file_is_caught(governed: Path, kfm: Runner) -> None:
    v1, v2, _ = two_versions(governed, kfm)
    digest, path = artifact(governed, v1, "2023-01")
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01
    path.write_bytes(bytes(data))
    checksums = governed / "releases" / SLUG / v2 / "checksums.json"
    checksums.write_text(checksums.read_text().replace("2023-06.parquet", "2023-07.parquet"))
    r = kfm("verify", "--processed")
    assert r.code == 1
    lines = r.out.splitlines()
    assert lines[0] == (f"releases/{SLUG}/{v2}/checksums.json: CHECKSUMS_ALTERED: its digest is not the manifest's "
                        "checksums_digest (hint: version folders are written by the roll-up and never edited: "
                        "restore it from git)")
    assert lines[1].startswith(f"releases/{SLUG}/{v1}/checksums.json: HASH_MISMATCH: partition 2023-01 ({digest}) "
                               "is corrupt")  # named once, although both versions hold it
    assert lines[2] == f"2 versions checked, 2 errors (6 object(s) re-hashed in {objects(governed)})"


def test_before_the_first_version_verify_checks_what_there_is(governed: Path, kfm: Runner) -> None:
    r = kfm("verify")  # nothing acquired yet: nothing to check is a failure, and says what makes something
    assert (r.code, r.out.splitlines()) == (1, [
        "no acquisition manifest to check yet", "no version to check yet", "no published dataset to check yet",
        "no projection to check yet",
        "nothing checked, which is a failure: a backfill run acquires data and makes versions (`kfm backfill run "
        "PLAN`)"])
    assert kfm("acquire", FIRST_PLAN).code == 0
    r = kfm("verify")
    assert r.code == 0, r.out
    assert r.out.splitlines() == [
        f"6 acquisition manifests valid (21 object(s) re-hashed in {objects(governed)})", "no version to check yet",
        "no published dataset to check yet", "no projection to check yet"]
    r = kfm("verify", "--processed")  # asked for, and nothing to check: a failure
    assert (r.code, r.out) == (1, "no version checked: nothing to validate is a failure\n")


def test_missing_objects_in_a_clone_are_one_finding_with_the_team_store_to_pull_from(
        governed: Path, tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    two_versions(governed, kfm)
    team = tmp_path / "team"
    assert kfm("store", "push", "--to", str(team)).code == 0
    config = governed / "kfm.yaml"
    config.write_text(config.read_text().replace("store: .kfm/objects",
                                                 f"store:\n  shared: {team}\n  cache: .kfm/objects"))
    commit_all(governed, "the team's store")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(governed), str(clone))
    monkeypatch.chdir(clone)
    r = kfm("verify")
    assert r.code == 1
    lines = r.out.splitlines()
    hint = (f"(hint: this store holds nothing yet: `kfm store pull --from {team}` copies them from the team's store "
            "(kfm.yaml's store.shared))")
    assert lines[0].startswith("data/raw/ks_storm_reports/2023-01.")
    assert ": OBJECT_MISSING: 25 object(s) named by 7 acquisition manifests are not in the store " in lines[0]
    assert lines[0].endswith(hint)
    assert lines[1] == (f"7 acquisition manifests checked, 1 error (25 object(s) named: 0 re-hashed, 25 missing from "
                        f"{objects(clone)})")
    assert ": OBJECT_MISSING: 6 object(s) named by 2 versions are not in the store " in lines[2]
    assert lines[2].endswith(hint)
    assert lines[4:] == ["no published dataset to check yet", "no projection to check yet"]
    assert kfm("store", "pull", "--from", str(team)).code == 0
    assert kfm("verify").code == 0
