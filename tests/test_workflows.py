"""The GitHub workflows, checked statically: one required check per gate (the registry's), least privilege,
pinned actions, nothing that would let a required check be skipped; actionlint and GitHub's workflow schema."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PROJECT, venv_bin
from kfm_gitops.gates import GATES as REGISTRY
from kfm_gitops.repository import SCAFFOLD, SHARED, WORKFLOWS, workflow_files

# The gate registry: each gate is the module named for what it guards, and a job of gates.yml.
GATES = {g: module.__name__.rsplit(".", 1)[1] for g, module in REGISTRY.items()}
HERE = PROJECT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)  # "on" stays a key
    return doc


def all_workflows() -> list[Path]:
    return sorted(HERE.glob("*.yml"))


def test_the_gate_jobs_are_the_gate_registry() -> None:
    jobs = load(HERE / "gates.yml")["jobs"]
    assert list(jobs) == [f"gate-{g}-{name}" for g, name in GATES.items()]
    for g, name in GATES.items():
        job = jobs[f"gate-{g}-{name}"]
        assert job["name"] == f"gate-{g}-{name}", "a unique check name per gate"
        assert f'kfm gate run {g} --changed "$BASE..HEAD" --format github' in job["steps"][-1]["run"]
        assert "needs" not in job and "if" not in job, "a skipped required check reads as passed"


def test_the_triggers_are_those_of_required_checks() -> None:
    gates, approvals = load(HERE / "gates.yml")["on"], load(HERE / "approvals.yml")["on"]
    assert set(gates) == {"pull_request", "merge_group"}
    assert gates["pull_request"] == {"branches": ["main", "release"]}
    assert set(approvals) == {"pull_request", "pull_request_review"}
    assert list(load(HERE / "approvals.yml")["jobs"]) == ["approvals"]
    assert load(HERE / "reconcile.yml")["on"] == {"push": {"branches": ["release"]}}
    assert load(HERE / "reconcile.yml")["concurrency"] == {"group": "reconcile", "cancel-in-progress": "false"}


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_least_privilege_pins_and_no_skippable_checks(path: Path) -> None:
    doc = load(path)
    text = path.read_text(encoding="utf-8")
    assert doc["permissions"] == {}, "top-level permissions: {}"
    assert "pull_request_target" not in text
    assert "concurrency" in doc
    for trigger in doc["on"].values() if isinstance(doc["on"], dict) else []:
        assert not (isinstance(trigger, dict) and ({"paths", "paths-ignore"} & set(trigger))), "no path filters"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{name}: permissions per job"
        assert "if" not in job, f"{name}: no job-level if"
        for step in job["steps"]:
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{name}: {step['uses']} is not pinned to a commit"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] == "false"


def test_this_repository_carries_the_workflows_kfm_init_writes() -> None:
    for rel, data in workflow_files(".").items():
        assert (PROJECT / rel).read_bytes() == data, f"{rel} differs from what kfm init writes"
    assert {p.name for p in all_workflows()} == {f"{n}.yml" for n in WORKFLOWS} | {"ci.yml"}
    written = workflow_files()[".github/workflows/gates.yml"].decode()
    from kfm_gitops import __version__

    assert f'python -m pip install "kfm-gitops=={__version__}"' in written, "users' repositories pin a release"
    assert all(f".github/workflows/{n}.yml" in SHARED and f".github/workflows/{n}.yml" in SCAFFOLD for n in WORKFLOWS)


def test_actionlint_and_the_workflow_schema_pass() -> None:
    files = [str(p) for p in all_workflows()]
    done = subprocess.run([str(venv_bin() / "actionlint"), *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([str(venv_bin() / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.nope }}\n")
    done = subprocess.run([str(venv_bin() / "actionlint"), str(bad)], capture_output=True, text=True)
    assert done.returncode == 1
