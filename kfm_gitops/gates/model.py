"""What a gate is given and what it answers: shared by the gates, the release flow and the CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from kfm_gitops.approvals import Approval
from kfm_gitops.errors import FindingsError, KfmError
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


def verdict(gate: str, evaluated: Sequence[str], findings: Sequence[Finding]) -> GateResult:
    """A gate's result, fail closed: passed only when it evaluated something and found no error. Evaluating
    nothing is a failure of its own, said as a finding when nothing else says why."""
    found = tuple(findings)
    if not evaluated and not any(f.severity == "error" for f in found):
        found += (Finding("GATE_NOTHING_EVALUATED", f"gate {gate} ({GATE_NAMES[gate]}) evaluated nothing: a gate that "
                          "checks nothing fails", None, hint="give it a version folder, or a change that names one"),)
    failed = not evaluated or any(f.severity == "error" for f in found)
    return GateResult(gate, "failed" if failed else "passed", tuple(evaluated), found)


def crashed(gate: str, exc: BaseException) -> GateResult:
    """A gate that could not run: failed, naming the exception (fail closed)."""
    what = exc.message if isinstance(exc, KfmError) else f"{type(exc).__name__}: {exc}"
    hint = exc.hint if isinstance(exc, KfmError) else "re-run with --debug for the traceback, and report it"
    said = tuple(exc.findings) if isinstance(exc, FindingsError) else ()
    return GateResult(gate, "failed", (), (Finding("GATE_ERROR", f"gate {gate} ({GATE_NAMES[gate]}) could not run: "
                                                   f"{what}", None, hint=hint), *said))
