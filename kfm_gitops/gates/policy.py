"""Gate C, policy: the version's label is one kfm.yaml knows today; its obligations are ones kfm can apply to this
contract (the same rules as processing), and every run that made a new partition applied each of them, with
evidence computed from its output that holds; carried partitions were made under the same label and obligations;
`kfm policy test` passes; the Rego policies allow promotion (today's policies, the decision point ``promotion``).
On a release, the approvals the label needs, counted by ``approvals.check`` (the plan's reviewers, not its
requester, holding the role in kfm.yaml), go into that decision too."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kfm_gitops import approvals
from kfm_gitops.approvals import Approval
from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GateResult, verdict
from kfm_gitops.gates.target import Target, missing_input
from kfm_gitops.policy import decide, decision_input, normalized, test_policies
from kfm_gitops.versions import MANIFEST_FILE, PUBLISHED_FILE, same_policy

GATE = "C"


def check(target: Target) -> GateResult:
    version = target.version
    if version is None:
        return verdict(GATE, (), target.problems)
    evaluated: list[str] = []
    findings: list[Finding] = []
    if version.policy_label not in target.config.vocab.policy_labels:
        findings.append(Finding("POLICY_LABEL_UNKNOWN", f"the version is labelled {version.policy_label!r}, which "
                                "kfm.yaml's policy_labels do not know (an unknown label is denied)",
                                target.where(MANIFEST_FILE), hint="add the label to kfm.yaml's "
                                "vocabularies.policy_labels, or re-run the backfill under a known label"))
    evaluated.append(f"label {version.policy_label!r} against kfm.yaml's vocabulary")
    findings += _obligations(target, evaluated)
    checked, problems = test_policies(target.config.root)
    findings += problems
    if checked:
        evaluated.append(f"`kfm policy test`: {len(checked)} case(s)")
    findings += _decision(target, evaluated)
    return verdict(GATE, evaluated, findings)


# --- obligations ----------------------------------------------------------------------------------------------------


def _key(ob: Mapping[str, Any]) -> tuple[str, str]:
    import json

    n = normalized(dict(ob))
    return n["type"], json.dumps(n.get("params", {}), sort_keys=True)


def _obligations(target: Target, evaluated: list[str]) -> list[Finding]:
    from kfm_gitops.policy import dataset_columns, obligation_problems

    version = target.version
    assert version is not None
    wanted = [normalized(dict(o)) for o in version.obligations]
    findings: list[Finding] = []
    if target.contract is not None:
        terms = dataset_columns(dict(target.contract.dataset))  # the same terms as plan validate and processing
        findings += [Finding(f.code, f.message, target.where(MANIFEST_FILE), hint=f.hint)
                     for f in obligation_problems(wanted, *terms)]
    else:
        findings.append(missing_input(GATE, "the obligations against the contract", "A"))
    made = [r for r in target.runs if r.partitions or r.receipt is None]
    for run in made:
        if run.receipt is None:
            findings.append(missing_input(GATE, f"the obligations applied by {run.run_id} without its receipt", "F"))
            continue
        applied = {_key(a): a for a in run.receipt.get("obligations_applied", []) if isinstance(a, dict)}
        for ob in wanted:
            why = _not_applied(ob, applied.get(_key(ob)))
            if why:
                findings.append(Finding("OBLIGATION_NOT_APPLIED", f"{ob['type']} {ob.get('params', {})}: {why}",
                                        Location(run.receipt_path), hint="the run's output does not show the "
                                        "obligation: run the chunk again (`kfm backfill run PLAN --chunk "
                                        f"{run.chunk} --force`)"))
    findings += _carried_policy(target)
    evaluated.append(f"{len(wanted)} obligation(s) applied by {len(made)} run(s) of the new partitions")
    return findings


_ROUND = re.compile(r"round_([0-9]+)_decimals")


def _not_applied(ob: Mapping[str, Any], applied: Mapping[str, Any] | None) -> str:
    """Why a run's record of an obligation does not show it applied ("" when it does)."""
    if applied is None:
        return "the run's receipt does not record it among obligations_applied"
    evidence, params = applied.get("evidence"), ob.get("params", {})
    if not isinstance(evidence, dict):
        return "recorded without evidence"
    kind = ob["type"]
    if kind == "remove_attributes" and evidence.get("absent") != sorted(params.get("fields", [])):
        return f"the output still has {sorted(set(params.get('fields', [])) - set(evidence.get('absent') or []))}"
    if kind == "generalize_geometry":
        method = str(params.get("method", ""))
        m = _ROUND.fullmatch(method)
        if m and not (isinstance(evidence.get("max_decimals"), int) and evidence["max_decimals"] <= int(m[1])):
            return f"coordinates have {evidence.get('max_decimals')} decimals, more than {m[1]}"
        if method.startswith("grid_aggregation_") and evidence.get("off_grid") != 0:
            return f"{evidence.get('off_grid')} point(s) are off the grid"
        if method == "centroid_only" and set(evidence.get("geometry_types") or ["?"]) - {"Point"}:
            return f"the output has geometries of types {evidence.get('geometry_types')}"
    if kind == "min_count_threshold":
        smallest = evidence.get("smallest_group")
        if smallest is not None and (not isinstance(smallest, int) or smallest < int(params.get("min_count", 1))):
            return f"a group of {smallest} row(s) is below min_count"
    if kind not in ("remove_attributes", "generalize_geometry", "min_count_threshold") and \
            evidence.get("recorded") is not True:
        return "not recorded as applied"
    return ""


