"""Approvals behind one interface: who approved a version, and whether that is what its label needs.

Without a forge, approvals are ``Approved-by: <role> <principal>`` trailers on the first-parent merge commit that
brought a version's evidence into main (trailers anywhere else count for nothing). On GitHub, pull request reviews
answer through the same ``ApprovalSource`` interface. An approval counts only from a principal the plan names among
its reviewers, who is not its requester and who holds the role in kfm.yaml; a rule a role nobody holds can meet
fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kfm_gitops.findings import Finding, Location

TRAILER = "Approved-by"
_TRAILER_RE = re.compile(r"^Approved-by:[ \t]*(?P<role>[A-Za-z0-9_-]+)[ \t]+(?P<principal>\S+)[ \t]*$")
_ANY_TRAILER_RE = re.compile(r"^[A-Za-z0-9-]+:[ \t]*\S")


@dataclass(frozen=True, slots=True)
class Approval:
    role: str
    principal: str
    source: str  # where it was read: "trailer <commit>", "review <url>"


@dataclass(frozen=True, slots=True)
class Rule:
    role: str
    min: int


class ApprovalSource(Protocol):
    """Where approvals of a version come from (trailers, a forge's reviews)."""

    def approvals(self) -> list[Approval]: ...


def parse_trailers(message: str, where: str) -> list[Approval]:
    """The Approved-by trailers of a commit message: its last paragraph, when every line of it is a trailer (as
    `git interpret-trailers` reads them). A line that only looks like one, in the body, counts for nothing."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:  # the subject alone is never a trailer block
        return []
    lines = [line for line in paragraphs[-1].splitlines() if line.strip()]
    if not all(_ANY_TRAILER_RE.match(line) for line in lines):
        return []
    out = []
    for line in lines:
        m = _TRAILER_RE.match(line)
        if m:
            out.append(Approval(m["role"], m["principal"], f"trailer {where}"))
    return out


def rules_for(label: str, config_rules: Mapping[str, Sequence[tuple[str, int]]],
              contract_rules: Sequence[Mapping[str, object]]) -> list[Rule]:
    """What a label needs: kfm.yaml's rules for the label and the contract's own, the stricter of each role."""
    need: dict[str, int] = {}
    for role, n in config_rules.get(label, ()):
        need[role] = max(need.get(role, 0), int(n))
    for rule in contract_rules:
        role, least = str(rule.get("role", "")), rule.get("min", 0)
        need[role] = max(need.get(role, 0), least if isinstance(least, int) else 0)
    return [Rule(role, n) for role, n in sorted(need.items())]


def check(approvals: Sequence[Approval], rules: Sequence[Rule], *, reviewers: Sequence[str], requester: str,
          roles: Mapping[str, Sequence[str]], label: str, where: Location) -> tuple[list[Approval], list[Finding]]:
    """The approvals that count, and a finding for each rule they do not meet (or for a label with no rule)."""
    counted: list[Approval] = []
    ignored: list[str] = []
    for a in approvals:
        why = ("is not among the plan's reviewers" if a.principal not in reviewers else
               "requested the backfill" if a.principal == requester else
               f"does not hold the role {a.role} in kfm.yaml" if a.principal not in roles.get(a.role, ()) else "")
        if why:
            ignored.append(f"{a.principal} ({a.source}) {why}")
        elif not any((c.role, c.principal) == (a.role, a.principal) for c in counted):
            counted.append(a)
    if not rules:
        return counted, [Finding("APPROVALS_NO_RULE", f"no approval rule for the label {label!r}", where,
                                 hint="add the label to kfm.yaml's approvals (a label no rule names is denied)")]
    findings = []
    for rule in rules:
        have = sorted({a.principal for a in counted if a.role == rule.role})
        if len(have) >= rule.min:
            continue
        holders = roles.get(rule.role, ())
        hint = (f"no one holds the role {rule.role} in kfm.yaml: add its principals under roles" if not holders else
                f"ask {rule.min - len(have)} more of {', '.join(h for h in holders if h not in have)} to approve")
        detail = f"; not counted: {'; '.join(ignored)}" if ignored else ""
        findings.append(Finding("APPROVALS_MISSING", f"label {label!r} needs {rule.min} approval(s) by "
                                f"{rule.role}, found {len(have)}{detail}", where, hint=hint))
    return counted, findings


@dataclass(frozen=True, slots=True)
class TrailerApprovals:
    """Approved-by trailers on the merge commit that brought ``path`` (a version folder's manifest) into the branch
    whose head is ``head``. A path that arrived in a plain commit, not a merge, has no approvals."""

    root: str
    head: str
    path: str

    def approvals(self) -> list[Approval]:
        from pathlib import Path

        from kfm_gitops import _git

        repo = _git.discover(Path(self.root))
        if repo is None:
            return []
        commit = _git.arrival(repo, _git.resolve(repo, self.head), self.path)
        if commit is None or _git.parent_count(repo, commit) < 2:
            return []
        return parse_trailers(_git.commit_message(repo, commit), str(commit)[:12])
