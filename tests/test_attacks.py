"""Hostile input against every field that names a path (plan runbook and terms snapshot, connector root and
pattern, version folder arguments) and secrets in the environment: each attack is refused with exit 1 and a
finding, nothing outside the repository is read into the store, and no secret reaches a written file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import Runner, git
from kfm_gitops.example import FIRST_PLAN, UPSTREAM

SLUG = "ks_storm_reports"
SECRET_FILE = "kfm-attack-secret.txt"
SECRET = "s3cr3t-0f-the-h0st-5e7a"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the repository that an attack tries to read."""
    path = tmp_path / SECRET_FILE
    path.write_text(f"{SECRET}\n" * 10)
    return path


def commit_all(root: Path) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", "attack")


def nothing_leaked(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and ".git" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), f"{path} holds the secret"


def refused(r: object, root: Path) -> None:
    code, out, err = r.code, r.out, r.err  # type: ignore[attr-defined]
    assert code == 1, f"exit {code}: {out}{err}"
    assert "Traceback" not in out + err
    nothing_leaked(root)


def set_plan(root: Path, key: str, value: str) -> None:
    plan = root / FIRST_PLAN
    text = plan.read_text()
    new = re.sub(rf'^(\s*){key}: .*$', lambda m: f'{m.group(1)}{key}: "{value}"', text, count=1, flags=re.M)
    assert new != text, key
    plan.write_text(new)


def set_connector(root: Path, key: str, value: str) -> None:
    pipeline = root / "datasets" / SLUG / "pipeline.yaml"
    text = pipeline.read_text()
    new = re.sub(rf'^(\s*){key}: .*$', lambda m: f'{m.group(1)}{key}: "{value}"', text, count=1, flags=re.M)
    assert new != text, key
    pipeline.write_text(new)


@pytest.mark.parametrize("value", ["../outside/{f}", "{abs}", "upstream/../../{f}", "link-to-outside"])
def test_the_terms_snapshot_cannot_name_a_file_outside(governed: Path, kfm: Runner, outside: Path, value: str) -> None:
    (governed / "link-to-outside").symlink_to(outside)
    set_plan(governed, "upstream_terms_snapshot", value.format(f=SECRET_FILE, abs=outside))
    commit_all(governed)
    refused(kfm("acquire", FIRST_PLAN, "--chunk", "2023-01"), governed)


def test_the_runbook_field_is_never_read(governed: Path, kfm: Runner, outside: Path) -> None:
    """`runbook` names the checklist a plan follows for people; kfm never opens it, so pointing it at a secret
    file outside the repository reads nothing."""
    set_plan(governed, "runbook", str(outside))
    commit_all(governed)
    assert kfm("plan", "validate", FIRST_PLAN).code == 0
    assert kfm("backfill", "run", FIRST_PLAN, "--yes").code == 0
    nothing_leaked(governed)


@pytest.mark.parametrize(("key", "value"), [
    ("root", ".."), ("root", "upstream/../.."), ("root", "link-dir"),
    ("pattern", "../../{f}"), ("pattern", "{abs}"), ("pattern", "{{year}}-{{month}}/../../../*"),
])
def test_the_connector_cannot_reach_outside(governed: Path, kfm: Runner, outside: Path, key: str, value: str) -> None:
    (governed / "link-dir").symlink_to(outside.parent, target_is_directory=True)
    set_connector(governed, key, value.format(f=SECRET_FILE, abs=outside, dir=outside.parent))
    commit_all(governed)
    refused(kfm("acquire", FIRST_PLAN, "--chunk", "2023-01"), governed)


@pytest.mark.parametrize("value", ["../{f}", "{abs}"])
def test_the_connector_terms_never_read_outside(governed: Path, kfm: Runner, outside: Path, value: str) -> None:
    set_connector(governed, "terms", value.format(f=SECRET_FILE, abs=outside))
    commit_all(governed)
    r = kfm("acquire", FIRST_PLAN, "--chunk", "2023-01")
    assert r.code in (0, 1) and "Traceback" not in r.out + r.err
    nothing_leaked(governed)


def test_a_symlinked_upstream_file_is_not_followed_out(governed: Path, kfm: Runner, outside: Path) -> None:
    (governed / UPSTREAM / "2023-01" / "reports-zz.csv").symlink_to(outside)
    commit_all(governed)
    refused(kfm("acquire", FIRST_PLAN, "--chunk", "2023-01"), governed)


@pytest.mark.parametrize("command", [
    ("store", "push", "{dir}", "--to", "{to}"),
    ("store", "push", "releases/../../..", "--to", "{to}"), ("catalog", "validate", "{dir}"),
    ("catalog", "validate", "releases/{slug}/../../../.."), ("catalog", "build", "{dir}"),
    ("store", "pull", "{dir}", "--from", "{to}"),
])
def test_version_folder_arguments_cannot_leave_the_repository(governed: Path, kfm: Runner, outside: Path,
                                                               command: tuple[str, ...]) -> None:
    (outside.parent / "promotion-manifest.json").write_text('{"secret": "' + SECRET + '"}')
    args = [a.format(dir=outside.parent, to=outside.parent / "to", slug=SLUG) for a in command]
    refused(kfm(*args), governed)
    assert not (outside.parent / "to").exists() or not any((outside.parent / "to").rglob("*"))


def test_secrets_in_the_environment_reach_no_written_file(governed: Path, kfm: Runner,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    token = "ghp_" + "Zq9" * 12
    for name in ("GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "KFM_GITHUB_TOKEN", "GH_TOKEN", "AZURE_STORAGE_KEY"):
        monkeypatch.setenv(name, token)
    monkeypatch.setenv("CI", "true")
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0, r.out + r.err
    assert token not in r.out + r.err
    written = [p for p in governed.rglob("*") if p.is_file() and ".git" not in p.parts]
    assert len(written) > 50
    for path in written:
        assert token.encode() not in path.read_bytes(), f"{path} holds the token"
    assert os.environ["GITHUB_TOKEN"] == token
