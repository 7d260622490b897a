"""Evidence: what a run records and where it lands, and what makes it worth committing.

- the frozen execution context (``freeze``): the commit a run ran from, who ran it, the plan it ran;
- the committed-evidence checks: a run's inputs are committed, earlier evidence is not altered (append-only);
- the parameters digest that makes two runs the same run (``params_digest``, ``chunk_params``);
- the one receipt builder, for acquisitions, chunk runs and the roll-up (``build_receipt``);
- run folders under releases/<slug>/runs/ (``write_run``, ``runs_of``) and acquisitions under data/raw/<slug>/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from kfm_gitops import _git
from kfm_gitops._fs import write_folder
from kfm_gitops._yaml import Document
from kfm_gitops.config import Config
from kfm_gitops.errors import FindingsError, InternalError, KfmError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import digest_of
from kfm_gitops.periods import Period, iso_utc
from kfm_gitops.receipts import RECEIPT_FILE, Receipt, actor, container_digest, environment, findings_report, now_utc
from kfm_gitops.versions import releases_of, repo_path, run_dir, runs_dir


class PlanFile(Protocol):
    """What evidence needs of a plan: where it is, its dataset, and its document."""

    @property
    def path(self) -> Path: ...

    @property
    def slug(self) -> str: ...

    @property
    def doc(self) -> Document: ...


def raw_dir(root: Path, slug: str) -> Path:
    """data/raw/<slug>/: a dataset's acquisition manifests."""
    return root / "data" / "raw" / slug


# --- the frozen execution context -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frozen:
    """The execution context a run records: the repository and dataset, the plan (its path relative to the root),
    the commit it ran from and who ran it."""

    config: Config
    slug: str
    plan: str
    git_commit: str
    committer: str | None


def freeze(config: Config, plan: PlanFile) -> Frozen:
    """Refuse to run from inputs that differ from HEAD, or on altered evidence: what cannot be reproduced cannot be
    promoted."""
    from kfm_gitops import _git

    container_digest()  # a malformed container digest stops the run before anything is written
    repo = _git.discover(config.root)
    if repo is None:
        raise KfmError(f"{config.root} is not a git repository", hint="run `kfm init` there first")
    commit = _git.head_commit(repo)
    if commit is None:
        raise KfmError("the repository has no commit yet", hint="commit kfm.yaml, the contract and the plan first")
    state = _git.status(repo)
    changed = uncommitted_inputs(config, plan, repo, state)
    if changed:
        refused = FindingsError(changed, "refusing to run from uncommitted inputs: a run that cannot be reproduced "
                                "cannot be promoted")
        refused.hint = commit_command(config, plan, [f.location.path for f in changed if f.location])
        raise refused
    altered = altered_evidence(config, plan.slug, repo, state)
    if altered:
        raise FindingsError(altered, "refusing to run on altered evidence: acquisitions, run folders and versions "
                            "are never edited or deleted")
    plan_rel = os.path.relpath(plan.path.resolve(), config.root.resolve())
    return Frozen(config, plan.slug, plan_rel, commit, _git.committer_email(repo))


def commit_command(config: Config, plan: PlanFile, paths: Sequence[str]) -> str:
    """The one git command that commits a run's inputs (``paths``, as git names them), from the working directory."""
    import shlex

    from kfm_gitops._fs import display_path

    shown = " ".join(shlex.quote(display_path(config.root / p)) for p in paths)
    return f"commit them first: git add {shown} && git commit -m {shlex.quote(f'Backfill plan {plan.path.stem}')}"


def _git_paths(repo: _git.Repository, paths: Sequence[Path]) -> list[str]:
    """Paths as git names them in ``repo`` (relative to its working tree, forward slashes)."""
    from kfm_gitops import _git

    workdir = _git.workdir(repo).resolve()
    return [Path(os.path.relpath(p.resolve(), workdir)).as_posix() for p in paths]


def uncommitted_inputs(config: Config, plan: PlanFile, repo: _git.Repository, state: Mapping[str, int]
                       ) -> list[Finding]:
    """INPUTS_UNCOMMITTED: the run's inputs (kfm.yaml, the dataset's contract, the plan, the policies) that differ
    from HEAD. The roll-up's expected id, which kfm writes into the plan, does not count."""
    from kfm_gitops import _git
    from kfm_gitops.policy import POLICY_DIR

    inputs = _git_paths(repo, [config.path, config.datasets_dir() / plan.slug, plan.path, config.root / POLICY_DIR])
    plan_rel = inputs[2]
    changed = [p for p in _git.changed_paths(repo, inputs, dict(state))
               if not (p == plan_rel and _only_expected_id_differs(repo, plan_rel, plan))]
    return [Finding("INPUTS_UNCOMMITTED", f"{p} differs from HEAD", Location(p),
                    hint="commit it (or restore it) before a real run") for p in changed]


