"""Gate F, receipts: a receipt for every chunk run the version uses and for its roll-up, each valid (schema,
canonical form) and the one runs.json records; the roll-up's inputs are those runs; every run ran from committed
inputs (its commit is in the history of what is gated); no committed evidence of the dataset differs from HEAD (the
evidence module's append-only check). On a release, the ledger's hash chain verifies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfm_gitops import _git
from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GateResult, verdict
from kfm_gitops.gates.target import RESTORE, Run, Target
from kfm_gitops.receipts import RECEIPT_FILE, read_receipt
from kfm_gitops.versions import RUNS_FILE

GATE = "F"


def check(target: Target) -> GateResult:
    version = target.version
    if version is None:
        return verdict(GATE, (), target.problems)
    findings: list[Finding] = list(target.runs_problems)
    receipts: list[tuple[str, Mapping[str, Any]]] = []  # (repository path, receipt) of the valid ones
    for run in target.runs:
        findings += _chunk_receipt(target, run, receipts)
    findings += _rollup_receipt(target, receipts)
    findings += _committed(target, receipts)
    evaluated = [f"{len(receipts)} receipt(s): {len(target.runs)} chunk run(s) and the roll-up"] if receipts else []
    altered = _altered(target)
    if altered is not None:
        findings += altered
        evaluated.append(f"committed evidence of {version.slug} unaltered (working tree against HEAD)")
    if target.release is not None:
        from kfm_gitops.ledger import verify

        entries, problems = verify(target.release.ledger, target.release.ledger_path)
        findings += problems
        evaluated.append(f"ledger chain {target.release.ledger_path}: {entries} entr{'y' if entries == 1 else 'ies'}")
    return verdict(GATE, evaluated, findings)


def _chunk_receipt(target: Target, run: Run, out: list[tuple[str, Mapping[str, Any]]]) -> list[Finding]:
    where = Location(run.receipt_path)
    if run.digest is None:
        return [Finding("RECEIPT_MISSING", f"the run {run.run_id} of chunk {run.chunk} has no receipt", where,
                        hint=RESTORE.format(path=run.receipt_path) + "; receipts are never optional")]
    receipt = read_receipt(target.file(run.receipt_path))
    if isinstance(receipt, list):
        return receipt
    problems = []
    if run.digest != run.recorded_digest:
        problems.append(f"its digest is {run.digest}, {RUNS_FILE} records {run.recorded_digest}")
    data = receipt.data
    expected = {"run_id": run.run_id, "operation": "process", "dataset_slug": target.version.slug
                if target.version else None}
    problems += [f"{k} is {data.get(k)!r}, not {v!r}" for k, v in expected.items() if data.get(k) != v]
    if (data.get("chunk") or {}).get("key") != run.chunk:
        problems.append(f"it is the receipt of chunk {(data.get('chunk') or {}).get('key')}, not {run.chunk}")
    if (data.get("validation") or {}).get("status") == "fail":
        problems.append("its validation failed")
    if problems:
        return [Finding("RECEIPT_INVALID", f"the receipt of {run.run_id}: {'; '.join(problems)}", where,
                        hint=RESTORE.format(path=run.receipt_path))]
    out.append((run.receipt_path, data))
    return []


def _rollup_receipt(target: Target, out: list[tuple[str, Mapping[str, Any]]]) -> list[Finding]:
    """The roll-up's receipt: valid, of this version, made from exactly the runs runs.json lists."""
    assert target.version is not None
    rel = f"{target.rel}/{RECEIPT_FILE}"
    receipt = read_receipt(target.file(rel))
    if isinstance(receipt, list):
        if any(f.code == "FILE_NOT_FOUND" for f in receipt):
            return [Finding("RECEIPT_MISSING", "the version has no roll-up receipt", Location(rel),
                            hint=RESTORE.format(path=rel) + "; receipts are never optional")]
        return receipt
    data = receipt.data
    problems = []
    if data.get("operation") != "rollup" or data.get("dataset_version_id") != target.version.version_id:
        problems.append(f"it is not the roll-up of {target.version.version_id}")
    inputs = sorted((str(i.get("uri")), str(i.get("digest"))) for i in data.get("inputs", []) if isinstance(i, dict))
    if inputs != sorted((r.receipt_path, r.recorded_digest) for r in target.runs):
        problems.append(f"its inputs are not the receipts {RUNS_FILE} lists")
    if (data.get("validation") or {}).get("status") == "fail":
        problems.append("its validation failed")
    if problems:
        return [Finding("RECEIPT_INVALID", f"the roll-up receipt: {'; '.join(problems)}", Location(rel),
                        hint=RESTORE.format(path=rel))]
    out.append((rel, data))
    return []


def _committed(target: Target, receipts: list[tuple[str, Mapping[str, Any]]]) -> list[Finding]:
    """Every run ran from committed inputs: the commit its receipt records is in the history of what is gated
    (HEAD, or the commit the files come from) and holds the plan it names."""
    repo = _git.discover(target.history)
    head = target.commit or (_git.head_commit(repo) if repo is not None else None)
    if repo is None or head is None:
        return [Finding("HISTORY_MISSING", f"{target.history} is not a git repository with a commit: the runs' "
                        "commits cannot be checked", None, hint="gate a version inside its repository")]
    tip = _git.resolve(repo, head)
    findings = []
    verdicts: dict[str, str] = {}
    for rel, receipt in receipts:
        commit = str((receipt.get("environment") or {}).get("git_commit") or "")
        if commit not in verdicts:
            verdicts[commit] = _commit_problem(repo, commit, tip, str(receipt.get("plan") or ""))
        if verdicts[commit]:
            findings.append(Finding("INPUTS_UNCOMMITTED", f"the run recorded commit {commit[:12] or '(none)'}, which "
                                    f"{verdicts[commit]}", Location(rel), hint="a run that cannot be reproduced "
                                    "from committed inputs cannot be promoted: fetch the full history, or run again "
                                    "from a commit of this branch"))
    return findings


def _commit_problem(repo: _git.Repository, commit: str, tip: _git.Oid, plan: str) -> str:
    try:
        oid = _git.resolve(repo, commit) if commit else None
    except (KeyError, ValueError):
        oid = None
    if oid is None:
        return "is not in this repository"
    if not _git.is_ancestor(repo, oid, tip):
        return "is not in the history of what is gated"
    if plan and _git.read_blob(repo, oid, plan) is None:
        return f"does not hold the plan {plan}"
    return ""


def _altered(target: Target) -> list[Finding] | None:
    """Committed evidence of the dataset that differs from HEAD in the working tree (None: the files come from a
    commit, so there is no working tree to compare)."""
    from kfm_gitops.evidence import altered_evidence

    repo = _git.discover(target.config.root)
    if target.commit is not None or repo is None or target.version is None:
        return None
    return altered_evidence(target.config, target.version.slug, repo, _git.status(repo))
