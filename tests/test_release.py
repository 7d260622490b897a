"""The release half on a real repository: plan branch -> main (merge with Approved-by), release propose -> release
(merge), promote -> alias moved and ledger appended; a second version; rollback -> promote -> alias back; a rolled-back
version returns only as a republish; races, a killed promote, stale bases. The gates are given to promote as a
function: here one that records what it was asked and passes (or fails) as the test says."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from conftest import Runner, git
from kfm_gitops import ledger
from kfm_gitops.config import Config, load_config
from kfm_gitops.errors import ConflictError, FindingsError, KfmError
from kfm_gitops.example import FIRST_PLAN, REDELIVERY, UPSTREAM
from kfm_gitops.findings import Finding
from kfm_gitops.gates.model import GATE_NAMES, GateResult, ReleaseContext
from kfm_gitops.release import (
    Actor,
    Pointer,
    promote,
    propose,
    rollback,
    status,
    trailer_approvals,
)

SLUG = "ks_storm_reports"
ACTOR = Actor("rm-lee", created_at="2023-07-06T12:00:00Z")


class Gates:
    """Promote's gate runner for these tests: passes every gate unless told which to fail; remembers each call."""

    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.seen: list[ReleaseContext] = []

    def __call__(self, config: Config, ctx: ReleaseContext) -> Sequence[GateResult]:
        self.seen.append(ctx)
        return [GateResult(g, "failed" if g in self.fail else "passed", (f"{ctx.version_id}",),
                           (Finding("TEST_DEFECT", f"gate {g} was told to fail"),) if g in self.fail else ())
                for g in GATE_NAMES]


def cfg(root: Path) -> Config:
    loaded = load_config(root)
    assert isinstance(loaded, Config)
    return loaded


def version_of(root: Path, plan: str) -> str:
    line = next(ln for ln in (root / plan).read_text().splitlines() if "expected_dataset_version_id" in ln)
    return line.split('"')[1]


def merge_plan(root: Path, kfm: Runner, branch: str, plan: str, approver: str = "steward-kim") -> str:
    """A plan PR: run the backfill on a branch, commit its evidence, merge it into main with an Approved-by."""
    git(root, "checkout", "-q", "-b", branch)
    r = kfm("backfill", "run", plan, "--yes")
    assert r.code == 0, r.out + r.err
    git(root, "add", "-A")
    git(root, "commit", "-qm", f"evidence of {plan}")
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", branch, "-m", f"Merge {branch}\n\nApproved-by: steward {approver}")
    return version_of(root, plan)


def merge_release(root: Path, branch: str) -> None:
    """A release PR merged on the release branch (as the merge button does, without touching main's work tree)."""
    from kfm_gitops import _git

    repo = _git.discover(root)
    assert repo is not None
    _git.merge_branch(repo, "release", branch, f"Merge {branch}\n\nApproved-by: release_manager rm-lee")


def gap_plan(root: Path, prior: str) -> str:
    import re

    shutil.copytree(root / REDELIVERY / "2023-03", root / UPSTREAM / "2023-03")
    text = (root / FIRST_PLAN).read_text()
    text = text.replace('start: "2023-01-01T00:00:00Z"', 'start: "2023-03-01T00:00:00Z"')
    text = text.replace('prior_dataset_version_id: ""', f'prior_dataset_version_id: "{prior}"')
    text = re.sub(r'expected_dataset_version_id: "[^"]*"', 'expected_dataset_version_id: "<to-be-computed>"', text)
    rel = f"plans/{SLUG}/backfill-20230801-a1b2c3.yml"
    (root / rel).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "redelivery and the gap plan")
    return rel


@pytest.fixture
def two_versions(governed: Path, kfm: Runner) -> tuple[Path, str, str]:
    """The example with its first release merged and promoted, and the gap's version merged into main."""
    v1 = merge_plan(governed, kfm, "plan/first", FIRST_PLAN)
    merge_release(governed, propose(cfg(governed), SLUG).branch)
    [p] = promote(cfg(governed), gates=Gates(), approvals=trailer_approvals, actor=ACTOR)
    assert (p.event, p.version_id) == ("promotion", v1)
    v2 = merge_plan(governed, kfm, "plan/gap", gap_plan(governed, v1))
    return governed, v1, v2


