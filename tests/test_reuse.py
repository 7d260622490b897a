"""What a re-run trusts, as a user meets it in a real repository: a reused chunk's artifacts are checked against the
store (junk appended to one runs the chunk again, or stops the roll-up naming it); a plan rolled up before and run
again after its upstream changed says that it reproduces its version, what changed and what to do; a redelivery of
an empty chunk is a plain note, and only bytes that change after delivery are a HASH_MISMATCH warning."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import SLUG, Runner, commit_all, two_versions, version_of
from kfm_gitops.example import FIRST_PLAN, UPSTREAM


def partition_object(root: Path, version: str, partition: str) -> tuple[str, Path]:
    manifest = json.loads((root / "releases" / SLUG / version / "promotion-manifest.json").read_text())
    digest = next(p["processed"] for p in manifest["partitions"] if p["partition"] == partition)
    return digest, root / ".kfm/objects/sha256" / digest[7:9] / digest[7:]


def append_junk(path: Path) -> None:
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"junk")


def test_a_reused_chunk_whose_artifact_was_tampered_runs_again_and_heals_the_store(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    v1 = version_of(governed)
    commit_all(governed, "first release")
    digest, path = partition_object(governed, v1, "2023-02")
    append_junk(path)
    assert kfm("raw", "verify").code == 0  # RAW cannot see it
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0, r.out + r.err
    assert (f"note: chunk 2023-02: its artifact {digest} (partition:2023-02) is corrupt in the store "
            f"{governed / '.kfm/objects'} (SIZE_MISMATCH): running the chunk again") in r.out
    assert re.search(r"^  2023-02\s+done \(120/120 rows", r.out, re.M)
    assert len(re.findall(r"^  2023-0[13456]\s+reused", r.out, re.M)) == 5
    assert version_of(governed) == v1  # the same bytes again, under the same name
    assert kfm("verify").code == 0  # and the store holds them again


def test_a_tampered_artifact_of_a_chunk_that_is_not_run_stops_the_roll_up_naming_it(governed: Path,
                                                                                     kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    commit_all(governed, "first release")
    digest, path = partition_object(governed, version_of(governed), "2023-04")
    data = bytearray(path.read_bytes())
    path.chmod(0o644)
    data[300] ^= 0x01  # the same size, other bytes
    path.write_bytes(bytes(data))
    for args in (("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01"), ("backfill", "rollup", FIRST_PLAN)):
        r = kfm(*args)
        assert r.code == 1, r.out
        line = next(line for line in r.out.splitlines() if "REUSE_CORRUPT" in line)
        assert line.startswith(f"releases/{SLUG}/runs/")
        assert line.endswith(
            f"REUSE_CORRUPT: chunk 2023-04 cannot be reused: its artifact {digest} (partition:2023-04) is corrupt in "
            f"the store {governed / '.kfm/objects'} (HASH_MISMATCH) (hint: `kfm backfill run {FIRST_PLAN} --chunk "
            "2023-04 --force` makes it again)")
    assert kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-04", "--force").code == 0


def test_a_plan_rolled_up_before_says_it_reproduces_its_version_and_that_upstream_changed(governed: Path,
                                                                                         kfm: Runner) -> None:
    v1, _, _ = two_versions(governed, kfm)  # March redelivered and backfilled by another plan since
    dry = kfm("backfill", "run", FIRST_PLAN, "--dry-run").out
    march = next(line for line in dry.splitlines() if line.startswith("  2023-03 "))
    assert re.search(r"-> reuse releases/\S+ \(upstream changed since: acquisition 2023-03\.[0-9a-f]{12} supersedes "
                     r"the one it used\)$", march), march
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0, r.out + r.err
    notes = [line for line in r.out.splitlines() if line.startswith(("note:", "next:"))]
    assert notes[1] == f"note: this plan reproduces its version {v1}, which it was rolled up into before"
    assert re.fullmatch(r"note: the upstream has changed since: chunk 2023-03 was made from acquisition "
                        r"2023-03\.[0-9a-f]{12}, which 2023-03\.[0-9a-f]{12} supersedes \(the acquisition digests "
                        r"differ: new: 2023-03/reports-2023-03-01\.csv, .*\)", notes[2]), notes[2]
    assert notes[3] == (f"next: to publish what changed, make a new plan for the window: `kfm plan new {SLUG} --window "
                        "2023-03-01T00:00:00Z/2023-04-01T00:00:00Z --chunking monthly --reason \"Upstream changed "
                        f"since {v1}\"` (this plan stays what it was)")
    assert version_of(governed) == v1


def test_a_redelivery_is_a_note_and_changed_delivered_bytes_are_a_warning(governed: Path, kfm: Runner) -> None:
    two_versions(governed, kfm)
    from kfm_gitops.example import REDELIVERY

    gap = kfm("backfill", "run", "plans/ks_storm_reports/backfill-20230801-a1b2c3.yml", "--yes")
    assert "HASH_MISMATCH" not in gap.out + gap.err
    first = sorted((governed / REDELIVERY / "2023-03").glob("*.csv"))[0]
    target = governed / UPSTREAM / "2023-03" / first.name
    target.write_bytes(target.read_bytes().replace(b"Sedgwick", b"Zedgwick"))
    commit_all(governed, "upstream rewrote a delivered file")
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-03")
    assert r.code == 0
    assert re.search(r"warning: HASH_MISMATCH: upstream changed since acquisition 2023-03\.[0-9a-f]{12} \(changed: "
                     rf"2023-03/{first.name}\)", r.out), r.out
    assert "note: upstream delivered" not in r.out
