"""Approvals: Approved-by trailers count only on the first-parent merge that brought the evidence into main, and
only from the plan's reviewers who hold the role and did not request the backfill."""

from __future__ import annotations

from pathlib import Path

from conftest import git
from kfm_gitops.approvals import Approval, Rule, TrailerApprovals, check, parse_trailers, rules_for
from kfm_gitops.findings import Location

HERE = Location("plans/ks/p.yml")
ROLES = {"steward": ["steward-kim", "steward-ode"], "release_manager": ["rm-lee"]}


def test_trailers_are_read_from_the_last_paragraph_only() -> None:
    message = ("Merge plan ks: backfill March\n\nApproved-by: steward fake-in-body\nsome prose\n\n"
               "Approved-by: steward steward-kim\nApproved-by: steward steward-ode\nSigned-off-by: A <a@b>\n")
    assert [(a.role, a.principal) for a in parse_trailers(message, "c0ffee")] == [
        ("steward", "steward-kim"), ("steward", "steward-ode")]
    assert parse_trailers("Approved-by: steward steward-kim\n", "x") == []  # a subject is not a trailer
    assert parse_trailers("Merge\n\nApproved-by: steward steward-kim\nnot a trailer line\n", "x") == []


def test_rules_take_the_stricter_of_kfm_yaml_and_the_contract() -> None:
    rules = rules_for("restricted", {"restricted": [("steward", 2)]}, [{"role": "steward", "min": 1},
                                                                      {"role": "release_manager", "min": 1}])
    assert rules == [Rule("release_manager", 1), Rule("steward", 2)]


def test_only_reviewers_holding_the_role_who_did_not_request_count() -> None:
    approvals = [Approval("steward", "steward-kim", "t"), Approval("steward", "steward-kim", "t2"),
                 Approval("steward", "ops-ana", "t"), Approval("steward", "outsider", "t"),
                 Approval("steward", "intern", "t")]
    counted, findings = check(approvals, [Rule("steward", 2)], reviewers=["steward-kim", "ops-ana", "intern"],
                              requester="ops-ana", roles=ROLES, label="restricted", where=HERE)
    assert counted == [Approval("steward", "steward-kim", "t")]
    [f] = findings
    assert f.code == "APPROVALS_MISSING"
    assert "needs 2 approval(s) by steward, found 1" in f.message
    assert "ops-ana (t) requested the backfill" in f.message
    assert "outsider (t) is not among the plan's reviewers" in f.message
    assert "intern (t) does not hold the role steward in kfm.yaml" in f.message
    assert f.hint == "ask 1 more of steward-ode to approve"
    ok, none = check([*approvals, Approval("steward", "steward-ode", "t")], [Rule("steward", 2)],
                     reviewers=["steward-kim", "steward-ode"], requester="ops-ana", roles=ROLES, label="restricted",
                     where=HERE)
    assert (len(ok), none) == (2, [])


def test_a_label_without_a_rule_and_a_role_nobody_holds_fail_closed() -> None:
    _, [f] = check([], [], reviewers=[], requester="x", roles=ROLES, label="secret", where=HERE)
    assert f.code == "APPROVALS_NO_RULE"
    _, [f] = check([], [Rule("auditor", 1)], reviewers=[], requester="x", roles=ROLES, label="public", where=HERE)
    assert f.hint == "no one holds the role auditor in kfm.yaml: add its principals under roles"


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "r"
    git(tmp_path, "init", "-q", "-b", "main", str(root))
    (root / "README").write_text("x\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start\n\nApproved-by: steward steward-kim")
    return root


def test_trailers_count_on_the_merge_that_brought_the_evidence(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    manifest = "releases/ks/v1/promotion-manifest.json"
    git(root, "checkout", "-q", "-b", "plan")
    (root / manifest).parent.mkdir(parents=True)
    (root / manifest).write_text("{}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "evidence\n\nApproved-by: steward steward-ode")  # on the branch: nothing
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "plan", "-m", "Merge plan\n\nApproved-by: steward steward-kim")
    (root / "later").write_text("y\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "later\n\nApproved-by: steward steward-zed")  # after the merge: nothing
    found = TrailerApprovals(str(root), "main", manifest).approvals()
    merge = git(root, "rev-parse", "main~1").strip()
    assert found == [Approval("steward", "steward-kim", f"trailer {merge[:12]}")]
    assert TrailerApprovals(str(root), "main", "releases/ks/nope/promotion-manifest.json").approvals() == []


def test_evidence_committed_straight_to_main_has_no_approvals(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "releases").mkdir()
    (root / "releases" / "m.json").write_text("{}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "evidence\n\nApproved-by: steward steward-kim")
    assert TrailerApprovals(str(root), "main", "releases/m.json").approvals() == []
