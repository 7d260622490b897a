"""Version folders: the layout under releases/, the one reader and writer, the one-label rule and the lineage
(what each version builds on, the newest, what the release branch publishes), on real files and real repositories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Runner, git
from kfm_gitops.config import Config, load_config
from kfm_gitops.errors import FindingsError, KfmError
from kfm_gitops.example import FIRST_PLAN
from kfm_gitops.versions import (
    FIRST_RELEASE,
    MANIFEST_FILE,
    Partition,
    VersionManifest,
    carried_under_other_policy,
    default_base,
    inherited_policy,
    is_version_dir,
    leaf_versions,
    ledger_file,
    list_versions,
    published_file,
    published_version,
    read_version,
    repo_path,
    repository_of,
    require_base,
    run_dir,
    run_id_of,
    runs_dir,
    version_dir,
    write_version,
)

SLUG = "ks_storm_reports"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
R1 = "sha256:" + "a" * 64
ROUND = {"type": "generalize_geometry", "params": {"method": "round_1_decimals"}}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    from kfm_gitops.repository import init

    root = tmp_path / "repo"
    init(root)
    loaded = load_config(root)
    assert isinstance(loaded, Config)
    return loaded


def manifest(vid: str, base: str = "", parts: tuple[str, ...] = ("2023-01",), label: str = "public",
             obligations: list[dict[str, Any]] | None = None, plan: str = "plans/x/a.yml") -> dict[str, Any]:
    return {"kfm_promotion_manifest_version": "v1", "dataset_slug": SLUG, "dataset_version_id": vid,
            "spec_hash": "sha256:" + "5" * 64, "base_dataset_version_id": base or None,
            "partitions": [{"partition": k, "processed": D1, "raw": [R1]} for k in parts], "artifacts": [],
            "catalogs": [], "qa": {"status": "pass", "report_digest": D2},
            "policy": {"policy_label": label, "decision_id": "kfm://policy_decision/0", "obligations":
                       obligations or []}, "checksums_digest": D2, "runs_digest": D2, "plan": plan}


def make(config: Config, vid: str, **kw: Any) -> VersionManifest:
    folder = write_version(config, SLUG, vid, {MANIFEST_FILE: json.dumps(manifest(vid, **kw)).encode()})
    version = read_version(folder)
    assert isinstance(version, VersionManifest)
    return version


def test_every_path_under_releases(config: Config) -> None:
    rel = {name: repo_path(config, path) for name, path in (
        ("version", version_dir(config, SLUG, "2023-06.69a8eb0e.7df9ce5a")), ("runs", runs_dir(config, SLUG)),
        ("run", run_dir(config, SLUG, "kfm://run/20230705T120000Z.2023-01.0a1b2c3d")),
        ("published", published_file(config, SLUG)), ("ledger", ledger_file(config, SLUG)))}
    assert rel == {"version": f"releases/{SLUG}/2023-06.69a8eb0e.7df9ce5a", "runs": f"releases/{SLUG}/runs",
                   "run": f"releases/{SLUG}/runs/20230705T120000Z.2023-01.0a1b2c3d",
                   "published": f"releases/{SLUG}/published.yaml", "ledger": f"releases/{SLUG}/ledger.jsonl"}
    assert run_id_of(run_dir(config, SLUG, "kfm://run/x.2023-01.0a1b2c3d")) == "kfm://run/x.2023-01.0a1b2c3d"
    assert repository_of(version_dir(config, SLUG, "v")) == config.root.resolve()


def test_the_reader_types_what_a_backfill_wrote(governed: Path, kfm: Runner) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    config = load_config(governed)
    assert isinstance(config, Config)
    (vid,) = list_versions(config, SLUG)
    version = read_version(version_dir(config, SLUG, vid))
    assert isinstance(version, VersionManifest)
    doc = json.loads((version.folder / MANIFEST_FILE).read_text())
    assert (version.slug, version.version_id, version.spec_hash, version.base, version.plan) == (
        SLUG, vid, doc["spec_hash"], FIRST_RELEASE, FIRST_PLAN)
    assert version.partition_keys == [p["partition"] for p in doc["partitions"]] != []
    assert version.partitions[0] == Partition(doc["partitions"][0]["partition"], doc["partitions"][0]["processed"],
                                              tuple(doc["partitions"][0]["raw"]))
    assert (version.policy_label, version.decision_id) == (doc["policy"]["policy_label"],
                                                           doc["policy"]["decision_id"])
    assert version.digests == {p["processed"] for p in doc["partitions"]} | {
        r for p in doc["partitions"] for r in p["raw"]}
    assert version.data == doc


@pytest.mark.parametrize(("text", "code", "where", "says"), [
    (None, "FILE_NOT_FOUND", "", "no such file"),
    ('{"dataset_slug": "x",\n  nope}', "VERSION_INVALID", ":2:3", "not JSON"),
    ("[]", "VERSION_INVALID", "", "policy is missing"),
    ("MISSING_PARTITIONS", "VERSION_INVALID", "", "partitions is missing"),
    ("LABEL_NUMBER", "VERSION_INVALID", "", "policy.policy_label has the wrong type"),
    ("RAW_NUMBERS", "VERSION_INVALID", "", "partitions[0].raw has the wrong type"),
])
def test_a_broken_version_folder_is_a_located_finding(config: Config, text: str | None, code: str, where: str,
                                                      says: str) -> None:
    folder = version_dir(config, SLUG, "v")
    folder.mkdir(parents=True)
    doc = manifest("v")
    if text == "MISSING_PARTITIONS":
        del doc["partitions"]
    elif text == "LABEL_NUMBER":
        doc["policy"]["policy_label"] = 3
    elif text == "RAW_NUMBERS":
        doc["partitions"][0]["raw"] = [1]
    if text is not None:
        (folder / MANIFEST_FILE).write_text(text if not text.isupper() else json.dumps(doc))
    found = read_version(folder)
    assert isinstance(found, list) and len(found) == 1
    assert (found[0].code, str(found[0].location).endswith(f"{MANIFEST_FILE}{where}")) == (code, True)
    assert says in found[0].message
    assert not is_version_dir(folder) if text is None else is_version_dir(folder)
    assert list_versions(config, SLUG) == ({} if text is None else {"v": found})


def test_a_base_must_exist_and_read(config: Config) -> None:
    with pytest.raises(KfmError, match=f"the base version v1 has no {MANIFEST_FILE}"):
        require_base(config, SLUG, "v1")
    version_dir(config, SLUG, "v1").mkdir(parents=True)
    (version_dir(config, SLUG, "v1") / MANIFEST_FILE).write_text("{}")
    with pytest.raises(FindingsError) as err:
        require_base(config, SLUG, "v1")
    assert [f.code for f in err.value.findings] == ["VERSION_INVALID"]
    assert require_base(config, SLUG, make(config, "v2").version_id).version_id == "v2"


def test_the_writer_lands_a_whole_folder_once(config: Config) -> None:
    leftover = config.root / ".kfm" / "staging" / "version-v1"
    leftover.mkdir(parents=True)
    (leftover / "stale.json").write_text("{}")  # what a killed writer left: not part of the version
    files = {MANIFEST_FILE: b"{}\n", "checksums.json": b"[]\n", "catalog/stac/collection.json": b"{}\n"}
    folder = write_version(config, SLUG, "v1", files)
    assert folder == version_dir(config, SLUG, "v1")
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert not leftover.exists()
    with pytest.raises(KfmError, match="without its"):
        write_version(config, SLUG, "v2", {"checksums.json": b"[]\n"})
    assert not version_dir(config, SLUG, "v2").exists()


def test_one_label_per_version(config: Config) -> None:
    base = make(config, "v1", parts=("2023-01", "2023-02", "2023-03"), obligations=[ROUND])
    # the same label and obligations carry everything, whatever the window
    assert carried_under_other_policy(base, "public", [dict(ROUND)], {"2023-02"}) == []
    # another label or other obligations carry nothing: what lies outside the window is refused
    assert carried_under_other_policy(base, "restricted", [ROUND], {"2023-02"}) == ["2023-01", "2023-03"]
    assert carried_under_other_policy(base, "public", [], {"2023-03"}) == ["2023-01", "2023-02"]
    assert carried_under_other_policy(base, "restricted", [], {"2023-01", "2023-02", "2023-03"}) == []


def test_a_new_plan_inherits_the_base_label_type_first(config: Config) -> None:
    make(config, "v1", label="public_generalized",
         obligations=[{"params": {"fields": ["source"]}, "type": "remove_attributes"}])
    label, obligations, inherited = inherited_policy(config, SLUG, "v1", "public", [ROUND])
    assert (label, inherited) == ("public_generalized", True)
    assert [list(o) for o in obligations] == [["type", "params"]]
    assert inherited_policy(config, SLUG, "v1", "public_generalized", [
        {"type": "remove_attributes", "params": {"fields": ["source"]}}])[2] is False
    assert inherited_policy(config, SLUG, FIRST_RELEASE, "public", [ROUND]) == ("public", [ROUND], False)
    assert inherited_policy(config, SLUG, "no-such-version", "public", []) == ("public", [], False)


def test_lineage_without_anything_published(config: Config) -> None:
    assert default_base(config, SLUG) == (FIRST_RELEASE, "")
    make(config, "v1")
    make(config, "v2", base="v1")
    assert leaf_versions(config, SLUG) == ["v2"]
    base, note = default_base(config, SLUG)
    assert base == "v2"
    assert note == (f"nothing is published on release yet: the plan builds on v2, the newest version under "
                    f"releases/{SLUG}/ (--prior names another)")
    make(config, "w1")  # a second line of versions: which one a backfill replaces is for its author to say
    assert leaf_versions(config, SLUG) == ["v2", "w1"]
    base, note = default_base(config, SLUG)
    assert base == FIRST_RELEASE
    assert note.startswith("versions v2, w1 all build on nothing newer")


def test_the_release_branch_says_what_is_published(config: Config) -> None:
    make(config, "v1")
    make(config, "v2", base="v1")
    assert published_version(config, SLUG) == FIRST_RELEASE
    root = config.root
    git(root, "checkout", "-q", "release")
    published_file(config, SLUG).parent.mkdir(parents=True, exist_ok=True)
    published_file(config, SLUG).write_text("dataset_version_id: v1\nevidence_commit: abc\n")
    git(root, "add", repo_path(config, published_file(config, SLUG)))
    git(root, "commit", "-qm", "publish v1")
    git(root, "checkout", "-q", "main")
    assert not published_file(config, SLUG).exists()  # read from the branch, not the working tree
    assert published_version(config, SLUG) == "v1"
    assert default_base(config, SLUG) == ("v1", "")  # the published version, though v2 is newer

