"""`kfm gate run` as users and workflows call it: on a version folder, in text, json and github formats, and with
--changed on real branches made with the git CLI: a plan branch with its version, a branch that edits old evidence,
a change of rules re-evaluating what is published, a release change, a change of nothing governed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Runner, git
from kfm_gitops.example import FIRST_PLAN

SLUG = "ks_storm_reports"
FIRST = "2023-06.69a8eb0e.7df9ce5a"
VERSION = f"releases/{SLUG}/{FIRST}"
GATE_LINES = ["A identity ........ Passed", "B licensing ....... Passed", "C policy .......... Passed",
              "D catalog ......... Passed", "E qa .............. Passed", "F receipts ........ Passed",
              "G manifest ........ Passed"]


def verdicts(out: str) -> list[str]:
    """The gate lines of a text report."""
    return [line for line in out.splitlines() if line[:2] in {f"{g} " for g in "ABCDEFG"} and line.endswith(
        ("Passed", "Failed"))]


@pytest.fixture
def backfilled(governed: Path, kfm: Runner) -> Path:
    """The example's first release, made on a plan branch and committed there, as a plan PR brings it."""
    git(governed, "switch", "-q", "-c", "plan/first-release")
    r = kfm("backfill", "run", FIRST_PLAN, "--yes")
    assert r.code == 0, r.out + r.err
    git(governed, "add", "-A")
    git(governed, "commit", "-qm", "Evidence: first release")
    return governed