def _carried_policy(target: Target) -> list[Finding]:
    """One label per version: what it carries from its base was made under the same label and obligations."""
    version = target.version
    assert version is not None
    if not target.carried:
        return []
    if target.base is None:
        return [missing_input(GATE, "the label of the carried partitions without the base version", "G")]
    if same_policy(target.base, version.policy_label, version.obligations):
        return []
    return [Finding("POLICY_CARRIED_MISMATCH", f"partitions {', '.join(target.carried)} are carried from "
                    f"{target.base.version_id}, made under label {target.base.policy_label!r} and other obligations",
                    target.where(MANIFEST_FILE), hint="one label per version: a changed label or obligations means "
                    "reprocessing every partition (widen the plan's window)")]


# --- the promotion decision -----------------------------------------------------------------------------------------


def _decision(target: Target, evaluated: list[str]) -> list[Finding]:
    """The Rego policies at the promotion point, with the approvals a release brings."""
    version, contract = target.version, target.contract
    assert version is not None
    if contract is None:
        return [missing_input(GATE, "the promotion decision without the contract (its licence)", "A")]
    if any(r.receipt is None for r in target.runs):
        return [missing_input(GATE, "the promotion decision without every run's receipt (the terms it used)", "F")]
    terms = sorted({str(i.get("digest")) for r in target.runs if r.receipt is not None and r.partitions
                    for i in r.receipt.get("inputs", []) if isinstance(i, dict) and i.get("role") == "terms"})
    data = decision_input(target.config.vocab.policy_labels, version.policy_label, version.obligations,
                          contract.dataset.get("license") or None, terms[0] if len(terms) == 1 else None)
    counted, required, findings = _approvals(target)
    data.update(approvals=[{"role": a.role, "principal": a.principal} for a in counted],
                required_approvals=required, now=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    embargo = _embargo(contract.dataset)
    if embargo:
        data["embargo_until"] = embargo
    decision, problems = decide(target.config.root, "promotion", data)
    findings += problems
    if not decision.allow and not problems:
        findings.append(Finding("POLICY_DENIED", f"the promotion policy denies the version: "
                                f"{', '.join(decision.deny)}", target.where(MANIFEST_FILE),
                                hint="the policies under policies/ say why each code is denied"))
    evaluated.append(f"promotion policy ({decision.decision_id}): {'allow' if decision.allow else 'deny'}")
    return findings


def _approvals(target: Target) -> tuple[Sequence[Approval], list[dict[str, Any]], list[Finding]]:
    """On a release: the approvals that count and the rules the label needs (none outside a release)."""
    release, version, contract = target.release, target.version, target.contract
    if release is None or version is None or contract is None:
        return [], [], []
    people = _plan_people(target)
    if isinstance(people, Finding):
        return [], [], [people]
    promotion = contract.dataset.get("promotion") or {}
    rules = approvals.rules_for(version.policy_label, target.config.approvals, list(promotion.get("approvals") or []))
    counted, findings = approvals.check(release.approvals, rules, reviewers=people[1], requester=people[0],
                                        roles=target.config.roles, label=version.policy_label,
                                        where=Location(f"releases/{release.slug}/{PUBLISHED_FILE}"))
    return counted, [{"role": r.role, "min": r.min} for r in rules], findings


def _plan_people(target: Target) -> tuple[str, list[str]] | Finding:
    """The plan's requester and reviewers: who may not, and who may, approve its version."""
    from kfm_gitops import _yaml

    assert target.version is not None
    rel = target.version.plan
    doc = _yaml.load(target.file(rel), shown=rel) if rel else None
    if not isinstance(doc, _yaml.Document) or not isinstance(doc.data, dict):
        return Finding("PLAN_UNREADABLE", f"the version's plan {rel or '(none named)'} cannot be read: its "
                       "reviewers are who may approve", target.where(MANIFEST_FILE),
                       hint="the plan is committed with its version's evidence; restore it from git")
    reviewers = doc.data.get("reviewers") or []
    return str(doc.data.get("requested_by") or ""), [str(r) for r in reviewers if isinstance(r, str)]


def _embargo(dataset: Mapping[str, Any]) -> str | None:
    """The contract's embargo_until in UTC (as the policies compare it); None when it has none."""
    from kfm_gitops.periods import iso_utc, parse_timestamp

    policy = dataset.get("policy")
    value = policy.get("embargo_until") if isinstance(policy, dict) else None
    return iso_utc(parse_timestamp(str(value))) if value else None