def ledger_lines(root: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in git(root, "show", f"release:releases/{SLUG}/ledger.jsonl").splitlines()]


def test_the_whole_flow_forward_back_and_republished(two_versions: tuple[Path, str, str]) -> None:
    root, v1, v2 = two_versions
    config = cfg(root)
    prop = propose(config, SLUG)
    assert (prop.pointer.version_id, prop.published_now, prop.event) == (v2, v1, "promotion")
    assert prop.branch == f"kfm/release/{SLUG}/{v2}"
    # The release PR changes exactly one file.
    assert git(root, "diff", "--name-only", "release", prop.branch).split() == [f"releases/{SLUG}/published.yaml"]
    assert git(root, "status", "--porcelain") == "", "main's work tree is not touched"
    merge_release(root, prop.branch)
    gates = Gates()
    [p] = promote(config, gates=gates, approvals=trailer_approvals, actor=ACTOR)
    assert (p.event, p.version_id, p.finished) == ("promotion", v2, False)
    assert gates.seen[0].published_now == v1 and gates.seen[0].version_id == v2
    assert {(a.role, a.principal) for a in gates.seen[0].approvals} == {
        ("steward", "steward-kim"), ("release_manager", "rm-lee")}
    assert git(root, "rev-parse", f"published/{SLUG}").strip() == git(root, "rev-parse", "release").strip()
    evidence = git(root, "rev-parse", f"datasets/{SLUG}/{v2}^{{commit}}").strip()
    assert evidence == prop.pointer.evidence_commit == git(root, "rev-parse", "main").strip()
    entries = ledger_lines(root)
    assert [(e["seq"], e["event_type"], e["subject"]["dataset_version_id"]) for e in entries] == [  # type: ignore[index]
        (1, "promotion", v1), (2, "promotion", v2)]
    assert entries[1]["supersedes"] == v1 and entries[1]["gates"] == {g: "passed" for g in GATE_NAMES}
    # Nothing differs now: promote does nothing.
    assert promote(config, gates=Gates(), approvals=trailer_approvals, actor=ACTOR)[0].event is None

    # Rollback: a revert of the pointer's last change, and an incident note in a commit of its own.
    back = rollback(config, SLUG, to=None, reason="March has a bad batch downstream", check=lambda p: None,
                    today="2023-08-02")
    assert back.pointer.version_id == v1
    log = git(root, "log", "--format=%s", f"release..{back.branch}").splitlines()
    assert log[0] == f"Incident: {SLUG} {v2} rolled back to {v1}" and log[1].startswith('Revert "')
    assert git(root, "diff", "--name-only", "release", back.branch).split() == [
        f"releases/{SLUG}/incidents/2023-08-02-{v2}.md", f"releases/{SLUG}/published.yaml"]
    merge_release(root, back.branch)
    [p] = promote(config, gates=Gates(), approvals=trailer_approvals, actor=ACTOR)
    assert (p.event, p.version_id) == ("rollback", v1)
    assert status(config, SLUG).alias_version == v1
    assert ledger_lines(root)[-1]["supersedes"] == v2
    # Both versions' evidence is still on main: nothing was deleted.
    assert (root / "releases" / SLUG / v2 / "promotion-manifest.json").is_file()

    # The rolled-back version comes back only as a republish, with its reason.
    with pytest.raises(KfmError, match="was rolled back: it is published again only with a reason"):
        propose(config, SLUG, v2)
    again = propose(config, SLUG, v2, reason="republish: the downstream bug was fixed")
    assert again.event == "republish"
    merge_release(root, again.branch)
    [p] = promote(config, gates=Gates(), approvals=trailer_approvals, actor=ACTOR)
    assert (p.event, p.version_id) == ("republish", v2)
    assert ledger.verify(git(root, "show", f"release:releases/{SLUG}/ledger.jsonl").encode(), "x") == (4, [])


def test_a_failing_gate_writes_nothing(two_versions: tuple[Path, str, str]) -> None:
    root, _, _ = two_versions
    config = cfg(root)
    merge_release(root, propose(config, SLUG).branch)
    before = git(root, "show-ref")
    with pytest.raises(FindingsError, match="not promoted: gate\\(s\\) C failed") as caught:
        promote(config, gates=Gates(fail="C"), approvals=trailer_approvals, actor=ACTOR)
    assert caught.value.findings[0].code == "TEST_DEFECT"
    assert git(root, "show-ref") == before
    assert status(config, SLUG).pending


