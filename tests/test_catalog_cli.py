"""`kfm catalog build` and `kfm catalog validate` on a real version, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import Runner

SLUG = "ks_storm_reports"


def version(root: Path) -> Path:
    return next(p for p in sorted((root / "releases" / SLUG).iterdir()) if (p / "promotion-manifest.json").exists())


def test_validate_and_build_a_version(tmp_path: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    assert kfm("quickstart", str(tmp_path / "q")).code == 0
    monkeypatch.chdir(tmp_path / "q")
    folder = version(tmp_path / "q").relative_to(tmp_path / "q")
    r = kfm("catalog", "validate", str(folder), "--links", "links.json")
    assert r.code == 0, r.out
    assert r.out.startswith(f"{2 + 1 + 6} catalog files valid; links: ")
    report = json.loads(Path("links.json").read_text())
    assert report["counts"]["RESOLVED"] == len(report["links"]) > 50
    assert kfm("catalog", "build", str(folder)).out == "9 catalog file(s) rebuilt, all identical\n"

    item = folder / "catalog" / "stac" / "items" / "2023-01.json"
    doc = json.loads(item.read_text())
    doc["assets"]["data"]["href"] = "kfm://artifact/sha256:" + "1" * 64
    item.write_text(json.dumps(doc))
    r = kfm("catalog", "validate", str(folder), "--format", "json")
    assert r.code == 1
    assert any(f["path"].endswith("items/2023-01.json") for f in json.loads(r.out)["findings"])
    r = kfm("catalog", "build", str(folder))
    assert r.code == 1
    assert "2023-01.json: CATALOG_DIFFERS" in r.out

    shutil.rmtree(folder / "catalog")  # a version made before catalogs existed gets them, as new files
    assert kfm("catalog", "build", str(folder)).out.startswith("wrote 9 catalog file(s) into ")
    assert kfm("catalog", "validate", str(folder)).code == 0
    assert kfm("catalog", "validate", "releases").code == 1
