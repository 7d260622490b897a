"""Gate B, licensing: the contract the version was made under names its licence, and every acquisition the new
partitions were made from has a terms snapshot in RAW: recorded in the acquisition manifest with a digest, and in the
store with bytes that hash to it. Carried partitions were licensed when the version that made them was gated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfm_gitops.findings import Finding, Location
from kfm_gitops.gates.model import GateResult, verdict
from kfm_gitops.gates.target import RESTORE, Run, Target, missing_input, read_json, rehash, store_problem
from kfm_gitops.identity import is_digest, sha256_digest

GATE = "B"


def check(target: Target) -> GateResult:
    if target.version is None:
        return verdict(GATE, (), target.problems)
    evaluated: list[str] = []
    findings: list[Finding] = _licence(target, evaluated)
    acquisitions: dict[str, Mapping[str, Any]] = {}  # repository path -> manifest, read once
    for run in target.runs:
        if not run.partitions and run.receipt is not None:
            continue  # an empty chunk made no partition
        findings.extend(_acquisition(target, run, acquisitions))
    findings.extend(_terms(target, acquisitions, evaluated))
    return verdict(GATE, evaluated, findings)


def _licence(target: Target, evaluated: list[str]) -> list[Finding]:
    contract = target.contract
    if contract is None:
        return [missing_input(GATE, "the licence without the contract the version was made under", "A")]
    licence = contract.dataset.get("license")
    named = [str(licence[k]) for k in ("spdx", "url") if isinstance(licence, dict) and licence.get(k)]
    if not named:
        return [Finding("LICENSE_MISSING", "the contract names no licence (license.spdx or license.url)",
                        Location(contract.path), hint="name the upstream's licence in the dataset contract; data "
                        "without one is never published")]
    evaluated.append(f"licence {named[0]} in {contract.path} ({contract.source})")
    return []


def _acquisition(target: Target, run: Run, seen: dict[str, Mapping[str, Any]]) -> list[Finding]:
    """The acquisition a run processed, as its receipt records it (path and digest), read and checked unaltered."""
    if run.receipt is None:
        return [missing_input(GATE, f"the acquisition of chunk {run.chunk} without the receipt of {run.run_id}", "F")]
    recorded = run.outputs("acquisition")
    if len(recorded) != 1 or not isinstance(recorded[0].get("uri"), str):
        return [Finding("ACQUISITION_UNKNOWN", f"the receipt of {run.run_id} names {len(recorded)} acquisition(s), "
                        "not one", Location(run.receipt_path), hint="a chunk run processes one acquisition; run the "
                        "chunk again")]
    rel, digest = str(recorded[0]["uri"]), recorded[0].get("digest")
    got = read_json(target.config.root, rel)
    if isinstance(got, Finding):
        return [got]
    if sha256_digest(got[1]) != digest:
        return [Finding("ACQUISITION_ALTERED", f"the acquisition manifest is not the one {run.run_id} processed "
                        f"(its digest is {sha256_digest(got[1])}, the receipt records {digest})", Location(rel),
                        hint=RESTORE.format(path=rel))]
    if isinstance(got[0], dict):
        seen[rel] = got[0]
    return []


def _terms(target: Target, acquisitions: Mapping[str, Mapping[str, Any]], evaluated: list[str]) -> list[Finding]:
    """Each acquisition's terms snapshot: a digest in its manifest, the bytes in the store."""
    findings: list[Finding] = []
    snapshots: dict[str, list[str]] = {}
    for rel, doc in acquisitions.items():
        terms = doc.get("terms")
        digest = terms.get("digest") if isinstance(terms, dict) else None
        if not is_digest(digest):
            findings.append(Finding("TERMS_MISSING", "the acquisition has no terms snapshot with a digest",
                                    Location(rel), hint="acquire the chunk again with the plan's "
                                    "upstream_terms_snapshot: data without its terms is never published"))
            continue
        snapshots.setdefault(str(digest), []).append(rel)
    store = target.store
    unreachable = store_problem(GATE, "the terms snapshots", store, None)
    if snapshots and (store is None or unreachable is not None):
        return [*findings, *([unreachable] if unreachable else [])]
    count, problems = rehash(target, {d: [(rel, "the terms snapshot") for rel in rels] for d, rels in
                                      snapshots.items()}, "acquisition manifest",
                             "copy it from the shared store (`kfm store pull`), or acquire the chunk again: the terms "
                             "are the evidence that the data may be published")
    findings += problems
    if count and store is not None:
        evaluated.append(f"{len(acquisitions)} acquisition(s) of the new partitions: {count} terms "
                         f"snapshot(s) re-hashed in {store.url}")
    return findings
