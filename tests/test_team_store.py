"""A fresh clone and the team's store, as a new member of a team meets them: kfm.yaml may name the team's shared
store and this machine's cache; `kfm raw verify` in a clone says in one finding how many objects are missing and
which `kfm store pull` brings them, and passes once it has run."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SLUG, Runner, commit_all, git
from kfm_gitops.config import Config, load_config
from kfm_gitops.example import FIRST_PLAN


def clone_of(origin: Path, where: Path) -> Path:
    git(where.parent, "clone", "-q", str(origin), str(where))
    assert git(where, "remote").split() == ["origin"]
    return where


def test_a_fresh_clone_gets_one_finding_and_what_to_run(governed: Path, tmp_path: Path, kfm: Runner,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    commit_all(governed, "first release")
    team = tmp_path / "team"
    assert kfm("store", "push", SLUG, "--to", str(team)).code == 0
    clone = clone_of(governed, tmp_path / "clone")
    monkeypatch.chdir(clone)
    r = kfm("raw", "verify")
    assert r.code == 1
    lines = r.out.splitlines()
    assert len(lines) == 2  # one finding for all 21 objects, not one per object and manifest
    assert lines[0].startswith(f"data/raw/{SLUG}/2023-01.")
    assert lines[0].endswith(
        f": OBJECT_MISSING: 21 object(s) named by 6 acquisition manifests are not in the store {clone}/.kfm/objects "
        f"(the first: terms {lines[0].split('(the first: terms ')[1].split(')')[0]}) (hint: this store holds nothing "
        "yet (a fresh clone?): copy them from your team's store with `kfm store pull --from <its URL>`, and name it "
        "in kfm.yaml (store: {shared: <URL>}) so that kfm can say where it is)")
    assert kfm("store", "pull", "--from", str(team)).code == 0
    assert kfm("raw", "verify").code == 0
    # Half there: the finding counts what is missing, and no longer says the store is empty.
    obj = next(p for p in (clone / ".kfm/objects/sha256").rglob("*") if p.is_file())
    obj.unlink()
    r = kfm("raw", "verify")
    assert "OBJECT_MISSING: 1 object(s) named by " in r.out and "holds nothing yet" not in r.out


def test_the_store_in_kfm_yaml_is_a_url_or_the_team_store_and_a_cache(tmp_path: Path) -> None:
    from kfm_gitops.repository import init

    root = tmp_path / "repo"
    init(root)
    path = root / "kfm.yaml"
    text = path.read_text()
    for store, expected in (("store: s3://bucket/kfm", ("s3://bucket/kfm", None)),
                            ("store: {shared: s3://team/kfm}", (".kfm/objects", "s3://team/kfm")),
                            ("store:\n  shared: gs://team/kfm\n  cache: /var/cache/kfm", ("/var/cache/kfm",
                                                                                         "gs://team/kfm"))):
        path.write_text(text.replace("store: .kfm/objects", store))
        cfg = load_config(root)
        assert isinstance(cfg, Config), cfg
        assert (cfg.store, cfg.shared_store) == expected
    path.write_text(text.replace("store: .kfm/objects", "store: {cache: .kfm/objects}"))
    found = load_config(root)
    assert isinstance(found, list)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("store:"))
    assert [f.text() for f in found] == [
        f"{path}:{line}:8: SCHEMA_INVALID: store: {{'cache': '.kfm/objects'}} is not valid under any of the given "
        "schemas (hint: store is a URL or path, or {cache: URL, shared: URL})"]
