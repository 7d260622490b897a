"""What a gate is given and what it answers: shared by the gates, the release flow and the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from kfm_gitops.approvals import Approval
from kfm_gitops.findings import Finding

# The gates of DESIGN.md, in order; each is its own required check (a workflow job named gate-<id>-<name>).
GATE_NAMES: Mapping[str, str] = {
    "A": "identity",
    "B": "licensing",
    "C": "policy",
    "D": "catalog",
    "E": "qa",
    "F": "receipts",
    "G": "manifest",
}

Status = Literal["passed", "failed"]


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict: what it evaluated (never empty when it passed: evaluating nothing is a failure) and what
    it found."""

    gate: str
    status: Status
    evaluated: tuple[str, ...]
    findings: tuple[Finding, ...] = ()

    @property
    def name(self) -> str:
        return GATE_NAMES[self.gate]


@dataclass(frozen=True, slots=True)
class ReleaseContext:
    """What a release PR (or a promotion) adds to a version's gates: the pointer it proposes, what is published
    now, the ledger of the release branch, and the approvals found. Gate C checks the approvals, gate F the ledger's
    chain, gate G the promotion rules (a forward promotion builds on what is published; a rollback's target was
    published before; a rolled-back version returns only with a republish reason)."""

    slug: str
    version_id: str  # what published.yaml names
    evidence_commit: str
    manifest_digest: str
    reason: str  # published.yaml's reason ("" or "republish: ...")
    published_now: str  # the version published before this change ("" when none)
    ledger: bytes  # releases/<slug>/ledger.jsonl as the release branch holds it (b"" when none)
    ledger_path: str  # where it is, for findings
    approvals: Sequence[Approval] = field(default_factory=tuple)
