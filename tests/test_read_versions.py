"""Reading a version as a user does, in a real repository: `kfm versions` lists them with their lineage, rows and
whether the release branch publishes them, `kfm show` tells one in words (partitions with rows and time span, the
quarantine by reason, the gaps), `kfm export` copies its partitions out as real GeoParquet files that
`sha256sum -c` and a GeoParquet reader accept; a fresh clone is told what to pull."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import SLUG, Runner, commit_all, git, two_versions
from kfm_gitops.example import FIRST_PLAN


def publish(root: Path, version: str) -> None:
    """What a merged release PR leaves: releases/<slug>/published.yaml on the release branch."""
    from kfm_gitops import _git

    repo = _git.discover(root)
    assert repo is not None
    _git.commit_files(repo, "release", {f"releases/{SLUG}/published.yaml": f"dataset_version_id: {version}\n".encode()},
                      "publish")


def test_versions_lists_each_after_its_base_with_rows_label_plan_and_what_is_published(
        governed: Path, kfm: Runner) -> None:
    v1, v2, rel = two_versions(governed, kfm)
    r = kfm("versions", SLUG)
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        f"{SLUG}: 2 version(s); nothing is published on release yet",
        "  version                    base                       partitions             rows  label   plan",
        f"  {v1}  (first release)            5: 2023-01 .. 2023-06   600  public  {FIRST_PLAN}",
        f"  {v2}  {v1}  6: 2023-01 .. 2023-06   720  public  {rel}"]
    publish(governed, v1)
    r = kfm("versions", SLUG)
    assert r.out.splitlines()[0] == f"{SLUG}: 2 version(s); release publishes {v1}"
    assert r.out.splitlines()[2].endswith(f"{FIRST_PLAN}  published")
    doc = json.loads(kfm("versions", SLUG, "--format", "json").out)
    assert doc["published"] == v1
    assert [(v["version"], v["base"], v["rows"], v["published"]) for v in doc["versions"]] == [
        (v1, None, 600, True), (v2, v1, 720, False)]
    r = kfm("versions", "no_such_dataset")
    assert r.code == 1 and "no dataset no_such_dataset" in r.err


def test_show_tells_a_version_in_words(governed: Path, kfm: Runner) -> None:
    v1, v2, rel = two_versions(governed, kfm)
    r = kfm("show", v2)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[4].startswith(f"  spec_hash   sha256:{v2.split('.')[1]}")
    assert lines[:6] == [
        f"version {v2} of {SLUG}",
        f"  folder      releases/{SLUG}/{v2}/",
        f"  base        {v1}: 5 partition(s) carried, 1 new (2023-03)",
        f"  plan        {rel}",
        f"  spec_hash   {kfm('dataset', 'hash', SLUG).out.strip()}",
        "  label       public; obligations: require_attribution (text=Storm reports: Kansas Frontier Matrix example "
        "upstream, CC BY 4.0)"]
    assert lines[6] == "  published   no"
    assert lines[7].startswith("  partitions  6, 720 rows, 2023-01-")
    march = next(line for line in lines if line.startswith("    2023-03 "))
    assert march.split()[1:3] == ["120", "rows"]
    assert march.split()[3].startswith("2023-03-") and march.split()[5].startswith("2023-03-")
    assert re.search(r"  new here \(run [0-9]{8}T[0-9]{6}Z\.2023-03\.[0-9a-f]{8}\)$", march), march
    january = next(line for line in lines if line.startswith("    2023-01 "))
    assert f"  from {v1} (run " in january
    assert lines[-2] == ("  quarantine  9 row(s): 1 DUPLICATE_ID, 2 GEOMETRY_INVALID, 1 GEOMETRY_OVERPRECISE, "
                         "1 OUT_OF_EXTENT, 1 OUT_OF_WINDOW, 3 SCHEMA_INVALID (ids and reasons in each run's "
                         "quarantine.json)")
    assert lines[-1] == "  gaps        none"
    first = kfm("show", f"releases/{SLUG}/{v1}").out.splitlines()  # a version folder names it too
    assert first[2] == "  base        none: a first release"
    assert first[-2:] == ["  quarantine  0 row(s)", "  gaps        2023-03 (no data)"]
    doc = json.loads(kfm("show", v1, "--format", "json").out)
    assert (doc["rows"], doc["gaps"], [p["partition"] for p in doc["partitions"]]) == (
        600, ["2023-03"], ["2023-01", "2023-02", "2023-04", "2023-05", "2023-06"])
    r = kfm("show", "2023-06.00000000.00000000")
    assert r.code == 1
    assert "no version 2023-06.00000000.00000000 under releases/" in r.err
    assert "`kfm versions SLUG` lists a dataset's versions" in r.err


def test_export_gives_real_geoparquet_files_that_sha256sum_and_readers_accept(governed: Path, tmp_path: Path,
                                                                             kfm: Runner) -> None:
    import geopandas

    _, v2, _ = two_versions(governed, kfm)
    out = tmp_path / "export"
    r = kfm("export", v2, str(out))
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == f"exported {v2} into {out}: 6 partition(s), each verified while copied"
    assert r.out.splitlines()[-1] == f"check it: cd {out} && sha256sum -c SHA256SUMS"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["SHA256SUMS", "checksums.json"] + [f"processed/{SLUG}/2023-0{m}.parquet" for m in range(1, 7)]
    assert (out / "checksums.json").read_bytes() == (governed / "releases" / SLUG / v2 / "checksums.json").read_bytes()
    done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.count(": OK") == 6, done.stdout + done.stderr
    frame = geopandas.read_parquet(out / f"processed/{SLUG}/2023-03.parquet")
    assert len(frame) == 120 and frame.geometry.geom_type.unique().tolist() == ["Point"]
    assert str(frame.crs) == "OGC:CRS84"
    again = kfm("export", v2, str(out))  # the same export again keeps what is there
    assert again.code == 0 and again.out.count("(already there)") == 8


def test_export_never_overwrites_and_never_leaves_a_corrupt_copy(governed: Path, tmp_path: Path, kfm: Runner) -> None:
    _, v2, rel = two_versions(governed, kfm)
    out = tmp_path / "export"
    (out / "processed" / SLUG).mkdir(parents=True)
    (out / "processed" / SLUG / "2023-02.parquet").write_bytes(b"mine")
    r = kfm("export", v2, str(out))
    assert r.code == 1
    assert f"kfm: {out}/processed/{SLUG}/2023-02.parquet exists with other bytes" in r.err
    assert (out / "processed" / SLUG / "2023-02.parquet").read_bytes() == b"mine"
    manifest = json.loads((governed / "releases" / SLUG / v2 / "promotion-manifest.json").read_text())
    digest = next(p["processed"] for p in manifest["partitions"] if p["partition"] == "2023-03")
    obj = governed / ".kfm/objects/sha256" / digest[7:9] / digest[7:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes() + b"junk")
    fresh = tmp_path / "fresh"
    r = kfm("export", v2, str(fresh))
    assert r.code == 1
    assert f"kfm: partition 2023-03: the stored object {digest} is corrupt" in r.err
    assert f"hint: re-run the chunk that made it: `kfm backfill run {rel} --chunk 2023-03 --force`" in r.err
    assert not (fresh / "processed" / SLUG / "2023-03.parquet").exists()
    assert not [p for p in fresh.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


@pytest.mark.parametrize("shared", [False, True])
def test_a_fresh_clone_is_told_what_to_pull(governed: Path, tmp_path: Path, kfm: Runner,
                                            monkeypatch: pytest.MonkeyPatch, shared: bool) -> None:
    _, v2, _ = two_versions(governed, kfm)
    team = tmp_path / "team-store"
    assert kfm("store", "push", "--to", str(team)).code == 0
    if shared:
        config = governed / "kfm.yaml"
        config.write_text(config.read_text().replace("store: .kfm/objects", f"store: {{shared: {team}}}"))
        commit_all(governed, "name the team's store")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(governed), str(clone))
    monkeypatch.chdir(clone)
    r = kfm("versions", SLUG)
    assert r.code == 0
    assert r.out.splitlines()[2].split()[-3:] == ["?", "public", FIRST_PLAN]
    pull = f"`kfm store pull --from {team}`" if shared else "`kfm store pull --from <its URL>`"
    assert r.out.splitlines()[-1].startswith(f"rows ?: an artifact is not readable in the store {clone}/.kfm/objects; "
                                             "this store holds nothing yet")
    assert pull in r.out.splitlines()[-1]
    show = kfm("show", v2).out
    assert "        ? rows  not in the store" in show
    assert show.splitlines()[-1] == r.out.splitlines()[-1]  # the same line says what to pull
    r = kfm("export", v2, str(tmp_path / "export"))
    assert r.code == 1
    assert r.err.splitlines()[0].startswith(f"kfm: 6 partition(s) of {v2} are not in the store {clone}/.kfm/objects "
                                            "(the first: 2023-01 sha256:")
    assert pull in r.err and not (tmp_path / "export").exists()  # said before anything is written
    assert kfm("store", "pull", "--from", str(team)).code == 0
    assert "720 rows" in kfm("show", v2).out
