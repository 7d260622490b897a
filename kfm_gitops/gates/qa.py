"""Gate E, qa: every run that made the version's new partitions has its QA report, unaltered (the digest its
receipt records), passing, with the contract's thresholds met; its quarantine record says nothing of it was
quarantined whole; the version's QA summary is the one its manifest records, passing, every chunk done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GateResult, verdict
from kfm_gitops.gates.target import RESTORE, Run, Target, missing_input, read_json
from kfm_gitops.identity import sha256_digest
from kfm_gitops.versions import MANIFEST_FILE, QA_FILE, QUARANTINE_FILE

GATE = "E"
PASSING_STATES = ("done", "reused", "empty")


def check(target: Target) -> GateResult:
    if target.version is None:
        return verdict(GATE, (), target.problems)
    findings = _summary(target)
    thresholds = dict(target.contract.dataset.get("qa") or {}) if target.contract is not None else None
    if thresholds is None:
        findings.append(missing_input(GATE, "the QA thresholds without the contract the version was made under", "A"))
    reports = 0
    for run in target.runs:
        problems = _report(target, run, thresholds or {}) + _quarantine(target, run)
        reports += not any(f.code == "QA_REPORT_MISSING" for f in problems)
        findings += problems
    evaluated = [f"QA summary {target.rel}/{QA_FILE}"]
    if target.runs:
        evaluated.append(f"{reports} of {len(target.runs)} run(s): QA report, thresholds, quarantine record")
    return verdict(GATE, evaluated, findings)


def _summary(target: Target) -> list[Finding]:
    assert target.version is not None
    rel = f"{target.rel}/{QA_FILE}"
    got = read_json(target.config.root, rel)
    if isinstance(got, Finding):
        return [Finding("QA_SUMMARY_MISSING", f"the version's QA summary cannot be read: {got.message}",
                        got.location, hint=RESTORE.format(path=rel))]
    doc, data = got
    recorded = target.version.data.get("qa")
    findings = []
    if not isinstance(recorded, dict) or recorded.get("report_digest") != sha256_digest(data) or \
            recorded.get("status") != "pass":
        findings.append(Finding("QA_SUMMARY_ALTERED", "the QA summary is not the passing one the manifest records",
                                target.where(MANIFEST_FILE), hint=RESTORE.format(path=rel)))
    chunks = doc.get("chunks") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("status") != "pass" or not isinstance(chunks, list):
        findings.append(Finding("QA_FAILED", "the QA summary does not pass", Location(rel),
                                hint="no partial promotion: fix the data or shrink the window, and run again"))
        return findings
    findings += [Finding("QA_FAILED", f"chunk {c.get('chunk')} is {c.get('state')}", Location(rel),
                         hint="no partial promotion: fix the data or shrink the window, and run again")
                 for c in chunks if not isinstance(c, dict) or c.get("state") not in PASSING_STATES]
    return findings


def _run_doc(target: Target, run: Run, name: str, role: str) -> tuple[Mapping[str, Any], str] | Finding:
    """A document of a run folder, checked against the digest the run's receipt records for it and its schema."""
    rel = f"{run.folder}/{name}"
    got = read_json(target.config.root, rel)
    if isinstance(got, Finding):
        return got
    recorded = [o.get("digest") for o in run.outputs(role)]
    if run.receipt is not None and recorded != [sha256_digest(got[1])]:
        return Finding(f"{role.upper()}_ALTERED", f"{name} is not the one {run.run_id} recorded (its digest is "
                       f"{sha256_digest(got[1])})", Location(rel), hint=RESTORE.format(path=rel))
    from kfm_gitops.schema import validate_data

    problems = validate_data(got[0], role)  # the schema of a run's QA report or quarantine record
    if problems or not isinstance(got[0], dict):
        return Finding(f"{role.upper()}_INVALID", f"{name}: {problems[0] if problems else 'not a JSON object'}",
                       Location(rel), hint=RESTORE.format(path=rel))
    return got[0], rel


def _report(target: Target, run: Run, thresholds: Mapping[str, Any]) -> list[Finding]:
    got = _run_doc(target, run, QA_FILE, "qa")
    if isinstance(got, Finding):
        if got.code == "FILE_NOT_FOUND":
            return [Finding("QA_REPORT_MISSING", f"the run {run.run_id} of chunk {run.chunk} has no QA report",
                            got.location, hint=f"restore it from git; if it was never committed, run the chunk "
                            f"again (`kfm backfill run PLAN --chunk {run.chunk} --force`)")]
        return [got]
    doc, rel = got
    failures = list(doc.get("threshold_failures") or []) + _recomputed(doc, thresholds)
    if doc.get("status") != "pass" or failures:
        return [Finding("QA_THRESHOLD", f"chunk {run.chunk}: " + "; ".join(str(f) for f in failures or
                                                                           ["the QA report does not pass"]),
                        Location(rel), hint="fix the data or shrink the window: a chunk that fails QA is "
                        "never published")]
    return []


def _recomputed(doc: Mapping[str, Any], thresholds: Mapping[str, Any]) -> list[str]:
    """The contract's thresholds, checked again on the report's own figures."""
    rows: Mapping[str, Any] = doc["rows"] if isinstance(doc.get("rows"), dict) else {}
    out = []
    ratio, limit = doc.get("invalid_ratio"), thresholds.get("max_invalid_ratio")
    if limit is not None and (not isinstance(ratio, int | float) or ratio > limit):
        out.append(f"invalid ratio {ratio} is over the contract's {limit}")
    least, accepted = thresholds.get("min_rows"), rows.get("accepted")
    if least is not None and rows.get("total") and (not isinstance(accepted, int) or accepted < least):
        out.append(f"{accepted} row(s) accepted; the contract needs {least}")
    nulls: Mapping[str, Any] = doc["null_ratio"] if isinstance(doc.get("null_ratio"), dict) else {}
    for column, most in sorted((thresholds.get("max_null_ratio") or {}).items()):
        if float(nulls.get(column, 0.0)) > most:
            out.append(f"column {column} is {nulls.get(column)} null; the contract allows {most}")
    return out


def _quarantine(target: Target, run: Run) -> list[Finding]:
    got = _run_doc(target, run, QUARANTINE_FILE, "quarantine")
    if isinstance(got, Finding):
        return [got]
    doc, rel = got
    if doc.get("whole_chunk"):
        return [Finding("QUARANTINED_IN_VERSION", f"chunk {run.chunk} was quarantined whole, and the version uses "
                        f"its run {run.run_id}", Location(rel), hint="nothing quarantined is published: fix the data "
                        "or shrink the window, and run again")]
    return []