def test_a_promote_killed_after_its_ledger_commit_is_finished_by_the_next(
        two_versions: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import kfm_gitops.release as release

    root, _, v2 = two_versions
    config = cfg(root)
    merge_release(root, propose(config, SLUG).branch)
    alias_before = git(root, "rev-parse", f"published/{SLUG}").strip()

    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(release, "_move_alias", killed)
        with pytest.raises(KeyboardInterrupt):
            promote(config, gates=Gates(), approvals=trailer_approvals, actor=ACTOR)
    assert git(root, "rev-parse", f"published/{SLUG}").strip() == alias_before, "the alias is at the old value"
    gates = Gates()
    [p] = promote(config, gates=gates, approvals=trailer_approvals, actor=ACTOR)
    assert (p.finished, p.version_id, gates.seen) == (True, v2, [])
    assert git(root, "rev-parse", f"published/{SLUG}").strip() == git(root, "rev-parse", "release").strip()
    assert len(ledger_lines(root)) == 2, "one entry for one promotion"


def test_a_release_branch_that_moves_meanwhile_is_a_conflict(two_versions: tuple[Path, str, str]) -> None:
    from kfm_gitops import _git

    root, _, _ = two_versions
    config = cfg(root)
    merge_release(root, propose(config, SLUG).branch)

    class Racing(Gates):
        def __call__(self, config: Config, ctx: ReleaseContext) -> Sequence[GateResult]:
            repo = _git.discover(root)
            assert repo is not None
            _git.commit_files(repo, "release", {"releases/other.txt": b"another promote got here first\n"}, "race")
            return super().__call__(config, ctx)

    before = git(root, "rev-parse", f"published/{SLUG}").strip()
    with pytest.raises(ConflictError) as caught:
        promote(config, gates=Racing(), approvals=trailer_approvals, actor=ACTOR)
    assert caught.value.exit_code == 4
    assert git(root, "rev-parse", f"published/{SLUG}").strip() == before
    [p] = promote(config, gates=Gates(), approvals=trailer_approvals, actor=ACTOR)  # re-read and retry
    assert p.event == "promotion"


def tightened_plan(root: Path, prior: str) -> str:
    """Another plan on ``prior``: all of history again, generalised (a version of its own)."""
    import re

    text = (root / FIRST_PLAN).read_text().replace("policy_label: public", "policy_label: public_generalized")
    text = text.replace('prior_dataset_version_id: ""', f'prior_dataset_version_id: "{prior}"')
    text = re.sub(r'expected_dataset_version_id: "[^"]*"', 'expected_dataset_version_id: "<to-be-computed>"', text)
    text = re.sub(r"(  obligations:\n    - [^\n]*\n)", r'\1    - {"type": "generalize_geometry", "params": '
                  r'{"method": "round_1_decimals"}}\n', text)
    rel = f"plans/{SLUG}/backfill-20230802-d4e5f6.yml"
    (root / rel).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a generalised re-publication")
    return rel


def test_two_release_prs_for_one_dataset_conflict_and_a_stale_base_is_refused(
        two_versions: tuple[Path, str, str], kfm: Runner) -> None:
    root, v1, v2 = two_versions
    config = cfg(root)
    v3 = merge_plan(root, kfm, "plan/generalised", tightened_plan(root, v1))  # two plan PRs merge without conflict
    assert len({v1, v2, v3}) == 3
    first, second = propose(config, SLUG, v2), propose(config, SLUG, v3)
    merge_release(root, first.branch)
    with pytest.raises(ConflictError, match=r"conflicts with release in releases/ks_storm_reports/published\.yaml"):
        merge_release(root, second.branch)
    promote(config, gates=Gates(), approvals=trailer_approvals, actor=ACTOR)
    git(root, "branch", "-D", second.branch)
    with pytest.raises(KfmError, match=f"{v3} builds on {v1}, but release publishes {v2}") as caught:
        propose(config, SLUG, v3)
    assert caught.value.hint is not None and "kfm plan new" in caught.value.hint


def test_only_a_published_version_can_be_rolled_back_to(two_versions: tuple[Path, str, str]) -> None:
    root, v1, v2 = two_versions
    config = cfg(root)
    with pytest.raises(KfmError, match="only a version that was published before can be rolled back to"):
        rollback(config, SLUG, to=v2, reason="x", check=lambda p: None)
    with pytest.raises(KfmError, match="a rollback needs a reason"):
        rollback(config, SLUG, to=None, reason=" ", check=lambda p: None)

    def broken(pointer: Pointer) -> None:
        raise KfmError(f"{pointer.version_id} no longer verifies")

    merge_release(root, propose(config, SLUG).branch)
    promote(config, gates=Gates(), approvals=trailer_approvals, actor=ACTOR)
    before = git(root, "show-ref")
    with pytest.raises(KfmError, match=f"{v1} no longer verifies"):
        rollback(config, SLUG, to=v1, reason="bad", check=broken)
    assert git(root, "show-ref") == before


def test_the_exported_catalog_of_what_is_published_opens_in_pystac(
        two_versions: tuple[Path, str, str], kfm: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pystac
    from test_catalog import stac_validate_all

    root, v1, _ = two_versions
    out = tmp_path / "site"
    r = kfm("catalog", "export", str(out), "--base-url", "https://data.example.org/kfm")
    assert r.code == 0, r.err
    assert f"  {SLUG} {v1} (evidence commit " in r.out
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    [collection] = list(catalog.get_children())
    items = list(collection.get_items())
    assert collection.id and len(items) == 5  # the first release: five partitions, March missing
    hrefs = {item.assets["data"].href for item in items}
    assert all(h.startswith("https://data.example.org/kfm/sha256/") for h in hrefs)
    for h in hrefs:  # each URL names an object the store has
        assert (root / ".kfm" / "objects" / h.removeprefix("https://data.example.org/kfm/")).is_file()
    stac_validate_all(out / SLUG / "collection.json", monkeypatch)
    dcat = json.loads((out / "catalog.jsonld").read_text())
    assert dcat["@graph"][0]["@type"] == "dcat:Catalog" and len(dcat["@graph"][0]["dcat:dataset"]) == 1
    assert "kfm://artifact/" not in (out / "catalog.jsonld").read_text()


def test_verify_follows_the_published_chain(two_versions: tuple[Path, str, str], kfm: Runner) -> None:
    root, v1, v2 = two_versions
    r = kfm("verify")
    assert r.code == 0, r.out + r.err
    assert "1 published dataset valid\n" in r.out
    merge_release(root, propose(cfg(root), SLUG).branch)  # merged, not promoted yet
    r = kfm("verify", "--format", "json")
    [pending] = [f for f in json.loads(r.out)["findings"] if f["code"] == "PROMOTE_PENDING"]
    assert pending["message"] == f"release names {v2}, published/{SLUG} shows {v1}"
    promote(cfg(root), gates=Gates(), approvals=trailer_approvals, actor=ACTOR)
    assert "PROMOTE_PENDING" not in kfm("verify").out
    from kfm_gitops import _git

    repo = _git.discover(root)
    assert repo is not None
    _git.commit_files(repo, "release", {f"releases/{SLUG}/ledger.jsonl": b'{"forged": true}\n'}, "a forged ledger")
    r = kfm("verify")
    assert r.code == 1
    assert "LEDGER_CHAIN: entry 1: " in r.out


def test_status_lists_a_version_in_one_place(two_versions: tuple[Path, str, str], kfm: Runner) -> None:
    root, v1, v2 = two_versions
    config = cfg(root)
    s = status(config, SLUG)
    assert (s.alias_version, s.candidates, s.proposals, s.pending) == (v1, (v2,), (), False)
    prop = propose(config, SLUG)
    s = status(config, SLUG)
    assert (s.candidates, s.proposals, s.pending) == ((), (prop.branch,), False)
    r = kfm("promote")  # nothing to do yet: it says which proposal waits for its merge
    assert (r.code, r.out.splitlines()[1]) == (0, f"  open proposal(s): {prop.branch}: merge one into release (its "
                                                  "pull request), then promote")
    merge_release(root, prop.branch)
    s = status(config, SLUG)
    assert (s.candidates, s.proposals, s.pending, s.published) == ((), (), True, v2)