def merged(root: Path, branch: str, *, publish: bool = False) -> Path:
    """The plan branch merged into main (and its version published on release), then a new branch from main."""
    git(root, "switch", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge the first release", "plan/first-release")
    if publish:
        _publish(root, FIRST)
    git(root, "switch", "-q", "-c", branch)
    return root


def test_every_gate_passes_on_the_example_version(backfilled: Path, kfm: Runner) -> None:
    r = kfm("gate", "run", "all", VERSION)
    assert r.code == 0, r.out + r.err
    assert verdicts(r.out) == GATE_LINES
    assert r.out.splitlines()[-1] == f"7 gates passed on {VERSION}"
    assert "    evaluated: 5 new and 0 carried partition(s): 25 object(s) re-hashed in " in r.out


def test_a_failing_gate_shows_its_findings_and_what_to_do(backfilled: Path, kfm: Runner) -> None:
    runs = json.loads((backfilled / VERSION / "runs.json").read_text())["runs"]
    qa = runs[1]["receipt"].replace("receipt.json", "qa.json")
    (backfilled / qa).unlink()
    git(backfilled, "commit", "-qam", "a QA report deleted")
    r = kfm("gate", "run", "all", VERSION)
    assert r.code == 1
    assert verdicts(r.out) == [*GATE_LINES[:4], "E qa .............. Failed", *GATE_LINES[5:]]
    lines = r.out.splitlines()
    at = lines.index("E qa .............. Failed")
    assert lines[at + 1] == (f"    {qa}: QA_REPORT_MISSING: the run {runs[1]['run_id']} of chunk 2023-02 has no QA "
                             "report (hint: restore it from git; if it was never committed, run the chunk again "
                             "(`kfm backfill run PLAN --chunk 2023-02 --force`))")
    assert lines[-1] == f"7 gates run on {VERSION}, 1 failed: E"


def test_json_and_github_formats(backfilled: Path, kfm: Runner, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    kfm_yaml = backfilled / "kfm.yaml"
    kfm_yaml.write_text(kfm_yaml.read_text().replace("policy_labels: [public, ", "policy_labels: ["))
    r = kfm("gate", "run", "C", VERSION, "--format", "json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert (doc["ok"], doc["subject"], [g["gate"] for g in doc["gates"]]) == (False, VERSION, ["C"])
    gate = doc["gates"][0]
    assert (gate["name"], gate["status"]) == ("policy", "failed")
    assert "label 'public' against kfm.yaml's vocabulary" in gate["evaluated"]
    assert {f["code"] for f in gate["findings"]} == {"POLICY_LABEL_UNKNOWN", "POLICY_DENIED"}
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = kfm("gate", "run", "AC", VERSION, "--format", "github")
    assert r.code == 1
    assert (f"::error file={VERSION}/promotion-manifest.json,title=POLICY_LABEL_UNKNOWN::the version is labelled "
            "'public', which kfm.yaml's policy_labels do not know") in r.out
    assert verdicts(r.out) == ["A identity ........ Passed", "C policy .......... Failed"]
    md = summary.read_text()
    assert md.startswith(f"### kfm gate run: 2 gates run on {VERSION}, 1 failed: C (failed)\n\n| gate | status |")
    assert "| C policy | failed |" in md and "| A identity | passed |" in md
    assert f"| C | {VERSION}/promotion-manifest.json | POLICY_LABEL_UNKNOWN |" in md


@pytest.mark.parametrize("args, code, words", [
    (("gate", "run", "all"), 2, "name one of VERSION_DIR and --changed BASE..HEAD"),
    (("gate", "run", "all", VERSION, "--changed", "main..HEAD"), 2, "name one of VERSION_DIR and --changed"),
    (("gate", "run", "H", VERSION), 2, "no gate 'H'"),
    (("gate", "run", "all", "releases"), 1, "releases is not a version folder"),
    (("gate", "run", "all", "--changed", "main"), 2, "--changed 'main' is not a range BASE..HEAD"),
    (("gate", "run", "all", "--changed", "nope..HEAD"), 2, "--changed: no commit 'nope' in this repository"),
    (("gate", "run", "all", "--changed", "main..release"), 2, "--changed reads HEAD's files from the working tree"),
])
def test_usage_and_bad_arguments(backfilled: Path, kfm: Runner, args: tuple[str, ...], code: int, words: str) -> None:
    r = kfm(*args)
    assert r.code == code and words in r.err, (r.code, r.out, r.err)


# --- --changed ----------------------------------------------------------------------------------------------------


def test_changed_finds_the_version_a_plan_branch_adds(backfilled: Path, kfm: Runner) -> None:
    r = kfm("gate", "run", "all", "--changed", "main..HEAD")
    assert r.code == 0, r.out + r.err
    assert verdicts(r.out) == GATE_LINES
    assert f"    evaluated: new version {SLUG} {FIRST}: 5 new and 0 carried partition(s): 25 object(s) re-hashed" \
        in r.out
    assert "    evaluated: evidence: 43 evidence path(s) changed: none edits or deletes committed evidence" in r.out
    assert r.out.splitlines()[-1] == "7 gates passed on the change main..HEAD"


def test_changed_refuses_a_branch_that_edits_old_evidence(backfilled: Path, kfm: Runner) -> None:
    merged(backfilled, "cleanup")
    receipt = json.loads((backfilled / VERSION / "runs.json").read_text())["runs"][2]["receipt"]
    (backfilled / receipt).unlink()
    manifest = next((backfilled / "data/raw" / SLUG).glob("2023-01.*.json"))
    manifest.write_text(manifest.read_text().replace('"csv"', '"CSV"'))
    git(backfilled, "commit", "-qam", "tidy old runs")
    r = kfm("gate", "run", "F", "--changed", "main..HEAD")
    assert r.code == 1
    rel = manifest.relative_to(backfilled).as_posix()
    assert r.out.splitlines()[1:3] == [
        f"    {rel}: EVIDENCE_ALTERED: the change edits {rel}, committed evidence (hint: evidence is append-only: "
        f"new files with new names, never edits or deletions: restore it (`git checkout main -- {rel}`))",
        f"    {receipt}: EVIDENCE_ALTERED: the change deletes {receipt}, committed evidence (hint: evidence is "
        f"append-only: new files with new names, never edits or deletions: restore it (`git checkout main -- "
        f"{receipt}`))"]
    assert r.out.splitlines()[-1] == "1 gate run on the change main..HEAD, 1 failed: F"


def test_changed_on_nothing_governed_passes_and_says_so(backfilled: Path, kfm: Runner) -> None:
    git(backfilled, "switch", "-q", "-c", "docs", "main")
    (backfilled / "NOTES.md").write_text("notes\n")
    git(backfilled, "add", "NOTES.md")
    git(backfilled, "commit", "-qm", "notes")
    r = kfm("gate", "run", "all", "--changed", "main..HEAD")
    assert r.code == 0, r.out
    assert r.out.count("nothing governed changed (1 path(s), none under plans/, datasets/, data/raw/, releases/, "
                       "policies/ or kfm.yaml)") == 7


def test_changed_checks_a_plan_without_a_version_as_a_plan(governed: Path, kfm: Runner) -> None:
    git(governed, "switch", "-q", "-c", "plan/bad")
    text = (governed / FIRST_PLAN).read_text()
    bad = f"plans/{SLUG}/backfill-20230801-aaaaaa.yml"
    (governed / bad).write_text(text.replace('policy_label: public', 'policy_label: publik'))
    git(governed, "add", bad)
    git(governed, "commit", "-qm", "a plan")
    r = kfm("gate", "run", "A", "--changed", "main..HEAD")
    assert r.code == 1
    assert f"    evaluated: plan {bad}: checked as a plan (no version yet)" in r.out
    assert f"{bad}:" in r.out and "publik" in r.out


def _publish(root: Path, version: str) -> None:
    """What the release branch publishes (as a merged release PR leaves it)."""
    git(root, "switch", "-q", "release")
    (root / "releases" / SLUG).mkdir(parents=True, exist_ok=True)
    (root / "releases" / SLUG / "published.yaml").write_text(f'dataset_slug: "{SLUG}"\n'
                                                              f'dataset_version_id: "{version}"\n')
    git(root, "add", "releases")
    git(root, "commit", "-qm", f"Release {version}")
    git(root, "switch", "-q", "main")


def test_changed_rules_re_evaluate_the_published_version(backfilled: Path, kfm: Runner) -> None:
    kfm_yaml = merged(backfilled, "rules", publish=True) / "kfm.yaml"
    kfm_yaml.write_text(kfm_yaml.read_text().replace("# Who holds", "# Who (people) holds"))
    git(backfilled, "commit", "-qam", "a comment")
    r = kfm("gate", "run", "C", "--changed", "main..HEAD")
    assert r.code == 0, r.out
    assert f"    evaluated: published version {SLUG} {FIRST} under the change: promotion policy (" in r.out
    kfm_yaml.write_text(kfm_yaml.read_text().replace("policy_labels: [public, ", "policy_labels: ["))
    git(backfilled, "commit", "-qam", "drop the label public")
    r = kfm("gate", "run", "all", "--changed", "main..HEAD")
    assert r.code == 1
    assert verdicts(r.out) == [*GATE_LINES[:2], "C policy .......... Failed", *GATE_LINES[3:]]
    assert "POLICY_LABEL_UNKNOWN: the version is labelled 'public'" in r.out


def test_changed_gates_a_release_pr_with_what_the_release_adds(backfilled: Path, kfm: Runner) -> None:
    from kfm_gitops.config import Config, load_config
    from kfm_gitops.release import propose

    merged(backfilled, "after")  # merged without an Approved-by trailer
    config = load_config(backfilled)
    assert isinstance(config, Config)
    prop = propose(config, SLUG, FIRST)
    git(backfilled, "switch", "-q", prop.branch)
    r = kfm("gate", "run", "all", "--changed", "release..HEAD")
    assert r.code == 1, r.out
    assert verdicts(r.out) == [*GATE_LINES[:2], "C policy .......... Failed", *GATE_LINES[3:]]
    assert "APPROVALS_MISSING: label 'public' needs 1 approval(s) by steward, found 0" in r.out
    assert f"release of {SLUG}" in r.out

    # A published.yaml that is not a pointer is refused, located.
    (backfilled / "releases" / SLUG / "published.yaml").write_text(f'dataset_slug: "{SLUG}"\n')
    git(backfilled, "commit", "-qam", "a broken pointer")
    r = kfm("gate", "run", "G", "--changed", "release..HEAD")
    assert r.code == 1
    assert "POINTER_INVALID" in r.err


def test_a_change_is_sorted_from_the_two_trees(backfilled: Path) -> None:
    from kfm_gitops import _git
    from kfm_gitops.gates.changes import classify

    merged(backfilled, "mixed")
    (backfilled / VERSION / "catalog" / "extra.json").write_text("{}\n")
    contract = backfilled / "datasets" / SLUG / "dataset.yaml"
    contract.write_text(contract.read_text().replace("title: Kansas", "title: The Kansas"))
    (backfilled / "NOTES.md").write_text("notes\n")
    (backfilled / "releases" / SLUG / "ledger.jsonl").write_text("")
    git(backfilled, "add", "-A")
    git(backfilled, "commit", "-qm", "mixed")
    repo = _git.discover(backfilled)
    assert repo is not None
    change = classify(repo, git(backfilled, "rev-parse", "main").strip(), git(backfilled, "rev-parse", "HEAD").strip())
    assert (change.versions, change.plans, change.rules, change.rule_slugs) == (
        [], [], [f"datasets/{SLUG}/dataset.yaml"], {SLUG})
    assert (change.evidence, change.ungoverned, change.releases) == (2, 1, [])
    assert [f.message for f in change.altered] == [
        f"the change adds {VERSION}/catalog/extra.json to {VERSION}, committed evidence (a run or version folder "
        "is written once)"]
    assert change.altered[0].hint is not None and "take it out of the change" in change.altered[0].hint


def test_changed_rules_in_a_clone_read_what_origin_publishes(backfilled: Path, kfm: Runner, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A workflow's checkout has origin/release, not a local release: the published version is still gated."""
    kfm_yaml = merged(backfilled, "rules", publish=True) / "kfm.yaml"
    kfm_yaml.write_text(kfm_yaml.read_text().replace("policy_labels: [public, ", "policy_labels: ["))
    git(backfilled, "commit", "-qam", "drop the label public")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "rules", str(backfilled), str(clone))
    assert "release" not in git(clone, "branch", "--list")
    monkeypatch.chdir(clone)
    r = kfm("gate", "run", "C", "--changed", "origin/main..HEAD", "--store", str(backfilled / ".kfm" / "objects"))
    assert r.code == 1
    assert f"    evaluated: published version {SLUG} {FIRST} under the change: label 'public'" in r.out
    assert "POLICY_LABEL_UNKNOWN" in r.out
    git(clone, "update-ref", "-d", "refs/remotes/origin/release")
    r = kfm("gate", "run", "C", "--changed", "origin/main..HEAD", "--store", str(backfilled / ".kfm" / "objects"))
    assert r.code == 1 and "RELEASE_BRANCH_MISSING: neither release nor origin/release is here" in r.out