def altered_evidence(config: Config, slug: str, repo: _git.Repository, state: Mapping[str, int]) -> list[Finding]:
    """EVIDENCE_ALTERED: committed acquisitions, run folders or versions of ``slug`` that differ from HEAD (new
    files are fine: evidence is append-only)."""
    from kfm_gitops import _git

    evidence = _git_paths(repo, [raw_dir(config.root, slug), releases_of(config, slug)])
    return [Finding("EVIDENCE_ALTERED", f"{p} is committed evidence and differs from HEAD", Location(p),
                    hint=f"evidence is append-only: restore it with `git checkout HEAD -- {p}`")
            for p in _git.altered_paths(repo, evidence, dict(state))]


def _only_expected_id_differs(repo: _git.Repository, rel: str, plan: PlanFile) -> bool:
    """What kfm writes into a plan (the roll-up's expected id) does not make it an uncommitted input."""
    from kfm_gitops import _git, _yaml

    commit = _git.head_commit(repo)
    blob = _git.read_blob(repo, commit, rel) if commit else None
    if blob is None:
        return False
    committed = _yaml.loads(blob.decode("utf-8", "replace"), rel)
    if isinstance(committed, list):
        return False
    return plan_params_data(committed.data) == plan_params(plan)


# --- parameters -----------------------------------------------------------------------------------------------------


def plan_params(plan: PlanFile) -> dict[str, Any]:
    """The plan as its runs see it: without the expected version id, which the roll-up writes later."""
    return plan_params_data(plan.doc.data)


def plan_params_data(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data))
    if isinstance(out.get("promotion"), dict):
        out["promotion"].pop("expected_dataset_version_id", None)
    return out


def params_digest(operation: str, **parts: Any) -> str:
    """The digest of what makes a run of ``operation`` the same run (recorded as environment.params_digest)."""
    return digest_of({"operation": operation, **parts})


def chunk_params(plan: PlanFile, chunk_key: str, spec_hash: str, policies: str = "") -> str:
    """What makes a chunk's run the same run: the plan (without the expected id), the chunk, the contract, and the
    policies it was decided under (a policy changed since means a run made under the old one is not reused)."""
    return params_digest("process", plan=plan_params(plan), chunk=chunk_key, spec_hash=spec_hash, policies=policies)


# --- receipts and run folders ---------------------------------------------------------------------------------------


def build_receipt(frozen: Frozen, rid: str, operation: str, params: str, *, inputs: Sequence[Mapping[str, str]],
                  outputs: Sequence[Mapping[str, str]], findings: Sequence[Finding] = (), chunk: Period | None = None,
                  dataset_version_id: str | None = None, decision_id: str | None = None,
                  obligations_applied: Sequence[Mapping[str, Any]] = (), created_at: datetime | None = None
                  ) -> Receipt:
    """The one receipt builder: what run ``rid`` did (``chunk`` for an acquisition or a chunk run,
    ``dataset_version_id`` for the roll-up), in the frozen context, validated against the receipt schema."""
    from kfm_gitops.schema import validate_data

    report_digest, items = findings_report(findings, frozen.config.root)
    status = "fail" if any(f.severity == "error" for f in findings) else ("warn" if findings else "pass")
    data: dict[str, Any] = {
        "kfm_run_receipt_version": "v1",
        "run_id": rid,
        "dataset_slug": frozen.slug,
        "actor": actor(frozen.committer),
        "operation": operation,
        "inputs": [dict(i) for i in inputs],
        "outputs": [dict(o) for o in outputs],
        "environment": environment(frozen.git_commit, params),
        "validation": {"status": status, "report_digest": report_digest, "findings": items},
        "policy": {"decision_id": decision_id},
        "obligations_applied": [dict(o) for o in obligations_applied],
        "created_at": iso_utc(created_at or now_utc()),
        "plan": frozen.plan,
    }
    if chunk is not None:
        data["chunk"] = {"key": chunk.key, "start": iso_utc(chunk.start), "end": iso_utc(chunk.end)}
    if dataset_version_id is not None:
        data["dataset_version_id"] = dataset_version_id
    problems = validate_data(data, "receipt")
    if problems:
        raise InternalError(f"kfm made a receipt that fails its own schema: {problems[0]}")
    return Receipt(data)


def write_run(frozen: Frozen, receipt: Receipt, files: Mapping[str, bytes] | None = None) -> tuple[str, str]:
    """Write a run folder (the receipt and ``files``) in staging and rename it into releases/<slug>/runs/ when
    complete. Returns the folder (relative to the root) and the receipt's digest."""
    folder = run_dir(frozen.config, frozen.slug, receipt.run_id)
    write_folder(frozen.config.root, folder.name, folder, {RECEIPT_FILE: receipt.bytes, **(files or {})})
    return repo_path(frozen.config, folder), receipt.digest


def runs_of(config: Config, slug: str) -> list[tuple[Path, dict[str, Any]]]:
    """Every run folder of a dataset with its receipt, oldest first (unreadable receipts are left out)."""
    base = runs_dir(config, slug)
    out = []
    for p in sorted(base.glob(f"*/{RECEIPT_FILE}")) if base.is_dir() else []:
        try:
            out.append((p.parent, json.loads(p.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return out
