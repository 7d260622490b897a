"""Evidence: the frozen run context, the committed-evidence checks, the parameters digest, the one receipt builder
and run folders, on a real governed repository."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import git
from kfm_gitops import _git
from kfm_gitops._fs import json_bytes
from kfm_gitops.config import Config, load_config
from kfm_gitops.errors import FindingsError
from kfm_gitops.evidence import (
    Frozen,
    altered_evidence,
    build_receipt,
    chunk_params,
    freeze,
    params_digest,
    plan_params,
    raw_dir,
    runs_of,
    uncommitted_inputs,
    write_run,
)
from kfm_gitops.example import FIRST_PLAN
from kfm_gitops.findings import Finding, Location
from kfm_gitops.periods import get_zone, period_of_key
from kfm_gitops.plan import Plan, load_plan, set_expected_version
from kfm_gitops.receipts import new_run_id, read_receipt

SLUG = "ks_storm_reports"


def setup(root: Path) -> tuple[Config, Plan]:
    config = load_config(root)
    assert isinstance(config, Config)
    return config, load_plan(root / FIRST_PLAN, config)


def checks(config: Config, plan: Plan) -> list[Finding]:
    repo = _git.discover(config.root)
    assert repo is not None
    state = _git.status(repo)
    return uncommitted_inputs(config, plan, repo, state) + altered_evidence(config, plan.slug, repo, state)


def test_freeze_records_the_commit_the_committer_and_the_plan(governed: Path) -> None:
    config, plan = setup(governed)
    frozen = freeze(config, plan)
    assert frozen == Frozen(config, SLUG, FIRST_PLAN, git(governed, "rev-parse", "HEAD").strip(),
                            "steward@example.org")


def test_uncommitted_inputs(governed: Path) -> None:
    config, plan = setup(governed)
    assert checks(config, plan) == []
    set_expected_version(plan.path, "2023-06.69a8eb0e.7df9ce5a")  # what the roll-up writes is no input
    assert checks(config, setup(governed)[1]) == []
    (governed / "policies" / "extra.rego").write_text("package kfm\n")
    contract = governed / "datasets" / SLUG / "dataset.yaml"
    contract.write_text(contract.read_text() + "# uncommitted\n")
    found = checks(config, plan)
    assert [(f.code, f.location) for f in found] == [
        ("INPUTS_UNCOMMITTED", Location(f"datasets/{SLUG}/dataset.yaml")),
        ("INPUTS_UNCOMMITTED", Location("policies/extra.rego"))]
    assert found[0].message == f"datasets/{SLUG}/dataset.yaml differs from HEAD"
    with pytest.raises(FindingsError, match="refusing to run from uncommitted inputs"):
        freeze(config, plan)


def test_evidence_is_append_only(governed: Path) -> None:
    config, plan = setup(governed)
    acquisition = raw_dir(governed, SLUG) / "2023-01.000000000000.json"
    acquisition.parent.mkdir(parents=True)
    acquisition.write_text("{}\n")
    assert checks(config, plan) == []  # a new file is new evidence, not an altered one
    git(governed, "add", "-A")
    git(governed, "commit", "-qm", "evidence")
    acquisition.write_text('{"edited": true}\n')
    rel = f"data/raw/{SLUG}/2023-01.000000000000.json"
    assert checks(config, plan) == [Finding(
        "EVIDENCE_ALTERED", f"{rel} is committed evidence and differs from HEAD", Location(rel),
        hint=f"evidence is append-only: restore it with `git checkout HEAD -- {rel}`")]
    acquisition.unlink()
    with pytest.raises(FindingsError, match="refusing to run on altered evidence"):
        freeze(config, plan)


def test_params_digests(governed: Path) -> None:
    config, plan = setup(governed)
    # a worked vector: the digest of the canonical JSON (RFC 8785) of the operation and its parts
    assert params_digest("rollup", plan={"a": 1}) == "sha256:" + hashlib.sha256(
        b'{"operation":"rollup","plan":{"a":1}}').hexdigest()
    before = chunk_params(plan, "2023-01", "sha256:" + "5" * 64)
    assert "expected_dataset_version_id" not in plan_params(plan)["promotion"]
    set_expected_version(plan.path, "2023-06.69a8eb0e.7df9ce5a")
    written = load_plan(plan.path, config)
    assert chunk_params(written, "2023-01", "sha256:" + "5" * 64) == before  # finished chunks stay reusable
    assert chunk_params(written, "2023-01", "sha256:" + "5" * 64, "sha256:" + "6" * 64) != before
    assert chunk_params(written, "2023-02", "sha256:" + "5" * 64) != before


def test_one_receipt_builder_and_run_folders(governed: Path) -> None:
    config, plan = setup(governed)
    frozen = freeze(config, plan)
    chunk = period_of_key("2023-01", get_zone("UTC"))
    warning = Finding("EMPTY_CHUNK", "a gap", Location("data/raw/x.json"), severity="warning")
    receipt = build_receipt(frozen, new_run_id(chunk.key), "acquire", params_digest("acquire", chunk=chunk.key),
                            inputs=[{"uri": "upstream/a.csv", "digest": "sha256:" + "1" * 64}], outputs=[],
                            findings=[warning], chunk=chunk)
    data = receipt.data
    assert (data["operation"], data["dataset_slug"], data["plan"]) == ("acquire", SLUG, FIRST_PLAN)
    assert data["chunk"] == {"key": "2023-01", "start": "2023-01-01T00:00:00Z", "end": "2023-02-01T00:00:00Z"}
    assert data["environment"]["git_commit"] == frozen.git_commit
    assert data["actor"] == {"principal": "steward@example.org", "role": "contributor"}
    assert data["validation"]["status"] == "warn"
    assert "dataset_version_id" not in data
    folder, digest = write_run(frozen, receipt, {"qa.json": json_bytes({"rows": 0})})
    assert folder == f"releases/{SLUG}/runs/{receipt.run_id.removeprefix('kfm://run/')}"
    assert digest == "sha256:" + hashlib.sha256((governed / folder / "receipt.json").read_bytes()).hexdigest()
    assert read_receipt(governed / folder / "receipt.json") == receipt
    assert (governed / folder / "qa.json").read_bytes() == b'{\n  "rows": 0\n}\n'
    assert [(p.relative_to(governed).as_posix(), r) for p, r in runs_of(config, SLUG)] == [(folder, data)]
    rollup = build_receipt(frozen, new_run_id("2023-06"), "rollup", params_digest("rollup"), inputs=[],
                           outputs=[], dataset_version_id="2023-06.69a8eb0e.7df9ce5a")
    assert (rollup.data["dataset_version_id"], rollup.data["validation"]["status"]) == (
        "2023-06.69a8eb0e.7df9ce5a", "pass")
    assert "chunk" not in rollup.data


def test_the_json_files_kfm_writes_have_one_form() -> None:
    assert json_bytes({"b": [1, "é"], "a": None}) == '{\n  "a": null,\n  "b": [\n    1,\n    "é"\n  ]\n}\n'.encode()
    assert json.loads(json_bytes({"x": 1})) == {"x": 1}
